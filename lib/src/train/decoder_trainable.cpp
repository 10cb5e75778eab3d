// The Decoder as the trainer's model: forward, schedules, controllers, parameter counts, FLOPs.
#include <algorithm>

#include <torch/torch.h>

#include "dirmoe/model/flops.h"
#include "dirmoe/train/trainable_model.h"

namespace dirmoe {
namespace {

class DecoderTrainable : public TrainableModel {
 public:
  explicit DecoderTrainable(Decoder decoder) : decoder_(std::move(decoder)), counts_(decoder_->parameter_counts()) {}
  torch::nn::Module& module() override { return *decoder_; }
  DecoderOutput forward(const torch::Tensor& tokens_BT) override { return decoder_->forward(tokens_BT, sink_); }
  void set_routing_sink(RoutingStatsSink* sink) override { sink_ = sink; }
  void set_step(int64_t step) override { decoder_->set_step(step); }
  void update_controllers() override { decoder_->update_controllers(); }
  std::vector<torch::Tensor> controller_measurements() const override {
    std::vector<torch::Tensor> out;
    for (const auto& block : decoder_->blocks()) out.push_back(block->moe->router().controller_measurement());
    return out;
  }
  void set_controller_measurements(const std::vector<torch::Tensor>& means) override {
    const auto& blocks = decoder_->blocks();
    TORCH_CHECK(means.size() == blocks.size(), "controller measurements: ", means.size(), " for ", blocks.size(),
                " layers");
    for (size_t l = 0; l < blocks.size(); ++l) blocks[l].ptr()->moe.ptr()->router().set_controller_measurement(means[l]);
  }
  void set_noise_key(const RouterNoiseKey& key) override { decoder_->set_noise_key(key); }
  void set_batch_mean_reducer(const std::shared_ptr<BatchMeanReducer>& reducer) override {
    decoder_->set_batch_mean_reducer(reducer);
  }
  std::vector<torch::Tensor> shard_experts(const std::shared_ptr<ExpertExchange>& exchange) override {
    return decoder_->shard_experts(exchange);
  }
  std::optional<double> flops_per_token(const std::vector<double>& active_experts_per_layer) const override {
    const ModelConfig& model = decoder_->config().model;
    const int64_t router_per_layer = counts_.router / std::max<int64_t>(1, model.n_layers);
    return ::dirmoe::flops_per_token(model, active_experts_per_layer, router_forward_flops(router_per_layer)).training();
  }
  std::optional<ParameterCounts> parameter_counts() const override { return counts_; }

 private:
  Decoder decoder_;
  ParameterCounts counts_;
  RoutingStatsSink* sink_ = nullptr;
};

}  // namespace

std::shared_ptr<TrainableModel> make_trainable(Decoder decoder) {
  return std::make_shared<DecoderTrainable>(std::move(decoder));
}

}  // namespace dirmoe
