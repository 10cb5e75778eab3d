#pragma once

#include <string>

namespace dirmoe {

/// Deletes a file or a directory tree, never following symbolic links, and reports nothing: the
/// clean-up of staging and temporary paths, which must not throw from a destructor.
/// NOTE: this replaces std::filesystem::remove_all on purpose. LibTorch's libtorch.so exports its
/// own copies of the std::filesystem functions; where the dynamic linker binds the program's calls
/// to them (seen with a newer host GCC on a CUDA machine), remove_all jumped to a null address and
/// `dirmoe-data build` crashed. POSIX nftw() is libc's, which no library shadows.
void remove_tree(const std::string& path) noexcept;

}  // namespace dirmoe
