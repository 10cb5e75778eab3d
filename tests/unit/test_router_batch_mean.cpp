// Batch-level router losses over a batch split between processes (router/batch_mean.h): with the
// processes' reducer, each process's Switch/SparseMixer balance loss and ReMoE L1 term equal the
// single-process loss of the whole batch, and the mean of the processes' router gradients equals
// its gradient. The processes are threads joined by Gloo (DistributedContext::in_process).
#include <unistd.h>

#include <exception>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/router_test_util.h"
#include "dirmoe/router/router.h"
#include "dirmoe/train/distributed.h"

using dirmoe::testing::max_abs_diff;

TEST_CASE("batch mean: balance and L1 losses of a split batch equal the whole batch's", "[router][batch_mean]") {
  struct Case {
    std::string type, loss;
  };
  for (const Case& c : {Case{"topk", "topk_balance"}, Case{"sparsemixer", "sparsemixer_balance"},
                        Case{"remoe", "remoe_l1"}}) {
    INFO(c.type);
    auto config = dirmoe::testing::router_test_config(c.type, 12, 4, 1);
    config.router.remoe.lambda_init = 1.0;  // make the L1 term's gradient visible
    auto make = [&] {
      torch::manual_seed(41);
      auto r = dirmoe::make_router(config);
      r->train();
      r->to(torch::kFloat64);
      return r;
    };
    torch::manual_seed(42);
    const torch::Tensor x = torch::randn({16, 12}, torch::kFloat64);
    dirmoe::RouterNoise noise;
    noise.key = dirmoe::RouterNoiseKey{5, 0, 0, 0};

    auto whole = make();
    const torch::Tensor whole_loss = whole->forward(x, noise).aux_losses.at(c.loss);
    whole_loss.backward();
    const torch::Tensor whole_grad = whole->parameters().front().grad().clone();

    // the same split without the reducer: per-process losses differ from the whole batch's
    auto alone = make();
    dirmoe::RouterNoise first = noise;
    const double alone_loss = alone->forward(x.narrow(0, 0, 4), first).aux_losses.at(c.loss).item<double>();
    CHECK(std::abs(alone_loss - whole_loss.item<double>()) > 1e-6);

    const std::vector<int64_t> start = {0, 4, 8, 12};
    std::vector<std::shared_ptr<dirmoe::RouterImpl>> routers = {make(), make(), make(), make()};
    std::vector<double> losses(4);
    std::vector<std::exception_ptr> errors(4);
    const std::string name = "batch_mean_" + c.type + "_" + std::to_string(::getpid());
    std::vector<std::thread> threads;
    for (int64_t r = 0; r < 4; ++r) {
      threads.emplace_back([&, r] {
        try {
          auto world = dirmoe::DistributedContext::in_process(name, r, 4);
          routers[r]->set_batch_mean_reducer(dirmoe::make_batch_mean_reducer(*world));
          dirmoe::RouterNoise mine = noise;
          mine.key->token_offset = start[r];
          const torch::Tensor loss = routers[r]->forward(x.narrow(0, start[r], 4), mine).aux_losses.at(c.loss);
          loss.backward();
          losses[r] = loss.item<double>();
          world->barrier();
        } catch (...) {
          errors[r] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
    for (int64_t r = 0; r < 4; ++r) CHECK(losses[r] == Approx(whole_loss.item<double>()).epsilon(1e-12));
    torch::Tensor mean_grad = torch::zeros_like(whole_grad);
    for (auto& r : routers) mean_grad += r->parameters().front().grad() / 4.0;
    CHECK(max_abs_diff(mean_grad, whole_grad) < 1e-12 * std::max(1.0, whole_grad.abs().max().item<double>()));
  }
}
