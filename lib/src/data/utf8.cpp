#include "dirmoe/data/utf8.h"

namespace dirmoe::data {
namespace {

// Length of the well-formed sequence starting at s[i], or 0 if it is ill-formed; `consumed` gets
// the length of the maximal ill-formed subpart to replace (>= 1) in that case.
size_t sequence_length(const std::string& s, size_t i, size_t& consumed) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const size_t n = s.size();
  consumed = 1;
  if (b0 == 0) return 0;
  if (b0 < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= n) {
      consumed = k;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      consumed = k;
      return 0;
    }
  }
  return len;
}

}  // namespace

int64_t sanitize_utf8(std::string& text) {
  size_t i = 0, consumed = 0;
  // Fast path: most documents are valid.
  while (i < text.size()) {
    const size_t len = sequence_length(text, i, consumed);
    if (len == 0) break;
    i += len;
  }
  if (i == text.size()) return 0;
  std::string out;
  out.reserve(text.size() + 16);
  out.append(text, 0, i);
  int64_t replaced = 0;
  while (i < text.size()) {
    const size_t len = sequence_length(text, i, consumed);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++replaced;
      i += consumed;
    } else {
      out.append(text, i, len);
      i += len;
    }
  }
  text.swap(out);
  return replaced;
}

bool is_valid_utf8(const std::string& text) {
  size_t i = 0, consumed = 0;
  while (i < text.size()) {
    const size_t len = sequence_length(text, i, consumed);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace dirmoe::data
