// UTF-8 cleaning: valid text untouched, each ill-formed subpart replaced by one U+FFFD.
#include <catch2/catch.hpp>

#include "dirmoe/data/utf8.h"

using dirmoe::data::sanitize_utf8;

TEST_CASE("valid UTF-8 is left as it is", "[data][utf8]") {
  std::string s = "plain ascii, caf\xc3\xa9, \xe6\x97\xa5\xe6\x9c\xac, \xf0\x9f\x98\x80";
  const std::string before = s;
  CHECK(sanitize_utf8(s) == 0);
  CHECK(s == before);
  CHECK(dirmoe::data::is_valid_utf8(s));
}

TEST_CASE("ill-formed sequences are replaced and counted", "[data][utf8]") {
  const std::string R = "\xef\xbf\xbd";
  struct Case { std::string in, out; int64_t n; };
  const Case cases[] = {
      {"Caf\xe9!", "Caf" + R + "!", 1},               // Latin-1 byte
      {"a\xc0\xafz", "a" + R + R + "z", 2},           // overlong '/' (C0 is never valid)
      {"x\xed\xa0\x80y", "x" + R + R + R + "y", 3},   // surrogate U+D800: ED then two stray bytes
      {"\xe6\x97", R, 1},                             // truncated 3-byte sequence: one maximal subpart
      {"a\x00b", "a" + R + "b", 1},                   // NUL
      {"\xf4\x90\x80\x80", R + R + R + R, 4},         // > U+10FFFF
      {"\x80\x80", R + R, 2},                         // stray continuation bytes
  };
  for (const auto& c : cases) {
    std::string s = c.in;
    CHECK(sanitize_utf8(s) == c.n);
    CHECK(s == c.out);
    CHECK(dirmoe::data::is_valid_utf8(s));
  }
}
