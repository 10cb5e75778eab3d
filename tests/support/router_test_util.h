#pragma once
// Small helpers shared by the router tests (tests/unit/test_router_*.cpp).
#include <algorithm>
#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>
#include <torch/types.h>

#include "dirmoe/config/config.h"
#include "dirmoe/router/dirmoe_routing_chain.h"
#include "dirmoe/router/element_kernels.h"

namespace dirmoe::testing {

/// A config for a router of width d_model over n_experts experts with k active.
inline Config router_test_config(const std::string& type, int64_t d_model, int64_t n_experts, int64_t k,
                                 double init_std = 0.5) {
  Config config;
  config.router.type = type;
  config.model.d_model = d_model;
  config.model.n_experts = n_experts;
  config.model.n_experts_active = k;
  config.model.init_std = init_std;
  return config;
}

/// DirMoE's routing chain constants away from their defaults (τ, λ^q, the α offsets, the uniform mix),
/// so that each one acts: the chain's tests on the CPU and on CUDA start from these.
inline DirmoeChainConstants nondefault_chain_constants() {
  DirmoeChainConstants c;
  c.tau = 0.7;
  c.lambda_q = 3.0;
  c.alpha_lo_offset = 0.004;
  c.alpha_eps = 1e-3;
  c.theta_mix = 1e-3;
  return c;
}

/// Whether scripts/gpu_check.py runs this test (it sets DIRMOE_GPU_REQUIRED=1): it builds beside nvcc
/// and a CUDA LibTorch, where dirmoe's CUDA kernels are always built, so a build without them must
/// fail there rather than pass on a fallback path.
inline bool gpu_check_requires_kernels() {
  const char* required = std::getenv("DIRMOE_GPU_REQUIRED");
  return required != nullptr && std::string(required) == "1";
}

/// Whether DirMoE's chain and KL run as dirmoe's CUDA kernels (built and switched on); without them a
/// comparison of the kernels with the CUDA operators would compare the operators with themselves, so
/// the GPU tests leave it out with this warning (and fail under gpu_check_requires_kernels instead).
inline bool cuda_element_kernels_or_warn() {
  if (element_passes_on(c10::Device(c10::kCUDA))) return true;
  WARN("DirMoE's CUDA element kernels are not built (or switched off): nothing to compare");
  return false;
}

/// max |a − b| over all elements, as a double (bool tensors compare as 0/1).
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

/// max |a − b| relative to max(1, max |b|), in float64 (b is the reference); REQUIREs that both are
/// defined and of one shape.
inline double scaled_max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.defined());
  REQUIRE(b.defined());
  REQUIRE(a.sizes() == b.sizes());
  const torch::Tensor a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  const double scale = std::max(1.0, b64.abs().max().item<double>());
  return (a64 - b64).abs().max().item<double>() / scale;
}

/// A 0-dim float64 tensor carrying a scalar option to a Python reference.
inline torch::Tensor scalar(double value) { return torch::full({}, value, torch::kFloat64); }

}  // namespace dirmoe::testing
