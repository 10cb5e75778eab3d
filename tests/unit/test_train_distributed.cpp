// DistributedContext on the CPU: a one-process Gloo group runs the same collectives and the same
// training step as no group at all (the CUDA twin with NCCL is in tests/gpu/test_gpu_train_step.cpp),
// and connect() refuses what cannot work.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "../support/step_harness.h"
#include "dirmoe/core/error.h"
#include "dirmoe/train/distributed.h"

using namespace dirmoe;
using dirmoe::testing::relative_error;
using dirmoe::testing::StepHarness;
using dirmoe::testing::step_test_config;

TEST_CASE("a one-process Gloo group runs a training step like no group at all", "[train][distributed]") {
  ProcessGroupSpec spec;  // rank 0 of 1, the store on a free port of 127.0.0.1
  auto group = DistributedContext::connect(spec, torch::kCPU);
  REQUIRE(group->has_group());
  CHECK(group->backend_name() == "gloo");
  CHECK_FALSE(group->active());

  Config config = step_test_config("topk");
  config.model.d_model = 32, config.model.d_ff = 48, config.model.n_experts = 4, config.model.seq_len = 16;
  StepHarness with_group(config, torch::kCPU), without(config, torch::kCPU);
  DistributedContext none;
  CHECK_FALSE(none.has_group());
  group->broadcast_module(with_group.model->module());
  for (int i = 0; i < 2; ++i) {
    const TrainStepResult a = with_group.run(*group);
    const TrainStepResult b = without.run(none);
    CHECK(a.lm_loss.item<double>() == b.lm_loss.item<double>());
    CHECK(a.grad_norm.item<double>() == b.grad_norm.item<double>());
  }
  CHECK(relative_error(with_group.flat_parameters(), without.flat_parameters()) == 0.0);

  torch::Tensor values = torch::tensor({1.5, -2.0});
  group->average_(values);
  group->max_(values);
  CHECK(values.equal(torch::tensor({1.5, -2.0})));
  CHECK(group->gather_to_main("only", "test") == std::vector<std::string>{"only"});
  group->barrier();
}

TEST_CASE("connect refuses ranks and ports that cannot work", "[train][distributed]") {
  ProcessGroupSpec spec;
  spec.world_size = 2;
  spec.rank = 2;
  spec.master_port = 29500;
  CHECK_THROWS_AS(DistributedContext::connect(spec, torch::kCPU), Error);
  spec.rank = 1;
  spec.master_port = 0;  // a free port is no use to a second process
  CHECK_THROWS_WITH(DistributedContext::connect(spec, torch::kCPU), Catch::Contains("port 0"));
}
