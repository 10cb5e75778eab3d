// remove_tree: deletes a whole tree, leaves what a symbolic link points to, ignores a missing path.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "dirmoe/core/remove_tree.h"

namespace fs = std::filesystem;

TEST_CASE("remove_tree deletes nested directories and files but not what a link points to", "[core]") {
  const fs::path base = fs::temp_directory_path() / ("dirmoe_remove_tree_" + std::to_string(::getpid()));
  const fs::path tree = base / "tree";
  const fs::path outside = base / "outside";
  fs::create_directories(tree / "a" / "b");
  fs::create_directories(outside);
  std::ofstream(tree / "top.txt") << "x";
  std::ofstream(tree / "a" / "b" / "deep.txt") << "y";
  std::ofstream(outside / "keep.txt") << "z";
  fs::create_directory_symlink(outside, tree / "a" / "link");

  dirmoe::remove_tree(tree.string());
  CHECK_FALSE(fs::exists(tree));
  CHECK(fs::exists(outside / "keep.txt"));  // the link went, its target stayed

  const fs::path file = base / "single.txt";
  std::ofstream(file) << "w";
  dirmoe::remove_tree(file.string());
  CHECK_FALSE(fs::exists(file));

  dirmoe::remove_tree((base / "never_there").string());  // no error, nothing to do
  dirmoe::remove_tree(base.string());
  CHECK_FALSE(fs::exists(base));
}
