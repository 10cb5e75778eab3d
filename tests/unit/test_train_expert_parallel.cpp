// Expert parallelism with real c10d collectives: the ranks are threads of the test process, joined
// by Gloo over loopback (DistributedContext::in_process). Checked: a skewed routing brings every row
// back to its own position on its own process with nothing dropped; an expert-parallel MoE layer
// equals the single-process layer (outputs and every gradient); a decoder step with gradient
// reduction, clipping and AdamW equals the single-process step, and the checkpoint gathered on rank
// 0 is the single-process model and optimiser, which each rank's shard loads back from.
#include <unistd.h>

#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/router_test_util.h"
#include "../support/test_routers.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/model/moe_layer.h"
#include "dirmoe/train/expert_parallel.h"
#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/training_state.h"

using namespace dirmoe;
using dirmoe::testing::max_abs_diff;

namespace {

/// Runs fn(rank) on `world` threads and rethrows the first exception. Catch2 is not thread-safe:
/// the threads only compute; the test asserts afterwards.
void run_ranks(int64_t world, const std::function<void(int64_t)>& fn) {
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  for (int64_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

/// A store name no other test (or earlier run of this one) uses.
std::string fresh_group_name(const std::string& what) {
  static std::atomic<int> counter{0};
  return what + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return max_abs_diff(a, b) / std::max(1e-30, b.abs().max().item<double>());
}

}  // namespace

TEST_CASE("expert parallel: skewed routing returns every row to its place, nothing dropped", "[train][expert_parallel]") {
  const int64_t W = 2, E = 4, L = E / W;
  const std::string name = fresh_group_name("skew");
  // Rank 0: 7 tokens, all to expert 3 (on rank 1), token 0 also to expert 0. Rank 1: 5 tokens, all to
  // expert 3 as well, so rank 0 receives nothing from rank 1 and expert 3 gets everything.
  // Second round: rank 1 dispatches nothing at all.
  const std::vector<int64_t> tokens = {7, 5};
  struct Result {
    std::vector<torch::Tensor> x, y, expert;
    std::vector<int64_t> dropped, received;
  };
  std::vector<Result> results(W);
  run_ranks(W, [&](int64_t r) {
    auto world = DistributedContext::in_process(name, r, W);
    ExpertParallel ep(*world, W, E);
    ExpertParallelDispatch dispatch(ep.exchange(), E);
    for (int round = 0; round < 2; ++round) {
      const int64_t T = tokens[static_cast<size_t>(r)];
      torch::Tensor mask_TE = torch::zeros({T, E}, torch::kBool);
      if (!(round == 1 && r == 1)) mask_TE.select(1, 3).fill_(true);
      if (r == 0) mask_TE[0][0] = true;
      const DispatchPlan plan = plan_dispatch(mask_TE, /*capacity=*/0);
      // Row of (rank, token): who it is.
      const torch::Tensor x_TD = torch::stack({torch::full({T}, static_cast<double>(r), torch::kFloat64),
                                               torch::arange(T, torch::kFloat64), torch::zeros({T}, torch::kFloat64)},
                                              1);
      const torch::Tensor x_ND = x_TD.index_select(0, plan.token_N);
      int64_t received = 0;
      const torch::Tensor y_ND = dispatch.forward(
          x_ND, plan.tokens_per_expert_E, [&](const torch::Tensor& x_RD, const torch::Tensor& counts_L) {
            received += x_RD.size(0);
            // Tag each row with the global expert that computed it and the computing rank.
            const torch::Tensor expert_R = torch::repeat_interleave(torch::arange(L) + r * L, counts_L);
            torch::Tensor y = x_RD.clone();
            y.select(1, 2).add_(1000.0 * expert_R.to(torch::kFloat64) + 10.0 * static_cast<double>(r));
            return y;
          });
      Result& out = results[static_cast<size_t>(r)];
      out.x.push_back(x_ND);
      out.y.push_back(y_ND);
      out.expert.push_back(plan.expert_N);
      out.dropped.push_back(plan.dropped_tokens.item<int64_t>());
      out.received.push_back(received);
    }
  });
  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    int64_t sent = 0, received = 0;
    for (int64_t r = 0; r < W; ++r) {
      INFO("rank " << r);
      const Result& res = results[static_cast<size_t>(r)];
      const torch::Tensor& x = res.x[static_cast<size_t>(round)];
      const torch::Tensor& y = res.y[static_cast<size_t>(round)];
      REQUIRE(y.sizes() == x.sizes());
      CHECK(torch::equal(y.narrow(1, 0, 2), x.narrow(1, 0, 2)));  // its own rank and token, at its own row
      const torch::Tensor expert = res.expert[static_cast<size_t>(round)].to(torch::kFloat64);
      CHECK(torch::equal(y.select(1, 2), 1000.0 * expert + 10.0 * torch::floor(expert / L)));  // computed by the owner
      CHECK(res.dropped[static_cast<size_t>(round)] == 0);
      sent += x.size(0);
      received += res.received[static_cast<size_t>(round)];
    }
    CHECK(sent == (round == 0 ? 7 + 1 + 5 : 7 + 1));
    CHECK(received == sent);
  }
  CHECK(results[1].received[0] == 12);  // expert 3 took every token of both ranks
  CHECK(results[0].received[0] == 1);
}

TEST_CASE("expert parallel: a sharded MoE layer equals the single-process layer", "[train][expert_parallel]") {
  const int64_t W = 2, E = 4, D = 8;
  Config c;
  c.model.d_model = D;
  c.model.d_ff = 12;
  c.model.n_experts = E;
  c.model.n_experts_active = 2;
  c.model.init_std = 0.5;
  auto make_layer = [&] {
    torch::manual_seed(21);
    MoeLayer layer(c, 0, std::make_shared<testing::SoftmaxTopkTestRouter>(D, E, 2, 0.5));
    layer->to(torch::kFloat64);
    return layer;
  };
  MoeLayer reference = make_layer();
  std::vector<MoeLayer> layers = {make_layer(), make_layer()};
  torch::manual_seed(22);
  const torch::Tensor x_TD = torch::randn({13, D}, torch::kFloat64);
  const torch::Tensor g_TD = torch::randn({13, D}, torch::kFloat64);
  const std::vector<int64_t> start = {0, 6}, rows = {6, 7};

  const torch::Tensor x_ref = x_TD.clone().requires_grad_(true);
  const torch::Tensor y_ref = reference->forward(x_ref).y_TD;
  (y_ref * g_TD).sum().backward();

  std::vector<torch::Tensor> y(W), x_grad(W);
  const std::string name = fresh_group_name("layer");
  run_ranks(W, [&](int64_t r) {
    auto world = DistributedContext::in_process(name, r, W);
    ExpertParallel ep(*world, W, E);
    MoeLayer& layer = layers[static_cast<size_t>(r)];
    layer->shard_experts(ep.exchange());
    const torch::Tensor x = x_TD.narrow(0, start[r], rows[r]).clone().requires_grad_(true);
    y[r] = layer->forward(x).y_TD;
    (y[r] * g_TD.narrow(0, start[r], rows[r])).sum().backward();
    x_grad[r] = x.grad();
  });
  CHECK(rel_diff(torch::cat(y), y_ref) < 1e-12);
  CHECK(rel_diff(torch::cat(x_grad), x_ref.grad()) < 1e-12);
  for (int64_t r = 0; r < W; ++r) {
    INFO("rank " << r);
    const auto& ref_experts = *reference->experts();
    const auto& experts = *layers[r]->experts();
    REQUIRE(experts.w_gate.size(0) == E / W);
    for (auto [mine, full] : std::vector<std::pair<torch::Tensor, torch::Tensor>>{
             {experts.w_gate, ref_experts.w_gate}, {experts.w_up, ref_experts.w_up}, {experts.w_down, ref_experts.w_down}}) {
      CHECK(torch::equal(mine.detach(), full.detach().narrow(0, r * E / W, E / W)));
      // the shard's gradient holds the contributions of both ranks' tokens
      CHECK(rel_diff(mine.grad(), full.grad().narrow(0, r * E / W, E / W)) < 1e-12);
    }
  }
  // the router stays per rank: its gradients over the ranks add up to the single-process one
  auto gate = [](MoeLayer& l) { return l->router().named_parameters()["gate"].grad(); };
  CHECK(rel_diff(gate(layers[0]) + gate(layers[1]), gate(reference)) < 1e-12);
}

TEST_CASE("expert parallel: a decoder step and its checkpoint equal the single-process ones", "[train][expert_parallel]") {
  // W processes, experts over N of them: W = N (one group), and W = 2N (two groups, each shard
  // held twice: its gradient is summed over its copies).
  const auto [W, N] = GENERATE(std::make_pair(int64_t{2}, int64_t{2}), std::make_pair(int64_t{4}, int64_t{2}));
  INFO("W " << W << ", N " << N);
  const int64_t rows = 4 / W;
  Config c;
  c.model.vocab_size = 32;
  c.model.d_model = 16;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 1;
  c.model.d_ff = 24;
  c.model.seq_len = 8;
  c.model.n_experts = 4;
  c.model.n_experts_active = 1;
  c.model.init_std = 0.2;
  c.router.type = "dirmoe";  // its Logistic and Gamma noise, keyed by global token
  c.router.dirmoe.alpha_hidden = 8;
  c.train.lr = 1e-2;
  c.train.weight_decay = 0.1;
  // float64: AdamW's first step moves each weight by about ±lr whatever the size of its gradient, so
  // float32 rounding of near-zero gradients would flip a few signs between the two runs.
  auto make_model = [&] {
    torch::manual_seed(31);
    auto m = make_trainable(Decoder(c));
    m->module().to(torch::kFloat64);
    return m;
  };
  torch::manual_seed(32);
  const torch::Tensor batch = torch::randint(0, 32, {4, 9}, torch::kInt64);
  auto loss_of = [](TrainableModel& m, const torch::Tensor& rows) {
    const DecoderOutput out = m.forward(rows.narrow(1, 0, 8));
    torch::Tensor loss = torch::nn::functional::cross_entropy(out.logits_BTV.reshape({-1, 32}).to(torch::kFloat64),
                                                              rows.narrow(1, 1, 8).reshape({-1}));
    for (const auto& [n, v] : out.aux_losses) loss = loss + v;
    return loss;
  };
  const double clip = 0.05;  // small enough to clip: the norm must count each shard once

  auto reference = make_model();
  reference->module().train();
  auto ref_opt = make_optimizer(reference->module(), c.train);
  std::vector<torch::Tensor> ref_params = reference->module().parameters();
  reference->set_noise_key({7, 0, 0, 0});
  loss_of(*reference, batch).backward();
  const double ref_norm = clip_grad_norm(ref_params, clip).item<double>();
  ref_opt->step();

  std::vector<std::shared_ptr<TrainableModel>> models;
  for (int64_t r = 0; r < W; ++r) models.push_back(make_model());
  std::vector<double> norms(W);
  std::string payload;
  std::vector<std::map<std::string, torch::Tensor>> reloaded(W);
  const std::string name = fresh_group_name("decoder");
  run_ranks(W, [&](int64_t r) {
    auto world = DistributedContext::in_process(name, r, W);
    ExpertParallel ep(*world, N, c.model.n_experts);
    TrainableModel& model = *models[r];
    model.module().train();
    ep.shard(model);
    ep.broadcast(model.module());
    // as the trainer does: the router's batch-level losses (DirMoE's usage KL) over the global batch
    model.set_batch_mean_reducer(make_batch_mean_reducer(*world));
    auto opt = make_optimizer(model.module(), c.train);
    std::vector<torch::Tensor> params = model.module().parameters();
    model.set_noise_key({7, 0, 0, r * rows * 8});  // its rows of the global batch
    loss_of(model, batch.narrow(0, r * rows, rows)).backward();
    ep.reduce_gradients(params);
    norms[r] = ep.clip_grad_norm(params, clip).item<double>();
    opt->step();
    ep.with_full_model(opt.get(), [&] { payload = save_training_payload(model.module(), opt.get()); });
    world->barrier();
    // every rank loads the full checkpoint and keeps its shard
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : model.module().named_parameters()) before[p.key()] = p.value().detach().clone();
    for (auto& p : model.module().parameters()) p.detach().zero_();
    ep.load_full_model(opt.get(), [&] {
      load_model_payload(model.module(), payload, "test");
      load_optimizer_payload(*opt, payload, "test");
    });
    for (const auto& p : model.module().named_parameters()) {
      reloaded[r][p.key()] = (p.value().detach() - before.at(p.key())).abs().max();
    }
  });
  for (int64_t r = 0; r < W; ++r) CHECK(std::abs(norms[r] - ref_norm) / ref_norm < 1e-6);  // the norms are summed in float32

