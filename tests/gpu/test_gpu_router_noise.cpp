// The counter-based router noise on CUDA against the CPU (router_noise_source.h): the CUDA kernels
// (router_noise_cuda.cu, where the build has them; else the host fill and the tensor-op path) must
// draw what the CPU draws for the same key, token indices and columns, since that is what makes a
// run's noise independent of its device and of how its batch is split. The CPU paths are checked
// against the Python reference in tests/unit/test_router_noise_source.cpp.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <string>

#include "../support/router_test_util.h"
#include "dirmoe/router/router_noise_source.h"

using dirmoe::RouterNoiseKey;
using dirmoe::RouterNoiseStream;

namespace {

/// max |a/b − 1| over the elements, in float64 on the CPU.
double max_ratio_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.cpu().to(torch::kFloat64) / b.cpu().to(torch::kFloat64) - 1.0).abs().max().item<double>();
}

}  // namespace

// Uniforms: integer Philox words mapped to odd multiples of 2^-24, exact in float32 and float64, so
// the two devices agree bit for bit. Token indices above 2^32 exercise the counter's high word.
// scripts/gpu_check.py builds beside nvcc and a CUDA LibTorch, where the kernels are always built: under
// its DIRMOE_GPU_REQUIRED=1 a build without them fails here rather than passing on the host path.
TEST_CASE("the build has the CUDA noise kernels where the GPU check requires them", "[gpu][router][noise]") {
  REQUIRE(torch::cuda::is_available());
  INFO("cuda_noise_kernels_built() = " << dirmoe::cuda_noise_kernels_built());
  if (dirmoe::testing::gpu_check_requires_kernels()) CHECK(dirmoe::cuda_noise_kernels_built());
}

TEST_CASE("counter_uniform on CUDA draws the CPU's words bit for bit", "[gpu][router][noise]") {
  REQUIRE(torch::cuda::is_available());
  const torch::Device cuda(torch::kCUDA);
  for (const int64_t token_offset : {int64_t{0}, (int64_t{1} << 32) - 100}) {
    const RouterNoiseKey key{/*seed=*/0x1234567890abcdefULL, /*draw=*/77, /*layer=*/3, token_offset};
    for (const auto dtype : {torch::kFloat32, torch::kFloat64, torch::kBFloat16}) {
      for (const int64_t words : {int64_t{1}, int64_t{5}, int64_t{17}}) {
        DYNAMIC_SECTION("offset " << token_offset << ", " << dtype << ", " << words << " words") {
          const auto cpu = dirmoe::counter_uniform(key, RouterNoiseStream::gamma, 1000, 8, words,
                                                   torch::TensorOptions().dtype(dtype));
          const auto gpu = dirmoe::counter_uniform(key, RouterNoiseStream::gamma, 1000, 8, words,
                                                   torch::TensorOptions().dtype(dtype).device(cuda));
          CHECK(gpu.device().is_cuda());
          CHECK(gpu.scalar_type() == dtype);
          CHECK(torch::equal(gpu.cpu(), cpu));
        }
      }
    }
  }
}

// Gamma draws: the same double arithmetic as the CPU's per-element path; only the CUDA math
// library's last bits of log/sqrt/cos/sin/exp may differ (≤ 1e-12 relative in float64, one float32
// rounding in float32). α spans the boosted (α < 1) and plain branches.
TEST_CASE("counter_gamma on CUDA matches the CPU's element-wise draws", "[gpu][router][noise]") {
  REQUIRE(torch::cuda::is_available());
  const torch::Device cuda(torch::kCUDA);
  torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/21);
  const torch::Tensor alpha_TC = torch::exp(torch::empty({4096, 8}, torch::kFloat64).uniform_(-3.0, 3.0, gen));
  const RouterNoiseKey key{/*seed=*/5, /*draw=*/1, /*layer=*/2, /*token_offset=*/(int64_t{1} << 33) + 7};
  const auto cpu64 = dirmoe::counter_gamma_elementwise(key, RouterNoiseStream::gamma, alpha_TC);
  const auto gpu64 = dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha_TC.to(cuda));
  CHECK(gpu64.device().is_cuda());
  CHECK(gpu64.scalar_type() == torch::kFloat64);
  CHECK(max_ratio_error(gpu64, cpu64) < 1e-12);
  // the tensor-op path (a build without the kernels, or another device) draws the same
  const auto gpu64_ops = dirmoe::counter_gamma_tensor_ops(key, RouterNoiseStream::gamma, alpha_TC.to(cuda));
  CHECK(max_ratio_error(gpu64_ops, cpu64) < 1e-12);

  const torch::Tensor alpha32 = alpha_TC.to(torch::kFloat32);
  const auto cpu32 = dirmoe::counter_gamma_elementwise(key, RouterNoiseStream::gamma, alpha32);
  const auto gpu32 = dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha32.to(cuda));
  CHECK(gpu32.scalar_type() == torch::kFloat32);
  CHECK(max_ratio_error(gpu32, cpu32) < 2.5e-7);
  CHECK((gpu32.cpu() > 0).all().item<bool>());

  // bf16 α: drawn through float32 on CUDA, rounded once more than on the CPU (≤ one bf16 ulp, 2^-7)
  const torch::Tensor alpha16 = alpha_TC.to(torch::kBFloat16);
  const auto cpu16 = dirmoe::counter_gamma_elementwise(key, RouterNoiseStream::gamma, alpha16);
  const auto gpu16 = dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha16.to(cuda));
  CHECK(gpu16.scalar_type() == torch::kBFloat16);
  CHECK(max_ratio_error(gpu16, cpu16) < 8e-3);

  // a non-contiguous α (a transposed view) draws what its values draw
  const torch::Tensor alpha_strided = alpha_TC.t().contiguous().to(cuda).t();
  REQUIRE_FALSE(alpha_strided.is_contiguous());
  CHECK(max_ratio_error(dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha_strided), cpu64) < 1e-12);

  // no tokens: an empty draw, no launch
  const auto none = dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha_TC.narrow(0, 0, 0).to(cuda));
  CHECK(none.sizes() == torch::IntArrayRef({0, 8}));
  CHECK(dirmoe::counter_uniform(key, RouterNoiseStream::selection, 0, 8, 1, torch::TensorOptions().device(cuda))
            .numel() == 0);
}
