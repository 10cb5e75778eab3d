#pragma once
// What the trainer needs from a model: a torch module with the Decoder's forward contract
// (logits, named aux losses, per-layer routing metrics), its schedule/controller hooks and its
// FLOPs. The Decoder is adapted by make_trainable(); tests pass small stand-in modules.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "dirmoe/model/decoder.h"

namespace dirmoe {

class RoutingStatsSink;

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  virtual torch::nn::Module& module() = 0;
  /// tokens_BT (B, T) int64 → DecoderOutput (logits_BTV, aux_losses, layers).
  virtual DecoderOutput forward(const torch::Tensor& tokens_BT) = 0;
  /// Sink for the routing of the following forwards (null: none). Models without one ignore it.
  virtual void set_routing_sink(RoutingStatsSink* /*sink*/) {}
  /// Router schedules to step t (0-based index of the step about to run).
  virtual void set_step(int64_t /*step*/) {}
  /// Router controllers after the optimiser step.
  virtual void update_controllers() {}
  /// The routers' controller measurements since the last update (one scalar per router, undefined
  /// where a router has none); the trainer replaces them by their means over processes before
  /// update_controllers() (RouterImpl::controller_measurement).
  virtual std::vector<torch::Tensor> controller_measurements() const { return {}; }
  virtual void set_controller_measurements(const std::vector<torch::Tensor>& /*means*/) {}
  /// Batch-level router losses over the global batch when it is split over processes (batch_mean.h).
  virtual void set_batch_mean_reducer(const std::shared_ptr<BatchMeanReducer>& /*reducer*/) {}
  /// Keys the router noise of the following training forwards (router_noise_source.h).
  virtual void set_noise_key(const RouterNoiseKey& /*key*/) {}
  /// Expert parallelism: shards the model's experts over `exchange`'s processes and returns the
  /// sharded parameters; empty when the model has no experts to shard.
  virtual std::vector<torch::Tensor> shard_experts(const std::shared_ptr<ExpertExchange>& /*exchange*/) { return {}; }
  /// Training FLOPs per token (forward + backward) at the measured E[active experts] of each
  /// layer; nullopt when the model has no calculator.
  virtual std::optional<double> flops_per_token(const std::vector<double>& /*active_experts_per_layer*/) const {
    return std::nullopt;
  }
  /// Parameter counts for the summary (total, active); nullopt when unknown.
  virtual std::optional<ParameterCounts> parameter_counts() const { return std::nullopt; }
};

/// Adapts the Decoder (forward, set_step, update_controllers, parameter counts, FLOPs).
std::shared_ptr<TrainableModel> make_trainable(Decoder decoder);

}  // namespace dirmoe