  // The gathered checkpoint loads into a single-process model and optimiser: it is the reference's.
  auto loaded = make_model();
  auto loaded_opt = make_optimizer(loaded->module(), c.train);
  load_model_payload(loaded->module(), payload, "test");
  load_optimizer_payload(*loaded_opt, payload, "test");
  const auto ref_named = reference->module().named_parameters();
  for (const auto& p : loaded->module().named_parameters()) {
    INFO(p.key());
    CHECK(rel_diff(p.value(), ref_named[p.key()]) < 1e-7);
  }
  auto& ref_state = ref_opt->state();
  auto& loaded_state = loaded_opt->state();
  const auto loaded_params = loaded->module().parameters();
  for (size_t i = 0; i < ref_params.size(); ++i) {
    const auto ia = ref_state.find(ref_params[i].unsafeGetTensorImpl());
    const auto ib = loaded_state.find(loaded_params[i].unsafeGetTensorImpl());
    REQUIRE(ia != ref_state.end());
    REQUIRE(ib != loaded_state.end());
    const auto* a = static_cast<torch::optim::AdamWParamState*>(ia->second.get());
    const auto* b = static_cast<torch::optim::AdamWParamState*>(ib->second.get());
    // the moments carry the clipping coefficient, whose norm is summed in float32
    CHECK(rel_diff(b->exp_avg(), a->exp_avg()) < 1e-6);
    CHECK(rel_diff(b->exp_avg_sq(), a->exp_avg_sq()) < 1e-6);
  }
  for (int64_t r = 0; r < W; ++r) {
    for (const auto& [key, diff] : reloaded[r]) {
      INFO("rank " << r << " " << key);
      CHECK(diff.item<double>() == 0.0);  // the shard loaded back is the shard it had
    }
  }
}
