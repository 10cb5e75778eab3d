// CUDA kernels of the Dirichlet KL node: the host's rows (router/dirichlet_kl_element.h), one row per
// thread. As operators, the KL's forward launched four lgamma, two digamma and some ten arithmetic
// kernels, and autograd's backward about twenty more, each on a [T, E] tensor of a few microseconds.
#include "dirichlet_kl_cuda.h"

#include "cuda_per_row.cuh"
#include "dirmoe/router/special_functions.h"

namespace dirmoe::cuda_kl {
namespace {

/// ψ and ψ′ of special_functions.h, lnΓ of CUDA's math library.
struct DeviceSpecialFunctions {
  DIRMOE_HOST_DEVICE static float digamma(float x) { return special::digamma(x); }
  DIRMOE_HOST_DEVICE static double digamma(double x) { return special::digamma(x); }
  DIRMOE_HOST_DEVICE static float trigamma(float x) { return special::trigamma(x); }
  DIRMOE_HOST_DEVICE static double trigamma(double x) { return special::trigamma(x); }
  DIRMOE_HOST_DEVICE static float log_gamma(float x) { return lgammaf(x); }
  DIRMOE_HOST_DEVICE static double log_gamma(double x) { return lgamma(x); }
};

/// A KL pass with the device's special functions: run(row) as cuda_rows::per_row_kernel calls it, over
/// the pass's own rows.
template <typename Pass>
struct OnDevice {
  Pass pass;
  int64_t rows;

  explicit OnDevice(const Pass& p) : pass(p), rows(p.rows) {}
  DIRMOE_HOST_DEVICE void run(int64_t row) const { pass.template run<DeviceSpecialFunctions>(row); }
};

template <typename Pass>
void launch_rows(const Pass& pass, int device) {
  cuda_rows::launch_per_row(OnDevice<Pass>(pass), device, "dirichlet_kl");
}

}  // namespace

void launch(const kl_element::DirichletKlForward<float>& pass, int device) { launch_rows(pass, device); }
void launch(const kl_element::DirichletKlForward<double>& pass, int device) { launch_rows(pass, device); }
void launch(const kl_element::DirichletKlBackward<float>& pass, int device) { launch_rows(pass, device); }
void launch(const kl_element::DirichletKlBackward<double>& pass, int device) { launch_rows(pass, device); }

}  // namespace dirmoe::cuda_kl
