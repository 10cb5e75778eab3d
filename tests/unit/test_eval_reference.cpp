// The whole scoring path against an independent implementation: a tiny Decoder is exported
// (Mixtral layout, and Llama for one expert), Python's torch loads the safetensors with the
// `safetensors` package, runs the decoder from its formulas in float64 and scores the same
// requests; summed log-likelihoods and accuracies agree to 1e-4.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>

#include "../support/python_reference.h"
#include "dirmoe/eval/model_export.h"
#include "dirmoe/eval/model_scorer.h"
#include "dirmoe/eval/task_evaluator.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/router/router.h"
#include "../support/test_files.h"

namespace fs = std::filesystem;
using namespace dirmoe;
using namespace dirmoe::eval;

namespace {

// Mixtral routing written out here so the test does not depend on the library's routers:
// p = softmax(x·Wᵀ), top-k, renormalised.
class MixtralRouterImpl : public RouterImpl {
 public:
  MixtralRouterImpl(int64_t d_model, int64_t n_experts, int64_t k, double std) : k_(k) {
    weight = register_parameter("weight", torch::randn({n_experts, d_model}) * std);
  }
  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise&) override {
    auto probs_TE = torch::softmax(torch::nn::functional::linear(x_TD, weight), -1);
    auto [top_p_TK, top_i_TK] = probs_TE.topk(k_, -1);
    top_p_TK = top_p_TK / top_p_TK.sum(-1, true);
    RouterOutput out;
    out.weights_TE = torch::zeros_like(probs_TE).scatter(1, top_i_TK, top_p_TK);
    out.dispatch_mask_TE = torch::zeros_like(probs_TE, torch::kBool).scatter(1, top_i_TK, true);
    return out;
  }
  std::string name() const override { return "topk"; }
  torch::Tensor weight;  // (E, D)

 private:
  int64_t k_;
};

void check_against_python(int64_t n_experts, int64_t k) {
  REQUIRE(dirmoe::testing::python_reference_available());
  Config c;
  c.router.type = "topk";
  c.router.topk.renormalize = true;
  c.model.vocab_size = 37;
  c.model.d_model = 32;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.d_ff = 24;
  c.model.seq_len = 12;
  c.model.n_experts = n_experts;
  c.model.n_experts_active = k;
  c.model.init_std = 0.25;  // large enough that choices and routes are far from ties
  torch::manual_seed(11);
  Decoder model(c, [&](const Config& cfg) {
    return std::make_shared<MixtralRouterImpl>(cfg.model.d_model, cfg.model.n_experts, cfg.model.n_experts_active,
                                               cfg.model.init_std);
  });
  model->eval();
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_eval_export_" + std::to_string(n_experts));
  ExportSummary summary = export_model(*model, c, dir);
  CHECK(summary.layout == (n_experts == 1 ? "llama" : "mixtral"));

  // 6 documents × 4 choices; contexts from 1 to 16 tokens so some are cut to the window of 12
  torch::manual_seed(5);
  std::vector<TokenizedRequest> requests;
  Task task;
  task.name = "reference";
  for (int d = 0; d < 6; ++d) {
    TaskDoc doc;
    const int64_t n_ctx = 1 + 3 * d;
    auto ctx = torch::randint(c.model.vocab_size, {n_ctx}, torch::kInt64);
    for (int i = 0; i < 4; ++i) {
      const int64_t n_cont = 1 + (d + i) % 3;
      auto cont = torch::randint(c.model.vocab_size, {n_cont}, torch::kInt64);
      requests.push_back({std::vector<int64_t>(ctx.data_ptr<int64_t>(), ctx.data_ptr<int64_t>() + n_ctx),
                          std::vector<int64_t>(cont.data_ptr<int64_t>(), cont.data_ptr<int64_t>() + n_cont)});
      doc.requests.push_back({"", ""});
      doc.choice_chars.push_back(1 + i);
    }
    doc.gold = d % 4;
    task.docs.push_back(doc);
  }
  // the greedy continuation of one context, so is_greedy is exercised as true
  {
    auto logits = model->forward(torch::tensor(requests[0].context, torch::kInt64).unsqueeze(0)).logits_BTV;
    requests.push_back({requests[0].context, {logits[0][-1].argmax().item<int64_t>()}});
  }
  ModelScorer scorer([&](const torch::Tensor& t) { return model->forward(t).logits_BTV; }, c.model.seq_len,
                     /*batch_size=*/5, torch::kCPU);
  const auto ours = scorer.score(requests);

  const int64_t N = static_cast<int64_t>(requests.size());
  auto tokens = torch::zeros({N, 32}, torch::kInt64);
  auto ctx_len = torch::zeros({N}, torch::kInt64);
  auto cont_len = torch::zeros({N}, torch::kInt64);
  for (int64_t i = 0; i < N; ++i) {
    std::vector<int64_t> all = requests[i].context;
    all.insert(all.end(), requests[i].continuation.begin(), requests[i].continuation.end());
    tokens[i].slice(0, 0, all.size()).copy_(torch::tensor(all, torch::kInt64));
    ctx_len[i] = static_cast<int64_t>(requests[i].context.size());
    cont_len[i] = static_cast<int64_t>(requests[i].continuation.size());
  }
  auto py = dirmoe::testing::run_python_reference(
      "eval_loglikelihood_reference.py", {{"export_dir", dirmoe::testing::bytes_tensor(dir.string())},
                                          {"tokens", tokens},
                                          {"ctx_len", ctx_len},
                                          {"cont_len", cont_len},
                                          {"max_length", torch::tensor(c.model.seq_len)}});
  const auto ll_py = py.at("ll");
  const auto greedy_py = py.at("greedy");
  for (int64_t i = 0; i < N; ++i) {
    INFO("request " << i);
    CHECK(ours[i].sum == Approx(ll_py[i].item<double>()).margin(1e-4));
    CHECK(ours[i].is_greedy == greedy_py[i].item<bool>());
  }
  CHECK(ours.back().is_greedy);

  // accuracies from both sets of log-likelihoods
  std::vector<std::vector<LogLikelihood>> ours_docs, py_docs;
  for (int d = 0; d < 6; ++d) {
    ours_docs.emplace_back(ours.begin() + 4 * d, ours.begin() + 4 * d + 4);
    std::vector<LogLikelihood> p;
    for (int i = 0; i < 4; ++i) p.push_back({ll_py[4 * d + i].item<double>(), false, 1});
    py_docs.push_back(p);
  }
  const TaskResult a = aggregate_task(task, ours_docs);
  const TaskResult b = aggregate_task(task, py_docs);
  CHECK(a.metrics.at("acc").value == Approx(b.metrics.at("acc").value).margin(1e-12));
  CHECK(a.metrics.at("acc_norm").value == Approx(b.metrics.at("acc_norm").value).margin(1e-12));
  CHECK(a.predictions == b.predictions);
}

}  // namespace

TEST_CASE("scoring agrees with a Python forward of the Mixtral export", "[eval][reference]") {
  check_against_python(/*n_experts=*/4, /*k=*/2);
}

TEST_CASE("scoring agrees with a Python forward of the Llama export (one expert)", "[eval][reference]") {
  check_against_python(/*n_experts=*/1, /*k=*/1);
}
