// SHA-256 against the FIPS 180-4 / NIST CSRC example vectors.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "dirmoe/core/sha256.h"

TEST_CASE("sha256 matches the NIST example vectors", "[core][sha256]") {
  CHECK(dirmoe::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(dirmoe::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(dirmoe::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(dirmoe::sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(dirmoe::sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 is the same however the input is cut", "[core][sha256]") {
  std::string msg;
  for (int i = 0; i < 1000; ++i) msg += static_cast<char>((i * 131 + 7) & 0xff);
  const std::string whole = dirmoe::sha256_hex(msg);
  for (size_t cut : {size_t(1), size_t(55), size_t(56), size_t(63), size_t(64), size_t(65), size_t(999)}) {
    dirmoe::Sha256 h;
    h.update(msg.data(), cut);
    h.update(msg.data() + cut, msg.size() - cut);
    CHECK(h.hex_digest() == whole);
  }
  const auto path = std::filesystem::temp_directory_path() / ("dirmoe_sha_" + std::to_string(::getpid()));
  std::ofstream(path, std::ios::binary) << msg;
  CHECK(dirmoe::sha256_file(path) == whole);
  std::filesystem::remove(path);
}
