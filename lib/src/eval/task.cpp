#include "dirmoe/eval/task.h"

namespace dirmoe::eval {

int64_t utf8_length(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++n;  // count every byte that does not continue a sequence
  }
  return n;
}

}  // namespace dirmoe::eval
