#!/usr/bin/env bash
# Rewrites README.md's annotation table (between the annotations:begin/end markers) from the code's
# AnnotationCatalog, through `porticoctl annotations --markdown`. A test fails while they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(swift run -q porticoctl annotations --markdown)
python3 - "$table" <<'PY'
import re, sys
path = "README.md"
text = open(path).read()
begin, end = "<!-- annotations:begin -->\n", "<!-- annotations:end -->"
start, stop = text.index(begin) + len(begin), text.index(end)
open(path, "w").write(text[:start] + sys.argv[1].rstrip("\n") + "\n" + text[stop:])
PY
echo "README.md: annotation table rewritten"
