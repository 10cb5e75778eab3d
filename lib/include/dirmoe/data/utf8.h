#pragma once
// UTF-8 validation for corpus text: tokenizers and JSON need well-formed UTF-8, real corpora
// contain stray Latin-1 bytes, truncated sequences and NULs.
#include <cstdint>
#include <string>

namespace dirmoe::data {

/// Replace every ill-formed UTF-8 sequence (RFC 3629: overlongs, surrogates, > U+10FFFF,
/// truncated or stray continuation bytes) and every NUL byte with U+FFFD, one replacement per
/// maximal ill-formed subpart (Unicode §3.9 "U+FFFD substitution of maximal subparts").
/// Returns the number of replacements made (0: the text was valid and is unchanged).
int64_t sanitize_utf8(std::string& text);

/// True if `text` is well-formed UTF-8 without NUL bytes.
bool is_valid_utf8(const std::string& text);

}  // namespace dirmoe::data
