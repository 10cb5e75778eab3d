#include "dirmoe/eval/hf_remote_code.h"

#include <cstddef>

namespace dirmoe::eval {
namespace {

struct EmbeddedFile {
  const char* name;
  const unsigned char* data;
  size_t size;
};

#include "dirmoe/eval/hf_remote_code.inc"  // kEmbeddedFiles[], generated from lib/src/eval/hf/*.py

}  // namespace

const std::vector<std::pair<std::string, std::string>>& hf_remote_code_files() {
  static const std::vector<std::pair<std::string, std::string>> files = [] {
    std::vector<std::pair<std::string, std::string>> out;
    for (const EmbeddedFile& f : kEmbeddedFiles) {
      out.emplace_back(f.name, std::string(reinterpret_cast<const char*>(f.data), f.size));
    }
    return out;
  }();
  return files;
}

}  // namespace dirmoe::eval
