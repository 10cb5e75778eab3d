// Eval throughput: tokens/s of ModelScorer on a tiny MoE decoder over random multiple-choice
// requests (contexts of 64–448 tokens, continuations of 1–12), for a few batch sizes.
//   bench_eval_scoring [--device cpu|cuda] [--d-model 128] [--layers 4] [--requests 256]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include <iostream>

#include "dirmoe/eval/model_scorer.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/router/router.h"

using namespace dirmoe;
using namespace dirmoe::eval;

namespace {
// Softmax top-k with renormalisation, local so the bench runs whatever routers are registered.
class BenchRouterImpl : public RouterImpl {
 public:
  BenchRouterImpl(int64_t d, int64_t e, int64_t k) : k_(k) { weight = register_parameter("weight", torch::randn({e, d}) * 0.02); }
  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise&) override {
    auto probs_TE = torch::softmax(torch::nn::functional::linear(x_TD, weight), -1);
    auto [p_TK, i_TK] = probs_TE.topk(k_, -1);
    RouterOutput out;
    out.weights_TE = torch::zeros_like(probs_TE).scatter(1, i_TK, p_TK / p_TK.sum(-1, true));
    out.dispatch_mask_TE = torch::zeros_like(probs_TE, torch::kBool).scatter(1, i_TK, true);
    return out;
  }
  std::string name() const override { return "topk"; }
  torch::Tensor weight;

 private:
  int64_t k_;
};
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"eval scoring throughput"};
  std::string device_name = "cpu";
  int64_t d_model = 128, layers = 4, n_requests = 256;
  app.add_option("--device", device_name);
  app.add_option("--d-model", d_model);
  app.add_option("--layers", layers);
  app.add_option("--requests", n_requests);
  CLI11_PARSE(app, argc, argv);
  const torch::Device device(device_name);
  Config c;
  c.model.vocab_size = 4096;
  c.model.d_model = d_model;
  c.model.n_layers = layers;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.d_ff = 2 * d_model;
  c.model.seq_len = 512;
  c.model.n_experts = 8;
  c.model.n_experts_active = 1;
  torch::manual_seed(0);
  Decoder model(c, [](const Config& cfg) {
    return std::make_shared<BenchRouterImpl>(cfg.model.d_model, cfg.model.n_experts, cfg.model.n_experts_active);
  });
  model->to(device);
  model->eval();
  std::vector<TokenizedRequest> requests;
  for (int64_t i = 0; i < n_requests; ++i) {
    const int64_t n_ctx = 64 + (i * 97) % 384;
    const int64_t n_cont = 1 + i % 12;
    auto ctx = torch::randint(c.model.vocab_size, {n_ctx}, torch::kInt64);
    auto cont = torch::randint(c.model.vocab_size, {n_cont}, torch::kInt64);
    requests.push_back({std::vector<int64_t>(ctx.data_ptr<int64_t>(), ctx.data_ptr<int64_t>() + n_ctx),
                        std::vector<int64_t>(cont.data_ptr<int64_t>(), cont.data_ptr<int64_t>() + n_cont)});
  }
  std::cout << fmt::format("decoder d_model={} layers={} E=8 k=1 vocab=4096 on {}, {} requests\n", d_model, layers,
                           device.str(), n_requests);
  for (int64_t batch : {1, 8, 32}) {
    ModelScorer scorer([&](const torch::Tensor& t) { return model->forward(t).logits_BTV; }, c.model.seq_len, batch,
                       device);
    scorer.score(requests);
    std::cout << fmt::format("batch {:>3}: {:>9.0f} tokens/s ({} tokens, {:.2f} s)\n", batch,
                             scorer.tokens_processed() / scorer.seconds(), scorer.tokens_processed(), scorer.seconds());
  }
  return 0;
}
