#ifndef CPORTICO_RE2_H
#define CPORTICO_RE2_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A compiled RE2 regular expression: matching takes time linear in the input, whatever the
/// pattern (no backtracking), and a compiled program's memory is bounded.
typedef struct portico_regex portico_regex;

/// Compiles `pattern` (RE2 syntax, which is Perl's without backreferences and lookaround).
/// Returns NULL on error, with a message in `error` (always NUL-terminated when capacity > 0).
portico_regex *portico_regex_compile(const char *pattern, size_t length, int case_insensitive, char *error, size_t error_capacity);

void portico_regex_free(portico_regex *regex);

/// Capturing groups, not counting the whole match.
int portico_regex_group_count(const portico_regex *regex);

/// Searches `text`; with `anchored`, only a match starting at offset 0. On a match returns 1 and
/// writes `pairs` (start, end) byte offsets into `spans` (group 0 is the whole match; a group that
/// did not participate is (-1, -1)). Returns 0 when nothing matches.
int portico_regex_match(const portico_regex *regex, const char *text, size_t length, int anchored, long *spans, int pairs);

#ifdef __cplusplus
}
#endif

#endif
