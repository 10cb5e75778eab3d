#include "dirmoe/router/batch_mean.h"

#include <torch/torch.h>

namespace dirmoe {

torch::Tensor batch_mean(BatchMeanReducer* reducer, const torch::Tensor& local) {
  if (reducer == nullptr) return local;
  torch::Tensor global = local.detach().clone();
  reducer->mean_(global);
  return local + (global - local.detach());
}

}  // namespace dirmoe
