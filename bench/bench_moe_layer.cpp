// Forward+backward time of one MoE layer (E experts, top-1 softmax routing) against a dense SwiGLU
// FFN of the same active size (one expert's d_ff), on CPU. Prints the median of several repeats.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "dirmoe/model/moe_layer.h"
#include "dirmoe/model/swiglu_experts.h"
#include "dirmoe/router/router.h"

namespace {

/// Switch-style top-1: p = softmax(x·Wᵀ), each token goes to argmax p with weight p.
class Top1Router : public dirmoe::RouterImpl {
 public:
  Top1Router(int64_t d_model, int64_t n_experts, double init_std) {
    gate = register_parameter("gate", torch::randn({n_experts, d_model}) * init_std);
  }
  dirmoe::RouterOutput forward(const torch::Tensor& x_TD, const dirmoe::RouterNoise& = {}) override {
    const torch::Tensor probs_TE = torch::softmax(torch::matmul(x_TD, gate.t()), -1);
    dirmoe::RouterOutput out;
    out.dispatch_mask_TE = torch::zeros_like(probs_TE, torch::kBool).scatter(1, probs_TE.argmax(-1, true), true);
    out.weights_TE = probs_TE * out.dispatch_mask_TE;
    return out;
  }
  std::string name() const override { return "bench_top1"; }
  torch::Tensor gate;  // (E, D)
};

double median(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

template <typename Fn>
double time_ms(Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t d_model = 512, d_ff = 2048, tokens = 4096, experts = 8, threads = 0;
  int repeats = 5;
  CLI::App app{"MoE layer vs dense SwiGLU FFN, forward+backward on CPU"};
  app.add_option("--d-model", d_model);
  app.add_option("--d-ff", d_ff, "hidden size of each expert and of the dense FFN");
  app.add_option("--tokens", tokens);
  app.add_option("--experts", experts);
  app.add_option("--repeats", repeats);
  app.add_option("--threads", threads, "intra-op threads; 0: LibTorch's default");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);

  dirmoe::Config config;
  config.model.d_model = d_model;
  config.model.d_ff = d_ff;
  config.model.n_experts = experts;
  config.model.n_experts_active = 1;
  config.model.init_std = 0.02;
  dirmoe::MoeLayer moe(config, 0, std::make_shared<Top1Router>(d_model, experts, 1.0));
  dirmoe::SwigluExperts dense(1, d_model, d_ff, 0.02);
  const torch::Tensor x_TD = torch::randn({tokens, d_model}).requires_grad_(true);
  const torch::Tensor g_TD = torch::randn({tokens, d_model});

  auto run_dense = [&] {
    dense->zero_grad();
    x_TD.mutable_grad() = torch::Tensor();
    dirmoe::swiglu(x_TD, dense->w_gate[0], dense->w_up[0], dense->w_down[0]).backward(g_TD);
  };
  torch::Tensor tokens_per_expert_E;
  auto run_moe = [&] {
    moe->zero_grad();
    x_TD.mutable_grad() = torch::Tensor();
    dirmoe::MoeLayerOutput out = moe->forward(x_TD);
    out.y_TD.backward(g_TD);
    tokens_per_expert_E = out.metrics.tokens_per_expert_E;
  };
  run_dense();  // warm-up
  run_moe();
  // Interleaved, so that a change in machine load hits both alike.
  std::vector<double> dense_runs, moe_runs;
  for (int i = 0; i < repeats; ++i) {
    dense_runs.push_back(time_ms(run_dense));
    moe_runs.push_back(time_ms(run_moe));
  }
  const double dense_ms = median(dense_runs);
  const double moe_ms = median(moe_runs);
  std::printf("threads %d, T %lld, D %lld, d_ff %lld, E %lld, k 1, %d repeats (median)\n", torch::get_num_threads(),
              static_cast<long long>(tokens), static_cast<long long>(d_model), static_cast<long long>(d_ff),
              static_cast<long long>(experts), repeats);
  std::printf("tokens per expert:");
  for (int64_t e = 0; e < experts; ++e) std::printf(" %lld", static_cast<long long>(tokens_per_expert_E[e].item<int64_t>()));
  std::printf("\ndense SwiGLU fwd+bwd  %9.2f ms\nMoE layer fwd+bwd     %9.2f ms\nratio MoE/dense       %9.3f\n",
              dense_ms, moe_ms, moe_ms / dense_ms);
  return 0;
}
