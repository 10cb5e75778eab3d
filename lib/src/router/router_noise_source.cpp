#include "dirmoe/router/router_noise_source.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "dirmoe/core/philox.h"

namespace dirmoe {
namespace {

constexpr int64_t kMaxColumns = int64_t{1} << 20;
constexpr int64_t kMaxBlocks = int64_t{1} << 8;
constexpr int64_t kMaxLayers = int64_t{1} << 16;
constexpr int64_t kMaxTokens = int64_t{1} << 48;
constexpr int64_t kMaxDraws = int64_t{1} << 32;

template <typename T>
void fill_uniform(T* out, const RouterNoiseKey& key, uint32_t stream, int64_t rows, int64_t cols, int64_t words) {
  const PhiloxKey k = {static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32)};
  const int64_t blocks = (words + 3) / 4;
  at::parallel_for(0, rows, /*grain_size=*/std::max<int64_t>(1, 4096 / std::max<int64_t>(1, cols * blocks)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t t = begin; t < end; ++t) {
                       const uint64_t g = static_cast<uint64_t>(key.token_offset + t);
                       T* row = out + t * cols * words;
                       for (int64_t c = 0; c < cols; ++c) {
                         for (int64_t b = 0; b < blocks; ++b) {
                           const PhiloxCounter counter = {
                               static_cast<uint32_t>(g),
                               static_cast<uint32_t>(c) | static_cast<uint32_t>(b) << 20 | stream << 28,
                               static_cast<uint32_t>(key.draw),
                               static_cast<uint32_t>(key.layer) | static_cast<uint32_t>((g >> 32) & 0xffff) << 16};
                           const PhiloxCounter w = philox4x32_10(counter, k);
                           for (int64_t lane = 0; lane < 4 && 4 * b + lane < words; ++lane) {
                             row[c * words + 4 * b + lane] = static_cast<T>(philox_uniform(w[static_cast<size_t>(lane)]));
                           }
                         }
                       }
                     }
                   });
}

}  // namespace

torch::Tensor counter_uniform(const RouterNoiseKey& key, RouterNoiseStream stream, int64_t rows, int64_t cols,
                              int64_t words, const torch::TensorOptions& options) {
  RECORD_FUNCTION("dirmoe::counter_uniform", std::vector<c10::IValue>());
  TORCH_CHECK(rows >= 0 && cols >= 0 && words >= 1, "counter_uniform: bad shape (", rows, ", ", cols, ", ", words, ")");
  TORCH_CHECK(cols <= kMaxColumns, "counter_uniform: at most 2^20 columns, got ", cols);
  TORCH_CHECK((words + 3) / 4 <= kMaxBlocks, "counter_uniform: at most 1024 words per element, got ", words);
  TORCH_CHECK(key.layer >= 0 && key.layer < kMaxLayers, "counter_uniform: layer ", key.layer, " out of [0, 2^16)");
  TORCH_CHECK(key.draw >= 0 && key.draw < kMaxDraws, "counter_uniform: draw ", key.draw, " out of [0, 2^32)");
  TORCH_CHECK(key.token_offset >= 0 && key.token_offset + rows <= kMaxTokens, "counter_uniform: token indices ",
              key.token_offset, " + ", rows, " out of [0, 2^48)");
  const auto dtype = options.dtype().toScalarType();
  // float32 and float64 are filled directly (the values are exact in both); other dtypes via float32.
  const auto host_dtype = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const bool to_cuda = options.device().is_cuda();
  torch::Tensor host = torch::empty(words == 1 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows, cols, words},
                                    torch::TensorOptions().dtype(host_dtype).pinned_memory(to_cuda));
  if (host_dtype == torch::kFloat64) {
    fill_uniform(host.data_ptr<double>(), key, static_cast<uint32_t>(stream), rows, cols, words);
  } else {
    fill_uniform(host.data_ptr<float>(), key, static_cast<uint32_t>(stream), rows, cols, words);
  }
  return host.to(options.device(), dtype, /*non_blocking=*/to_cuda);
}

