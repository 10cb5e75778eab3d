#include "dirmoe/data/window_sampler.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "dirmoe/core/error.h"
#include "dirmoe/data/document_split.h"

namespace dirmoe::data {

namespace {
constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;
}

WindowSampler::WindowSampler(const TokenSplit& split, int64_t seq_len, uint64_t seed,
                             const std::map<std::string, double>& domain_weights, int64_t rank)
    : split_(split), seq_len_(seq_len), seed_(seed), rank_(rank), weights_(domain_weights) {
  if (seq_len <= 0) throw DataError(fmt::format("seq_len must be > 0, got {}", seq_len));
  if (rank < 0) throw DataError(fmt::format("rank must be >= 0, got {}", rank));
  if (split.size() < seq_len + 1) {
    throw DataError(fmt::format("split '{}' has {} tokens, fewer than one window of seq_len + 1 = {}", split.name(),
                                split.size(), seq_len + 1));
  }
  key_ = splitmix64(splitmix64(seed) ^ splitmix64(static_cast<uint64_t>(rank) + 0x5851f42d4c957f2dULL));
  if (!weights_.empty()) {
    const auto& names = split.domains();
    std::vector<double> w(names.size(), 0.0);
    double total = 0;
    for (const auto& [name, weight] : weights_) {
      auto it = std::find(names.begin(), names.end(), name);
      if (it == names.end()) {
        throw DataError(fmt::format("data.domain_weights: no domain '{}' in this data set (domains: {})", name,
                                    fmt::join(names, ", ")));
      }
      if (!(weight >= 0) || !std::isfinite(weight)) {
        throw DataError(fmt::format("data.domain_weights.{}: weight must be finite and >= 0, got {}", name, weight));
      }
      w[static_cast<size_t>(it - names.begin())] = weight;
    }
    std::vector<std::vector<int64_t>> docs(names.size());
    for (int64_t d = 0; d < split.n_documents(); ++d) {
      if (split.doc_end(d) > split.doc_begin(d)) docs[static_cast<size_t>(split.doc_domain(d))].push_back(d);
    }
    for (size_t k = 0; k < names.size(); ++k) {
      if (w[k] <= 0) continue;
      if (docs[k].empty()) {
        throw DataError(fmt::format("data.domain_weights.{}: split '{}' has no tokens of that domain", names[k], split.name()));
      }
      total += w[k];
      domain_cdf_.push_back(total);
      std::vector<int64_t> cum;
      int64_t c = 0;
      for (int64_t d : docs[k]) {
        c += split.doc_end(d) - split.doc_begin(d);
        cum.push_back(c);
      }
      domain_docs_.push_back(std::move(docs[k]));
      domain_cum_.push_back(std::move(cum));
    }
    if (total <= 0) throw DataError("data.domain_weights: all weights are 0");
    for (double& c : domain_cdf_) c /= total;
  }
}

uint64_t WindowSampler::next_u64() { return splitmix64(key_ + kGamma * (counter_++)); }

int64_t WindowSampler::uniform(int64_t n) {
  // Lemire's multiply-shift: floor(u · n / 2^64), bias < n / 2^64.
  return static_cast<int64_t>((static_cast<__uint128_t>(next_u64()) * static_cast<uint64_t>(n)) >> 64);
}

int64_t WindowSampler::draw_start() {
  const int64_t max_start = split_.size() - (seq_len_ + 1);
  if (domain_cdf_.empty()) return uniform(max_start + 1);
  const double u = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  size_t k = static_cast<size_t>(std::upper_bound(domain_cdf_.begin(), domain_cdf_.end(), u) - domain_cdf_.begin());
  k = std::min(k, domain_cdf_.size() - 1);
  const auto& cum = domain_cum_[k];
  const int64_t p = uniform(cum.back());
  const size_t j = static_cast<size_t>(std::upper_bound(cum.begin(), cum.end(), p) - cum.begin());
  const int64_t within = p - (j == 0 ? 0 : cum[j - 1]);
  return std::min(split_.doc_begin(domain_docs_[k][j]) + within, max_start);
}

torch::Tensor WindowSampler::next_batch(int64_t batch_size) {
  TORCH_CHECK(batch_size > 0, "batch_size must be > 0, got ", batch_size);
  auto tokens_BT1 = torch::empty({batch_size, seq_len_ + 1}, torch::kInt64);
  int64_t* out = tokens_BT1.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch_size; ++b) {
    split_.copy_tokens(draw_start(), seq_len_ + 1, out + b * (seq_len_ + 1));
    ++windows_;
  }
  return tokens_BT1;
}

