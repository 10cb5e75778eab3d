#pragma once
// Random training windows over a token split, from a generator of its own so that a resumed run
// draws exactly the windows the interrupted one would have drawn.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "dirmoe/data/shard_dataset.h"

namespace dirmoe::data {

/// Draws windows of seq_len + 1 consecutive tokens (inputs and shifted targets), as nanoGPT's
/// get_batch does: windows may run across document boundaries (documents end with EOS).
///
/// Start positions: without weights, uniform over [0, N − seq_len − 1]. With `domain_weights`
/// (name → weight ≥ 0, normalised; domains not named get 0), a domain d is drawn with
/// probability w_d, then a start uniform over the tokens of d's documents (clamped so the
/// window fits in the split).
///
/// Randomness: the i-th 64-bit draw is splitmix64(key + i·γ) with key derived from (seed, rank),
/// a counter-based stream (cf. Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
/// SC 2011): `state()` is the counter, and ranks get independent streams.
class WindowSampler {
 public:
  WindowSampler(const TokenSplit& split, int64_t seq_len, uint64_t seed,
                const std::map<std::string, double>& domain_weights = {}, int64_t rank = 0);

  /// (batch_size, seq_len + 1) int64 token ids.
  torch::Tensor next_batch(int64_t batch_size);
  /// Where the stream stands (JSON object; goes into checkpoints).
  nlohmann::json state() const;
  /// Continue from a `state()`; throws DataError if it was taken on another split, seq_len, seed
  /// or rank (the windows would silently differ).
  void restore(const nlohmann::json& state);
  int64_t seq_len() const { return seq_len_; }
  /// Windows drawn so far.
  int64_t windows_drawn() const { return windows_; }

 private:
  uint64_t next_u64();
  int64_t uniform(int64_t n);  // in [0, n)
  int64_t draw_start();

  TokenSplit split_;
  int64_t seq_len_;
  uint64_t seed_;
  int64_t rank_;
  uint64_t key_;
  uint64_t counter_ = 0;
  int64_t windows_ = 0;
  std::map<std::string, double> weights_;
  // Weighted mode only:
  std::vector<double> domain_cdf_;                 // cumulative normalised weights of sampled domains
  std::vector<std::vector<int64_t>> domain_docs_;  // documents of each sampled domain
  std::vector<std::vector<int64_t>> domain_cum_;   // cumulative token counts of those documents
};

/// In-order windows for evaluation and analysis: window w covers tokens
/// [w·seq_len, w·seq_len + seq_len + 1), so every token but the first is a target exactly once;
/// a tail shorter than seq_len + 1 tokens is left out. With `window_stride` s > 1 only every s-th
/// window is read (windows 0, s, 2s, ...): a sample spread evenly over the whole split, so that
/// a partial read still sees every domain (splits are stored domain by domain).
class SequentialReader {
 public:
  SequentialReader(const TokenSplit& split, int64_t seq_len, int64_t window_stride = 1);
  /// Fill the next up-to-`batch_size` windows: tokens_BT1 (B, seq_len + 1) int64 and domains_BT
  /// (B, seq_len) int64, the domain id of each input token tokens_BT1[:, t]. Returns false when
  /// no window is left (the last batch may have fewer rows).
  bool next(int64_t batch_size, torch::Tensor& tokens_BT1, torch::Tensor& domains_BT);
  int64_t n_windows() const { return n_windows_; }
  /// Windows returned so far.
  int64_t position() const { return next_window_; }
  void reset() { next_window_ = 0; }

 private:
  TokenSplit split_;
  int64_t seq_len_;
  int64_t stride_;
  int64_t n_windows_;  // windows this reader yields (after the stride)
  int64_t next_window_ = 0;
};

}  // namespace dirmoe::data
