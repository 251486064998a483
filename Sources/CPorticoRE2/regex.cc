#include "CPorticoRE2.h"

#include <re2/re2.h>

#include <cstring>
#include <string>
#include <vector>

struct portico_regex {
    re2::RE2 program;
    portico_regex(const re2::StringPiece &pattern, const re2::RE2::Options &options) : program(pattern, options) {}
};

extern "C" portico_regex *portico_regex_compile(const char *pattern, size_t length, int case_insensitive, char *error, size_t error_capacity) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(case_insensitive == 0);
    // Paths are short; a pattern that needs more than this to compile is refused, not served.
    options.set_max_mem(256 << 10);
    auto *regex = new portico_regex(re2::StringPiece(pattern, length), options);
    if (!regex->program.ok()) {
        if (error_capacity > 0) {
            const std::string &message = regex->program.error();
            size_t count = message.size() < error_capacity - 1 ? message.size() : error_capacity - 1;
            std::memcpy(error, message.data(), count);
            error[count] = 0;
        }
        delete regex;
        return nullptr;
    }
    return regex;
}

extern "C" void portico_regex_free(portico_regex *regex) { delete regex; }

extern "C" int portico_regex_group_count(const portico_regex *regex) { return regex->program.NumberOfCapturingGroups(); }

extern "C" int portico_regex_match(const portico_regex *regex, const char *text, size_t length, int anchored, long *spans, int pairs) {
    if (pairs < 0) pairs = 0;
    std::vector<re2::StringPiece> groups(static_cast<size_t>(pairs));
    re2::StringPiece input(text, length);
    bool matched = regex->program.Match(
        input, 0, length, anchored ? re2::RE2::ANCHOR_START : re2::RE2::UNANCHORED, groups.empty() ? nullptr : groups.data(), pairs);
    if (!matched) return 0;
    for (int index = 0; index < pairs; index++) {
        const re2::StringPiece &group = groups[static_cast<size_t>(index)];
        if (group.data() == nullptr) {
            spans[2 * index] = -1;
            spans[2 * index + 1] = -1;
        } else {
            spans[2 * index] = static_cast<long>(group.data() - text);
            spans[2 * index + 1] = static_cast<long>(group.data() - text + group.size());
        }
    }
    return 1;
}
