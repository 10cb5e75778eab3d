#include "dirmoe/train/validation_loss.h"

#include <algorithm>
#include <limits>

#include <torch/torch.h>

#include "dirmoe/train/train_step.h"
#include "dirmoe/train/training_state.h"

namespace dirmoe {

double validation_loss(TrainableModel& model, const std::vector<torch::Tensor>& batches, DistributedContext& dist,
                       const torch::Device& device, bool bf16, int64_t seq_len) {
  if (batches.empty()) return std::numeric_limits<double>::quiet_NaN();
  torch::nn::Module& module = model.module();
  // Evaluation must not move the training RNG streams (resume exactness).
  const nlohmann::json rng = capture_rng_state();
  module.eval();
  torch::NoGradGuard no_grad;
  torch::Tensor sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  int64_t count = 0;
  const int64_t W = dist.world_size();
  for (const auto& batch_cpu : batches) {
    TORCH_CHECK(batch_cpu.size(0) % W == 0, "validation batch of ", batch_cpu.size(0), " rows for ", W,
                " processes: the rows must divide evenly");
    const int64_t share = batch_cpu.size(0) / W;
    const torch::Tensor batch = batch_cpu.narrow(0, dist.rank() * share, share).to(device);
    const int64_t t = std::min<int64_t>(seq_len, batch.size(1) - 1);
    const torch::Tensor inputs_BT = batch.narrow(1, 0, t);
    const torch::Tensor targets_BT = batch.narrow(1, 1, t);
    DecoderOutput out;
    {
      AutocastScope autocast(bf16);
      out = model.forward(inputs_BT);
    }
    const int64_t V = out.logits_BTV.size(-1);
    sum += torch::nn::functional::cross_entropy(
               out.logits_BTV.to(torch::kFloat32).reshape({-1, V}), targets_BT.reshape({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
               .to(torch::kFloat64);
    count += targets_BT.numel();
  }
  module.train();
  restore_rng_state(rng);
  if (W > 1) {
    torch::Tensor totals = torch::stack({sum, torch::full({}, static_cast<double>(count), sum.options())});
    dist.sum_(totals);
    sum = totals[0];
    count = static_cast<int64_t>(totals[1].item<double>());
  }
  return sum.item<double>() / static_cast<double>(count);
}

}  // namespace dirmoe
