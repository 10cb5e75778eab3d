// The CUDA training step: bf16 autocast against fp32 on the same batches, CUDA fp32 against the
// CPU, and a step through a one-process NCCL group against a step without a group.
// [gpu]: ctest -L gpu (scripts/gpu_check.sh) runs these where a CUDA device answers.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <cmath>

#include "../support/step_harness.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/train_step.h"

using namespace dirmoe;
using dirmoe::testing::relative_error;
using dirmoe::testing::StepHarness;
using dirmoe::testing::step_test_config;

namespace {

double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

}  // namespace

// Tolerances: CUDA fp32 runs the same math as the CPU up to summation order (TF32 is off by
// default in LibTorch), so loss and gradient norm agree to 1e-5 and 1e-4. bf16 autocast rounds the
// matmul operands to 8 significant bits; the same model in PyTorch with CPU bf16 autocast (five
// seeds) differs from fp32 by at most 2e-5 in the first loss, 2e-4 in the gradient norm and 1e-4
// in the loss after six AdamW steps on one batch, so the tolerances here (1e-3, 1e-2, 5e-3) leave
// room for CUDA's own kernels. Parameters are not compared: AdamW normalises every update, so a
// weight whose gradient is rounding noise moves by ±lr in either run.
TEST_CASE("bf16 autocast step matches the fp32 step on the same batches (CUDA)", "[gpu][train]") {
  REQUIRE(torch::cuda::is_available());
  const Config config = step_test_config("topk");
  // one batch, repeated: six steps learn it, so the last loss says whether training went alike
  StepHarness cpu(config, torch::kCPU, /*repeat_batch=*/true), fp32(config, torch::kCUDA, true),
      bf16(config, torch::kCUDA, true);
  DistributedContext none;

  const TrainStepResult r_cpu = cpu.run(none);
  const TrainStepResult r_fp32 = fp32.run(none);
  const TrainStepResult r_bf16 = bf16.run(none, /*bf16=*/true);
  const double loss_cpu = r_cpu.lm_loss.item<double>();
  const double loss_fp32 = r_fp32.lm_loss.item<double>();
  const double loss_bf16 = r_bf16.lm_loss.item<double>();
  INFO("first step: loss cpu " << loss_cpu << ", cuda fp32 " << loss_fp32 << ", cuda bf16 " << loss_bf16);
  CHECK(rel(loss_fp32, loss_cpu) < 1e-5);
  CHECK(rel(r_fp32.grad_norm.item<double>(), r_cpu.grad_norm.item<double>()) < 1e-4);
  CHECK(rel(loss_bf16, loss_fp32) < 1e-3);
  // the bf16 step really ran in bf16: its loss is not the fp32 one bit for bit
  CHECK(loss_bf16 != loss_fp32);
  CHECK(rel(r_bf16.grad_norm.item<double>(), r_fp32.grad_norm.item<double>()) < 1e-2);

  TrainStepResult last_fp32, last_bf16;
  for (int i = 0; i < 5; ++i) {
    last_fp32 = fp32.run(none);
    last_bf16 = bf16.run(none, /*bf16=*/true);
  }
  const double loss6_fp32 = last_fp32.lm_loss.item<double>();
  const double loss6_bf16 = last_bf16.lm_loss.item<double>();
  INFO("sixth step: loss cuda fp32 " << loss6_fp32 << ", cuda bf16 " << loss6_bf16);
  CHECK(loss6_fp32 < loss_fp32 - 0.1);  // the steps did learn the batch
  CHECK(rel(loss6_bf16, loss6_fp32) < 5e-3);
  // the optimiser's master weights stay float32 under autocast
  for (const auto& p : bf16.params) CHECK(p.scalar_type() == torch::kFloat32);
}

TEST_CASE("AutocastScope turns bf16 autocast on for CUDA and restores the previous state", "[gpu][train]") {
  REQUIRE(torch::cuda::is_available());
  const torch::Tensor a = torch::randn({16, 16}, torch::kCUDA), b = torch::randn({16, 16}, torch::kCUDA);
  {
    AutocastScope on(true);
    CHECK(torch::matmul(a, b).scalar_type() == torch::kBFloat16);
    {
      AutocastScope off(false);  // "off" leaves the enclosing state alone
      CHECK(torch::matmul(a, b).scalar_type() == torch::kBFloat16);
    }
  }
  CHECK(torch::matmul(a, b).scalar_type() == torch::kFloat32);
}

TEST_CASE("a one-process NCCL group runs a training step like no group at all", "[gpu][train][distributed]") {
  REQUIRE(torch::cuda::is_available());
  ProcessGroupSpec spec;  // rank 0 of 1, the store on a free port of 127.0.0.1
  auto group = DistributedContext::connect(spec, torch::Device(torch::kCUDA, 0));
  REQUIRE(group->has_group());
  CHECK(group->backend_name() == "nccl");
  CHECK_FALSE(group->active());

  const Config config = step_test_config("topk");
  StepHarness with_group(config, torch::kCUDA), without(config, torch::kCUDA);
  DistributedContext none;
  group->broadcast_module(with_group.model->module());
  for (int i = 0; i < 2; ++i) {
    const TrainStepResult a = with_group.run(*group);
    const TrainStepResult b = without.run(none);
    // the all-reduce of one rank sums one gradient and scales it by 1/1: nothing changes
    CHECK(a.lm_loss.item<double>() == b.lm_loss.item<double>());
    CHECK(a.grad_norm.item<double>() == b.grad_norm.item<double>());
  }
  CHECK(relative_error(with_group.flat_parameters(), without.flat_parameters()) == 0.0);

  torch::Tensor values = torch::tensor({1.5, -2.0}, torch::TensorOptions().device(torch::kCUDA));
  group->average_(values);
  group->max_(values);
  CHECK(values.cpu().equal(torch::tensor({1.5, -2.0})));
  group->barrier();
}