nlohmann::json WindowSampler::state() const {
  return {{"kind", "window_sampler"}, {"split", split_.name()},  {"split_tokens", split_.size()},
          {"seq_len", seq_len_},      {"seed", seed_},           {"rank", rank_},
          {"counter", counter_},      {"windows", windows_},     {"domain_weights", weights_}};
}

void WindowSampler::restore(const nlohmann::json& s) {
  auto mismatch = [&](const char* key, const std::string& have, const std::string& want) {
    return DataError(fmt::format("sampler state: {} is {} in the saved state but {} here; resume with the same data and "
                                 "settings", key, have, want));
  };
  try {
    if (s.at("kind").get<std::string>() != "window_sampler") throw DataError("sampler state: not a window_sampler state");
    if (s.at("split").get<std::string>() != split_.name()) throw mismatch("split", s.at("split").dump(), split_.name());
    if (s.at("split_tokens").get<int64_t>() != split_.size()) {
      throw mismatch("split_tokens", s.at("split_tokens").dump(), std::to_string(split_.size()));
    }
    if (s.at("seq_len").get<int64_t>() != seq_len_) throw mismatch("seq_len", s.at("seq_len").dump(), std::to_string(seq_len_));
    if (s.at("seed").get<uint64_t>() != seed_) throw mismatch("seed", s.at("seed").dump(), std::to_string(seed_));
    if (s.at("rank").get<int64_t>() != rank_) throw mismatch("rank", s.at("rank").dump(), std::to_string(rank_));
    if (s.at("domain_weights").get<std::map<std::string, double>>() != weights_) {
      throw mismatch("domain_weights", s.at("domain_weights").dump(), nlohmann::json(weights_).dump());
    }
    counter_ = s.at("counter").get<uint64_t>();
    windows_ = s.at("windows").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("sampler state: malformed ({})", e.what()));
  }
}

SequentialReader::SequentialReader(const TokenSplit& split, int64_t seq_len, int64_t window_stride)
    : split_(split), seq_len_(seq_len), stride_(window_stride) {
  if (seq_len <= 0) throw DataError(fmt::format("seq_len must be > 0, got {}", seq_len));
  if (window_stride <= 0) throw DataError(fmt::format("window_stride must be > 0, got {}", window_stride));
  const int64_t all_windows = split.size() > seq_len ? (split.size() - 1) / seq_len : 0;
  n_windows_ = (all_windows + stride_ - 1) / stride_;
}

bool SequentialReader::next(int64_t batch_size, torch::Tensor& tokens_BT1, torch::Tensor& domains_BT) {
  TORCH_CHECK(batch_size > 0, "batch_size must be > 0, got ", batch_size);
  const int64_t B = std::min(batch_size, n_windows_ - next_window_);
  if (B <= 0) return false;
  tokens_BT1 = torch::empty({B, seq_len_ + 1}, torch::kInt64);
  domains_BT = torch::empty({B, seq_len_}, torch::kInt64);
  int64_t* tok = tokens_BT1.data_ptr<int64_t>();
  int64_t* dom = domains_BT.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = (next_window_ + b) * stride_ * seq_len_;
    split_.copy_tokens(start, seq_len_ + 1, tok + b * (seq_len_ + 1));
    // Walk the document boundaries instead of a binary search per token.
    int64_t d = split_.document_of(start);
    for (int64_t t = 0; t < seq_len_; ++t) {
      while (start + t >= split_.doc_end(d)) ++d;
      dom[b * seq_len_ + t] = split_.doc_domain(d);
    }
  }
  next_window_ += B;
  return true;
}

}  // namespace dirmoe::data
