// The harness's context/continuation token split, left truncation, the metrics, and batched
// model scoring, on hand-made examples whose answers are worked out by hand.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "dirmoe/eval/model_scorer.h"
#include "dirmoe/eval/task_evaluator.h"

using namespace dirmoe::eval;

namespace {

// Greedy longest-match over a fixed vocabulary: joint and separate encodings differ, which is what
// the harness's split is about.
class FakeEncoder : public TextEncoder {
 public:
  FakeEncoder() {
    const char* pieces[] = {"a", "b", "c", "ab", "bc", " ", " yes", " no", "y", "e", "s", "n", "o", "A", ":", "x"};
    int64_t id = 10;
    for (const char* p : pieces) vocab_[p] = id++;
  }
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids;
    size_t i = 0;
    while (i < text.size()) {
      size_t best = 0;
      int64_t best_id = 0;
      for (const auto& [piece, id] : vocab_) {
        if (piece.size() > best && text.compare(i, piece.size(), piece) == 0) {
          best = piece.size();
          best_id = id;
        }
      }
      if (best == 0) throw std::runtime_error("fake encoder: no piece for '" + text.substr(i, 1) + "'");
      ids.push_back(best_id);
      i += best;
    }
    return ids;
  }
  int64_t prefix_token() const override { return 1; }
  int64_t id(const std::string& piece) const { return vocab_.at(piece); }

 private:
  std::map<std::string, int64_t> vocab_;
};

// Returns log-likelihoods from a table keyed by the continuation's first token.
class TableScorer : public LogLikelihoodScorer {
 public:
  std::map<int64_t, LogLikelihood> table;
  std::vector<LogLikelihood> score(const std::vector<TokenizedRequest>& requests) override {
    std::vector<LogLikelihood> out;
    for (const auto& r : requests) out.push_back(table.at(r.continuation.at(0)));
    return out;
  }
  int64_t max_length() const override { return 64; }
};

}  // namespace

TEST_CASE("continuation tokens are the joint encoding's suffix beyond the context's tokens", "[eval]") {
  FakeEncoder enc;
  // encode("abc") = [ab, c], encode("a") = [a]: the continuation is [c] (suffix after 1 token), not
  // encode("bc") = [bc].
  TokenizedRequest r = encode_request(enc, {"a", "bc"});
  CHECK(r.context == std::vector<int64_t>{enc.id("a")});
  CHECK(r.continuation == std::vector<int64_t>{enc.id("c")});
  // a trailing space of the context moves to the continuation: "A: " + "yes" → "A:" + " yes"
  r = encode_request(enc, {"A: ", "yes"});
  CHECK(r.context == std::vector<int64_t>{enc.id("A"), enc.id(":")});
  CHECK(r.continuation == std::vector<int64_t>{enc.id(" yes")});
  // without the move it would have been [" ", "y", "e", "s"]
  r = encode_request(enc, {"A:", " no"});
  CHECK(r.continuation == std::vector<int64_t>{enc.id(" no")});
  // empty context → the prefix token
  r = encode_request(enc, {"", "ab"});
  CHECK(r.context == std::vector<int64_t>{1});
  CHECK(r.continuation == std::vector<int64_t>{enc.id("ab")});
}

