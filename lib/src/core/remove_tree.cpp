#include "dirmoe/core/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dirmoe {
namespace {

int remove_entry(const char* path, const struct stat* /*st*/, int type, struct FTW* /*ftw*/) {
  // FTW_DEPTH visits a directory after its contents, so it is empty by the time it is removed.
  if (type == FTW_DP) {
    ::rmdir(path);
  } else {
    ::unlink(path);
  }
  return 0;  // go on: remove as much as can be removed
}

}  // namespace

void remove_tree(const std::string& path) noexcept {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (!S_ISDIR(st.st_mode)) {
    ::unlink(path.c_str());
    return;
  }
  ::nftw(path.c_str(), remove_entry, /*nopenfd=*/16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace dirmoe
