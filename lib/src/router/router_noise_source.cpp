#include "dirmoe/router/router_noise_source.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "dirmoe/router/counter_noise_element.h"

#if defined(DIRMOE_CUDA_KERNELS)
#include "router_noise_cuda.h"
#endif

namespace dirmoe {
namespace {

constexpr int64_t kMaxColumns = int64_t{1} << 20;
constexpr int64_t kMaxBlocks = int64_t{1} << 8;
constexpr int64_t kMaxLayers = int64_t{1} << 16;
constexpr int64_t kMaxTokens = int64_t{1} << 48;
constexpr int64_t kMaxDraws = int64_t{1} << 32;

/// The key fields every element's counter reads (counter_noise_element.h).
CounterNoiseWords noise_words(const RouterNoiseKey& key, RouterNoiseStream stream) {
  CounterNoiseWords w;
  w.key0 = static_cast<uint32_t>(key.seed);
  w.key1 = static_cast<uint32_t>(key.seed >> 32);
  w.draw = static_cast<uint32_t>(key.draw);
  w.layer = static_cast<uint32_t>(key.layer);
  w.stream = static_cast<uint32_t>(stream);
  return w;
}

/// That every counter of `rows` tokens from key.token_offset and `cols` columns fits its field of
/// the layout (router_noise_source.h); `what` names the caller in the message.
void check_counter_range(const char* what, const RouterNoiseKey& key, int64_t rows, int64_t cols) {
  TORCH_CHECK(cols <= kMaxColumns, what, ": at most 2^20 columns, got ", cols);
  TORCH_CHECK(key.layer >= 0 && key.layer < kMaxLayers, what, ": layer ", key.layer, " out of [0, 2^16)");
  TORCH_CHECK(key.draw >= 0 && key.draw < kMaxDraws, what, ": draw ", key.draw, " out of [0, 2^32)");
  TORCH_CHECK(key.token_offset >= 0 && key.token_offset + rows <= kMaxTokens, what, ": token indices ",
              key.token_offset, " + ", rows, " out of [0, 2^48)");
}

template <typename T>
void fill_uniform(T* out, const RouterNoiseKey& key, RouterNoiseStream stream, int64_t rows, int64_t cols,
                  int64_t words) {
  const CounterNoiseWords k = noise_words(key, stream);
  const int64_t blocks = (words + 3) / 4;
  at::parallel_for(0, rows, /*grain_size=*/std::max<int64_t>(1, 4096 / std::max<int64_t>(1, cols * blocks)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t t = begin; t < end; ++t) {
                       const uint64_t g = static_cast<uint64_t>(key.token_offset + t);
                       T* row = out + t * cols * words;
                       for (int64_t c = 0; c < cols; ++c) {
                         for (int64_t b = 0; b < blocks; ++b) {
                           uint32_t w[4];
                           counter_noise_block(k, g, static_cast<uint32_t>(c), static_cast<uint32_t>(b), w);
                           for (int64_t lane = 0; lane < 4 && 4 * b + lane < words; ++lane) {
                             row[c * words + 4 * b + lane] = static_cast<T>(philox_word_uniform(w[lane]));
                           }
                         }
                       }
                     }
                   });
}

}  // namespace

bool cuda_noise_kernels_built() {
#if defined(DIRMOE_CUDA_KERNELS)
  return true;
#else
  return false;
#endif
}

torch::Tensor counter_uniform(const RouterNoiseKey& key, RouterNoiseStream stream, int64_t rows, int64_t cols,
                              int64_t words, const torch::TensorOptions& options) {
  RECORD_FUNCTION("dirmoe::counter_uniform", std::vector<c10::IValue>());
  TORCH_CHECK(rows >= 0 && cols >= 0 && words >= 1, "counter_uniform: bad shape (", rows, ", ", cols, ", ", words, ")");
  TORCH_CHECK((words + 3) / 4 <= kMaxBlocks, "counter_uniform: at most 1024 words per element, got ", words);
  check_counter_range("counter_uniform", key, rows, cols);
  const auto dtype = options.dtype().toScalarType();
  // float32 and float64 are filled directly (the values are exact in both); other dtypes via float32.
  const auto fill_dtype = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const std::vector<int64_t> shape = words == 1 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows, cols, words};
#if defined(DIRMOE_CUDA_KERNELS)
  if (options.device().is_cuda()) {
    torch::Tensor out = torch::empty(shape, options.dtype(fill_dtype));
    cuda_noise::launch_counter_uniform(noise_words(key, stream), static_cast<uint64_t>(key.token_offset), rows, cols,
                                       words, fill_dtype == torch::kFloat64, out.data_ptr(), out.get_device());
    return out.to(dtype);
  }