torch::Tensor counter_gamma(const RouterNoiseKey& key, RouterNoiseStream stream, const torch::Tensor& alpha_TC) {
  TORCH_CHECK(alpha_TC.dim() == 2, "counter_gamma: alpha must be (T, C), got ", alpha_TC.sizes());
  RECORD_FUNCTION("dirmoe::counter_gamma", std::vector<c10::IValue>());  // a named span in profiler traces
  torch::NoGradGuard no_grad;
  constexpr int64_t K = kGammaCandidates;
  const int64_t T = alpha_TC.size(0), C = alpha_TC.size(1);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(alpha_TC.device());
  // words: [0, K/2) and [K/2, K) the Box–Muller pairs, [K, 2K) the acceptance draws, 2K the boost
  const torch::Tensor u_TCW = counter_uniform(key, stream, T, C, 2 * K + 1, f64);
  const torch::Tensor radius = torch::sqrt(-2.0 * torch::log(u_TCW.narrow(2, 0, K / 2)));
  const torch::Tensor angle = (2.0 * M_PI) * u_TCW.narrow(2, K / 2, K / 2);
  const torch::Tensor x_TCK = torch::cat({radius * torch::cos(angle), radius * torch::sin(angle)}, 2);
  const torch::Tensor log_u_TCK = torch::log(u_TCW.narrow(2, K, K));
  const torch::Tensor log_boost_TC = torch::log(u_TCW.select(2, 2 * K));

  const torch::Tensor alpha = alpha_TC.detach().to(torch::kFloat64);
  const torch::Tensor boosted_TC = alpha < 1.0;
  const torch::Tensor a_TC = torch::where(boosted_TC, alpha + 1.0, alpha);
  const torch::Tensor d_TC1 = (a_TC - 1.0 / 3.0).unsqueeze(2);
  const torch::Tensor c_TC1 = torch::rsqrt(9.0 * d_TC1);
  const torch::Tensor v_TCK = (1.0 + c_TC1 * x_TCK).pow(3);
  const torch::Tensor log_v_TCK = torch::log(v_TCK.clamp_min(std::numeric_limits<double>::min()));
  const torch::Tensor accepted_TCK =
      (v_TCK > 0).logical_and(log_u_TCK < 0.5 * x_TCK.square() + d_TC1 - d_TC1 * v_TCK + d_TC1 * log_v_TCK);
  // argmax returns the first maximal index: the first accepted candidate
  const torch::Tensor first_TC1 = accepted_TCK.to(torch::kInt32).argmax(2, /*keepdim=*/true);
  const torch::Tensor draw_TC = torch::where(accepted_TCK.any(2), (d_TC1 * v_TCK).gather(2, first_TC1).squeeze(2),
                                             d_TC1.squeeze(2));
  const torch::Tensor sample_TC = torch::where(boosted_TC, draw_TC * torch::exp(log_boost_TC / alpha), draw_TC);
  const double tiny = alpha_TC.scalar_type() == torch::kFloat64 ? std::numeric_limits<double>::min()
                      : alpha_TC.scalar_type() == torch::kFloat32 ? static_cast<double>(std::numeric_limits<float>::min())
                                                                  : 1.1754943508222875e-38;  // bf16/half: float32's
  return sample_TC.to(alpha_TC.scalar_type()).clamp_min(tiny);
}

torch::Tensor fresh_uniform_like(const std::optional<RouterNoiseKey>& key, RouterNoiseStream stream,
                                 const torch::Tensor& like) {
  TORCH_CHECK(like.dim() == 2, "fresh_uniform_like: expected a (rows, cols) tensor, got ", like.sizes());
  if (!key) return torch::rand_like(like);
  return counter_uniform(*key, stream, like.size(0), like.size(1), 1, like.options());
}

torch::Tensor fresh_uniform(const std::optional<RouterNoiseKey>& key, RouterNoiseStream stream, int64_t rows,
                            int64_t cols, const torch::TensorOptions& options) {
  if (!key) return torch::rand({rows, cols}, options);
  return counter_uniform(*key, stream, rows, cols, 1, options);
}

torch::Tensor gamma_draws(const torch::Tensor& given, const std::optional<RouterNoiseKey>& key,
                          RouterNoiseStream stream, const torch::Tensor& alpha_TC) {
  if (given.defined() || !key) return given;
  return counter_gamma(*key, stream, alpha_TC);
}

}  // namespace dirmoe
