#include "dirmoe/core/philox.h"

#include "dirmoe/core/philox_rounds.h"

namespace dirmoe {

PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  philox4x32_10_in_place(c.data(), k[0], k[1]);  // the rounds the CUDA kernels run too
  return c;
}

}  // namespace dirmoe
