#include "dirmoe/eval/model_scorer.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include <torch/torch.h>

namespace dirmoe::eval {

ModelScorer::ModelScorer(LogitsFn logits_fn, int64_t max_length, int64_t batch_size, torch::Device device,
                         int64_t pad_token)
    : logits_fn_(std::move(logits_fn)),
      max_length_(max_length),
      batch_size_(std::max<int64_t>(1, batch_size)),
      device_(device),
      pad_token_(pad_token) {
  TORCH_CHECK(max_length_ > 0, "ModelScorer: max_length must be positive");
}

std::vector<LogLikelihood> ModelScorer::score(const std::vector<TokenizedRequest>& requests) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(requests.size());
  std::vector<ScoringWindow> windows;
  windows.reserve(n);
  for (const auto& r : requests) windows.push_back(make_scoring_window(r, max_length_));
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return windows[a].input.size() > windows[b].input.size();
  });

  std::vector<LogLikelihood> results(n);
  for (int64_t b0 = 0; b0 < n; b0 += batch_size_) {
    const int64_t b1 = std::min(n, b0 + batch_size_);
    const int64_t B = b1 - b0;
    int64_t T = 0;
    for (int64_t i = b0; i < b1; ++i) T = std::max<int64_t>(T, windows[order[i]].input.size());
    auto tokens_BT = torch::full({B, T}, pad_token_, torch::kInt64);
    auto* data = tokens_BT.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i) {
      const auto& input = windows[order[b0 + i]].input;
      std::copy(input.begin(), input.end(), data + i * T);
      tokens_processed_ += static_cast<int64_t>(input.size());
    }
    auto logits_BTV = logits_fn_(tokens_BT.to(device_));
    auto logp_BTV = torch::log_softmax(logits_BTV.to(torch::kFloat32), -1);
    for (int64_t i = 0; i < B; ++i) {
      const ScoringWindow& w = windows[order[b0 + i]];
      const int64_t len = static_cast<int64_t>(w.input.size());
      const int64_t n_cont = static_cast<int64_t>(w.targets.size());
      auto logp_CV = logp_BTV[i].slice(0, len - n_cont, len);
      auto targets_C = torch::tensor(w.targets, torch::kInt64).to(logp_CV.device());
      auto picked_C = logp_CV.gather(1, targets_C.unsqueeze(1)).squeeze(1).to(torch::kFloat64).cpu();
      auto greedy_C = logp_CV.argmax(1);
      LogLikelihood& out = results[order[b0 + i]];
      out.sum = picked_C.sum().item<double>();
      out.is_greedy = torch::equal(greedy_C, targets_C);
      out.n_tokens = n_cont;
    }
    if (progress_) progress_(b1, n);
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return results;
}

SequenceNll sequence_nll(const LogitsFn& logits_fn, const std::vector<std::vector<int64_t>>& windows,
                         int64_t batch_size, torch::Device device, const ProgressFn& progress) {
  torch::NoGradGuard no_grad;
  SequenceNll total;
  const int64_t n = static_cast<int64_t>(windows.size());
  batch_size = std::max<int64_t>(1, batch_size);
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    const int64_t b1 = std::min(n, b0 + batch_size);
    int64_t T = 0;
    for (int64_t i = b0; i < b1; ++i) T = std::max<int64_t>(T, windows[i].size());
    if (T < 2) continue;
    auto tokens_BT = torch::zeros({b1 - b0, T}, torch::kInt64);
    auto mask_BT = torch::zeros({b1 - b0, T}, torch::kBool);
    for (int64_t i = b0; i < b1; ++i) {
      const auto& w = windows[i];
      if (w.empty()) continue;
      tokens_BT[i - b0].slice(0, 0, w.size()).copy_(torch::tensor(w, torch::kInt64));
      mask_BT[i - b0].slice(0, 1, w.size()).fill_(true);
    }
    auto logp_BTV = torch::log_softmax(logits_fn(tokens_BT.to(device)).to(torch::kFloat32), -1).cpu();
    // position t predicts token t+1
    auto picked_BT1 = logp_BTV.slice(1, 0, T - 1).gather(2, tokens_BT.slice(1, 1, T).unsqueeze(2)).squeeze(2);
    auto mask_BT1 = mask_BT.slice(1, 1, T);
    total.nll -= picked_BT1.masked_select(mask_BT1).to(torch::kFloat64).sum().item<double>();
    total.n_tokens += mask_BT1.sum().item<int64_t>();
    if (progress) progress(b1, n);
  }
  return total;
}

}  // namespace dirmoe::eval