#endif
  // On the host; a CUDA result is copied from pinned memory without waiting for the device.
  const bool to_device = options.device().is_cuda();
  torch::Tensor host = torch::empty(shape, torch::TensorOptions().dtype(fill_dtype).pinned_memory(to_device));
  if (fill_dtype == torch::kFloat64) {
    fill_uniform(host.data_ptr<double>(), key, stream, rows, cols, words);
  } else {
    fill_uniform(host.data_ptr<float>(), key, stream, rows, cols, words);
  }
  return host.to(options.device(), dtype, /*non_blocking=*/to_device);
}

namespace {

/// The smallest normal number of alpha's dtype, the floor of every draw (as at::_standard_gamma).
double smallest_normal(torch::ScalarType dtype) {
  if (dtype == torch::kFloat64) return std::numeric_limits<double>::min();
  return static_cast<double>(std::numeric_limits<float>::min());  // float32; bf16 and half: float32's
}

#if defined(DIRMOE_CUDA_KERNELS)
/// counter_gamma on CUDA: one thread per element (router_noise_cuda.cu), the CPU's arithmetic.
/// float32 and float64 α directly; other dtypes through float32.
torch::Tensor counter_gamma_cuda(const RouterNoiseKey& key, RouterNoiseStream stream, const torch::Tensor& alpha_TC) {
  check_counter_range("counter_gamma", key, alpha_TC.size(0), alpha_TC.size(1));
  RECORD_FUNCTION("dirmoe::counter_gamma", std::vector<c10::IValue>());  // a named span in profiler traces
  torch::NoGradGuard no_grad;
  const auto dtype = alpha_TC.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const torch::Tensor alpha = alpha_TC.detach().to(dtype).contiguous();
  torch::Tensor sample_TC = torch::empty_like(alpha);
  cuda_noise::launch_counter_gamma(noise_words(key, stream), static_cast<uint64_t>(key.token_offset), alpha.size(0),
                                   alpha.size(1), dtype == torch::kFloat64, alpha.data_ptr(), sample_TC.data_ptr(),
                                   smallest_normal(alpha_TC.scalar_type()), alpha.get_device());
  return sample_TC.to(alpha_TC.scalar_type());
}
#endif

}  // namespace

torch::Tensor counter_gamma_elementwise(const RouterNoiseKey& key, RouterNoiseStream stream,
                                        const torch::Tensor& alpha_TC) {
  TORCH_CHECK(alpha_TC.dim() == 2 && alpha_TC.device().is_cpu(),
              "counter_gamma_elementwise: alpha must be a (T, C) CPU tensor, got ", alpha_TC.sizes(), " on ",
              alpha_TC.device());
  check_counter_range("counter_gamma", key, alpha_TC.size(0), alpha_TC.size(1));
  RECORD_FUNCTION("dirmoe::counter_gamma", std::vector<c10::IValue>());  // a named span in profiler traces
  torch::NoGradGuard no_grad;
  const int64_t T = alpha_TC.size(0), C = alpha_TC.size(1);
  const torch::Tensor alpha = alpha_TC.detach().to(torch::kFloat64).contiguous();
  torch::Tensor sample_TC = torch::empty({T, C}, alpha.options());
  const double* a = alpha.data_ptr<double>();
  double* out = sample_TC.data_ptr<double>();
  const CounterNoiseWords k = noise_words(key, stream);
  const double tiny = smallest_normal(alpha_TC.scalar_type());
  at::parallel_for(0, T, /*grain_size=*/std::max<int64_t>(1, 1024 / std::max<int64_t>(1, C)), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const uint64_t g = static_cast<uint64_t>(key.token_offset + t);
      for (int64_t c = 0; c < C; ++c) {
        out[t * C + c] = std::max(counter_gamma_element(k, g, static_cast<uint32_t>(c), a[t * C + c]), tiny);
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
#if defined(DIRMOE_CUDA_KERNELS)
  if (alpha_TC.device().is_cuda()) return counter_gamma_cuda(key, stream, alpha_TC);
#endif
  return counter_gamma_tensor_ops(key, stream, alpha_TC);
}

torch::Tensor counter_gamma_tensor_ops(const RouterNoiseKey& key, RouterNoiseStream stream,
                                       const torch::Tensor& alpha_TC) {
  TORCH_CHECK(alpha_TC.dim() == 2, "counter_gamma: alpha must be (T, C), got ", alpha_TC.sizes());
  RECORD_FUNCTION("dirmoe::counter_gamma", std::vector<c10::IValue>());  // a named span in profiler traces
  torch::NoGradGuard no_grad;
  constexpr int64_t K = kGammaCandidateCount;
  const int64_t T = alpha_TC.size(0), C = alpha_TC.size(1);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(alpha_TC.device());
  // words: [0, K/2) and [K/2, K) the Box–Muller pairs, [K, 2K) the acceptance draws, 2K the boost
  const torch::Tensor u_TCW = counter_uniform(key, stream, T, C, kGammaWords, f64);
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