TEST_CASE("left truncation keeps the last L tokens of context + continuation minus one", "[eval]") {
  TokenizedRequest r;
  r.context = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  r.continuation = {10, 11, 12};
  ScoringWindow w = make_scoring_window(r, /*max_length=*/8);
  CHECK(w.input == std::vector<int64_t>{4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(w.targets == std::vector<int64_t>{10, 11, 12});
  w = make_scoring_window(r, /*max_length=*/100);
  CHECK(w.input == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  // the continuation alone must fit the window
  CHECK_THROWS(make_scoring_window(r, /*max_length=*/2));
  w = make_scoring_window(r, /*max_length=*/3);
  CHECK(w.input == std::vector<int64_t>{9, 10, 11});
}

TEST_CASE("acc, acc_norm and stderr from known log-likelihoods", "[eval]") {
  FakeEncoder enc;
  Task task;
  task.name = "toy";
  task.kind = TaskKind::kMultipleChoice;
  // choices " a" (1 char) and " bc"→ continuation token "bc" (2 chars); gold alternates
  auto doc = [](int64_t gold) {
    TaskDoc d;
    d.requests = {{"x", " a"}, {"x", " bc"}};
    d.choice_chars = {1, 4};  // deliberately not the continuation length: acc_norm uses these
    d.gold = gold;
    return d;
  };
  task.docs = {doc(0), doc(1), doc(1), doc(0)};
  // the continuations encode as [" ", "a"] and [" ", "bc"]: key the table by the 1st token... both
  // start with " ", so use distinct contexts instead.
  task.docs[0].requests = {{"x", "a"}, {"x", "b"}};
  TableScorer scorer;
  scorer.table[enc.id("a")] = {-2.0, false, 1};
  scorer.table[enc.id("b")] = {-3.0, false, 1};
  scorer.table[enc.id(" ")] = {-1.0, false, 1};
  // docs 1-3 tie at -1 (first max wins → prediction 0); doc 0: -2 vs -3 → 0.
  TaskResult res = evaluate_task(task, enc, scorer);
  CHECK(res.n == 4);
  CHECK(res.predictions == std::vector<int64_t>{0, 0, 0, 0});
  // acc: gold 0,1,1,0 → [1,0,0,1] → 0.5, stderr = sqrt(1/3)/2
  CHECK(res.metrics.at("acc").value == Approx(0.5));
  CHECK(res.metrics.at("acc").std_error == Approx(std::sqrt(1.0 / 3.0) / 2.0));
  // acc_norm: doc 0: -2/1 vs -3/4 → choice 1 (gold 0 → 0); docs 1-3: -1/1 vs -1/4 → 1 → [0,1,1,0]
  CHECK(res.metrics.at("acc_norm").value == Approx(0.5));
  CHECK(res.loglikelihoods[0] == std::vector<double>{-2.0, -3.0});
  CHECK(mean_stderr({1, 1, 1, 0}) == Approx(0.25));
  CHECK(mean_stderr({1}) == 0.0);
}

TEST_CASE("log-likelihood tasks: greedy accuracy and perplexity", "[eval]") {
  Task task;
  task.name = "cloze";
  task.kind = TaskKind::kLogLikelihood;
  for (int i = 0; i < 2; ++i) {
    TaskDoc d;
    d.requests = {{"x", i == 0 ? "a" : "b"}};
    d.choice_chars = {1};
    task.docs.push_back(d);
  }
  FakeEncoder enc;
  TableScorer scorer;
  scorer.table[enc.id("a")] = {-1.0, true, 1};
  scorer.table[enc.id("b")] = {-3.0, false, 1};
  TaskResult res = evaluate_task(task, enc, scorer);
  CHECK(res.metrics.at("acc").value == Approx(0.5));
  CHECK(res.metrics.at("perplexity").value == Approx(std::exp(2.0)));
  // delta method: ppl · stderr(LL) = e² · (√2 / √2)
  CHECK(res.metrics.at("perplexity").std_error == Approx(std::exp(2.0) * 1.0));
  CHECK(res.metrics.count("acc_norm") == 0);
}

TEST_CASE("model scorer: batched right-padded scoring equals the closed form of a bigram model", "[eval]") {
  // logits at position t depend only on token t: a bigram table. LL = Σ log_softmax(W[prev])[next].
  torch::manual_seed(7);
  const int64_t V = 11;
  auto W_VV = torch::randn({V, V}, torch::kFloat64);
  LogitsFn bigram = [&](const torch::Tensor& tokens_BT) { return W_VV.index({tokens_BT}).to(torch::kFloat32); };
  auto logp_VV = torch::log_softmax(W_VV, 1);
  std::vector<TokenizedRequest> requests = {
      {{1, 2, 3}, {4, 5}}, {{6}, {7}}, {{1, 2, 3, 4, 5, 6, 7, 8}, {9, 10, 1}}, {{2, 2}, {2}}, {{3}, {10, 9, 8, 7}}};
  const int64_t L = 6;
  auto expected = [&](const TokenizedRequest& r) {
    std::vector<int64_t> all = r.context;
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    double sum = 0.0;
    bool greedy = true;
    const size_t n_ctx = r.context.size();
    for (size_t j = n_ctx; j < all.size(); ++j) {
      sum += logp_VV[all[j - 1]][all[j]].item<double>();
      greedy = greedy && logp_VV[all[j - 1]].argmax().item<int64_t>() == all[j];
    }
    return std::make_pair(sum, greedy);
  };
  for (int64_t batch : {1, 2, 5}) {
    ModelScorer scorer(bigram, L, batch, torch::kCPU);
    auto results = scorer.score(requests);
    REQUIRE(results.size() == requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      auto [sum, greedy] = expected(requests[i]);
      CHECK(results[i].sum == Approx(sum).margin(1e-5));
      CHECK(results[i].is_greedy == greedy);
      CHECK(results[i].n_tokens == static_cast<int64_t>(requests[i].continuation.size()));
    }
  }
  // a request that is everyone's argmax is greedy
  const int64_t a = 3;
  const int64_t b = logp_VV[a].argmax().item<int64_t>();
  ModelScorer scorer(bigram, L, 4, torch::kCPU);
  CHECK(scorer.score({{{a}, {b}}})[0].is_greedy);
  CHECK(scorer.tokens_processed() == 1);
}

TEST_CASE("sequence NLL of a bigram model", "[eval]") {
  const int64_t V = 5;
  auto W_VV = torch::arange(V * V, torch::kFloat64).reshape({V, V}).sin();
  LogitsFn bigram = [&](const torch::Tensor& tokens_BT) { return W_VV.index({tokens_BT}); };
  auto logp_VV = torch::log_softmax(W_VV, 1);
  std::vector<std::vector<int64_t>> windows = {{0, 1, 2, 3}, {4, 4}, {2, 0, 1}};
  double nll = 0.0;
  int64_t n = 0;
  for (const auto& w : windows) {
    for (size_t j = 1; j < w.size(); ++j, ++n) nll -= logp_VV[w[j - 1]][w[j]].item<double>();
  }
  SequenceNll got = sequence_nll(bigram, windows, /*batch_size=*/2, torch::kCPU);
  CHECK(got.n_tokens == n);
  CHECK(got.nll == Approx(nll).margin(1e-5));
}
