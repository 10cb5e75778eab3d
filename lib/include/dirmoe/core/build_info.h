#pragma once
// Identity of the build, stamped into every output (checkpoints, HDF5 files, JSON reports).
#include <string>

namespace dirmoe {

/// `git describe --always --dirty` of the source tree this binary was built from ("unknown"
/// outside a git checkout).
const char* git_revision();

/// Library version string (CMake project version).
const char* library_version();

}  // namespace dirmoe
