// Atomic writes: a committed file appears whole, an abandoned one leaves nothing behind.
#include <unistd.h>

#include <filesystem>

#include <catch2/catch.hpp>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"

namespace fs = std::filesystem;

TEST_CASE("write_file_atomic replaces the file and leaves no temporary", "[core]") {
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_atomic_" + std::to_string(::getpid()));
  fs::remove_all(dir);  // also exercises std::filesystem symbol binding (see CMakeLists.txt NOTE)
  dirmoe::ensure_directory(dir);
  const fs::path file = dir / "out.json";
  dirmoe::write_file_atomic(file, "first");
  dirmoe::write_file_atomic(file, "second");
  CHECK(dirmoe::read_file(file) == "second");
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);
  {
    dirmoe::AtomicFile abandoned(dir / "never.bin");
    dirmoe::write_file_atomic(abandoned.temp_path(), "partial");
  }
  CHECK_FALSE(fs::exists(dir / "never.bin"));
  fs::remove_all(dir);
}

TEST_CASE("I/O errors name the path", "[core]") {
  REQUIRE_THROWS_AS(dirmoe::read_file("/nonexistent/dirmoe/x.json"), dirmoe::IoError);
  REQUIRE_THROWS_WITH(dirmoe::read_file("/nonexistent/dirmoe/x.json"),
                      Catch::Matchers::Contains("/nonexistent/dirmoe/x.json"));
  REQUIRE_THROWS_AS(dirmoe::write_file_atomic("/nonexistent/dirmoe/x.json", "x"), dirmoe::IoError);
}
