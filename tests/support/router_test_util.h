#pragma once
// Small helpers shared by the router tests (tests/unit/test_router_*.cpp).
#include <string>

#include <torch/types.h>

#include "dirmoe/config/config.h"

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

/// max |a − b| over all elements, as a double (bool tensors compare as 0/1).
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

/// A 0-dim float64 tensor carrying a scalar option to a Python reference.
inline torch::Tensor scalar(double value) { return torch::full({}, value, torch::kFloat64); }

}  // namespace dirmoe::testing
