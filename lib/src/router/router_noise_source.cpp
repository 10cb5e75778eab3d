#include "dirmoe/router/router_noise_source.h"

#include <algorithm>
#include <array>
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

/// The four 32-bit words of block b of element (token g, column c): words 4b..4b+3 of that element.
PhiloxCounter philox_block(const PhiloxKey& k, const RouterNoiseKey& key, uint32_t stream, uint64_t g, int64_t c,
                           int64_t b) {
  const PhiloxCounter counter = {static_cast<uint32_t>(g),
                                 static_cast<uint32_t>(c) | static_cast<uint32_t>(b) << 20 | stream << 28,
                                 static_cast<uint32_t>(key.draw),
                                 static_cast<uint32_t>(key.layer) | static_cast<uint32_t>((g >> 32) & 0xffff) << 16};
  return philox4x32_10(counter, k);
}

PhiloxKey philox_key(const RouterNoiseKey& key) {
  return {static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32)};
}

template <typename T>
void fill_uniform(T* out, const RouterNoiseKey& key, uint32_t stream, int64_t rows, int64_t cols, int64_t words) {
  const PhiloxKey k = philox_key(key);
  const int64_t blocks = (words + 3) / 4;
  at::parallel_for(0, rows, /*grain_size=*/std::max<int64_t>(1, 4096 / std::max<int64_t>(1, cols * blocks)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t t = begin; t < end; ++t) {
                       const uint64_t g = static_cast<uint64_t>(key.token_offset + t);
                       T* row = out + t * cols * words;
                       for (int64_t c = 0; c < cols; ++c) {
                         for (int64_t b = 0; b < blocks; ++b) {
                           const PhiloxCounter w = philox_block(k, key, stream, g, c, b);
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

namespace {

/// The smallest normal number of alpha's dtype, the floor of every draw (as at::_standard_gamma).
double smallest_normal(torch::ScalarType dtype) {
  if (dtype == torch::kFloat64) return std::numeric_limits<double>::min();
  return static_cast<double>(std::numeric_limits<float>::min());  // float32; bf16 and half: float32's
}

/// One element's Marsaglia–Tsang draw from its 2K+1 words (counter_gamma's layout), the candidates
/// tried in order and the words of a block generated only when a candidate needs them: the first
/// candidate is accepted ≥ 95% of the time, so most elements need blocks 0, 1, 2 (and 4 when
/// α < 1) of the five. The same double arithmetic, in the same order, as the tensor path.
double gamma_element(const PhiloxKey& k, const RouterNoiseKey& key, uint32_t stream, uint64_t g, int64_t c,
                     double alpha) {
  constexpr int64_t K = kGammaCandidates;
  static_assert(K == 8, "the word layout below assumes 8 candidates: 5 blocks of 4 words");
  std::array<PhiloxCounter, 5> block{};
  std::array<bool, 5> have{};
  auto word = [&](int64_t w) {
    const int64_t b = w / 4;
    if (!have[static_cast<size_t>(b)]) {
      block[static_cast<size_t>(b)] = philox_block(k, key, stream, g, c, b);
      have[static_cast<size_t>(b)] = true;
    }
    return philox_uniform(block[static_cast<size_t>(b)][static_cast<size_t>(w % 4)]);
  };
  const bool boosted = alpha < 1.0;
  const double a = boosted ? alpha + 1.0 : alpha;
  const double d = a - 1.0 / 3.0;
  const double cc = 1.0 / std::sqrt(9.0 * d);
  double draw = d;
  for (int64_t j = 0; j < K; ++j) {
    const int64_t pair = j % (K / 2);
    const double radius = std::sqrt(-2.0 * std::log(word(pair)));
    const double angle = (2.0 * M_PI) * word(K / 2 + pair);
    const double x = j < K / 2 ? radius * std::cos(angle) : radius * std::sin(angle);
    const double base = 1.0 + cc * x;
    const double v = base * base * base;
    const double log_v = std::log(std::max(v, std::numeric_limits<double>::min()));
    if (v > 0 && std::log(word(K + j)) < 0.5 * (x * x) + d - d * v + d * log_v) {
      draw = d * v;
      break;
    }
  }
  if (boosted) draw *= std::exp(std::log(word(2 * K)) / alpha);
  return draw;
}

}  // namespace

torch::Tensor counter_gamma_elementwise(const RouterNoiseKey& key, RouterNoiseStream stream,
                                        const torch::Tensor& alpha_TC) {
  TORCH_CHECK(alpha_TC.dim() == 2 && alpha_TC.device().is_cpu(),
              "counter_gamma_elementwise: alpha must be a (T, C) CPU tensor, got ", alpha_TC.sizes(), " on ",
              alpha_TC.device());
  TORCH_CHECK(alpha_TC.size(1) <= kMaxColumns, "counter_gamma: at most 2^20 columns, got ", alpha_TC.size(1));
  TORCH_CHECK(key.layer >= 0 && key.layer < kMaxLayers, "counter_gamma: layer ", key.layer, " out of [0, 2^16)");
  TORCH_CHECK(key.draw >= 0 && key.draw < kMaxDraws, "counter_gamma: draw ", key.draw, " out of [0, 2^32)");
  TORCH_CHECK(key.token_offset >= 0 && key.token_offset + alpha_TC.size(0) <= kMaxTokens, "counter_gamma: token indices ",
              key.token_offset, " + ", alpha_TC.size(0), " out of [0, 2^48)");
  RECORD_FUNCTION("dirmoe::counter_gamma", std::vector<c10::IValue>());  // a named span in profiler traces
  torch::NoGradGuard no_grad;
  const int64_t T = alpha_TC.size(0), C = alpha_TC.size(1);
  const torch::Tensor alpha = alpha_TC.detach().to(torch::kFloat64).contiguous();
  torch::Tensor sample_TC = torch::empty({T, C}, alpha.options());
  const double* a = alpha.data_ptr<double>();
  double* out = sample_TC.data_ptr<double>();
  const PhiloxKey k = philox_key(key);
  const double tiny = smallest_normal(alpha_TC.scalar_type());
  at::parallel_for(0, T, /*grain_size=*/std::max<int64_t>(1, 1024 / std::max<int64_t>(1, C)), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const uint64_t g = static_cast<uint64_t>(key.token_offset + t);
      for (int64_t c = 0; c < C; ++c) {
        out[t * C + c] = std::max(gamma_element(k, key, static_cast<uint32_t>(stream), g, c, a[t * C + c]), tiny);
      }
    }
  });
  // NOTE: clamped in float64, then rounded: a float32 result can round a draw just above float32's
  // smallest normal to it, never below.
  return sample_TC.to(alpha_TC.scalar_type());
}

torch::Tensor counter_gamma(const RouterNoiseKey& key, RouterNoiseStream stream, const torch::Tensor& alpha_TC) {
  TORCH_CHECK(alpha_TC.dim() == 2, "counter_gamma: alpha must be (T, C), got ", alpha_TC.sizes());
  if (alpha_TC.device().is_cpu()) return counter_gamma_elementwise(key, stream, alpha_TC);
  return counter_gamma_tensor_ops(key, stream, alpha_TC);
}

torch::Tensor counter_gamma_tensor_ops(const RouterNoiseKey& key, RouterNoiseStream stream,
                                       const torch::Tensor& alpha_TC) {
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
  return sample_TC.to(alpha_TC.scalar_type()).clamp_min(smallest_normal(alpha_TC.scalar_type()));
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
