#pragma once
// The tensor and RNG parts of a checkpoint: model + optimiser as a LibTorch archive, and every
// random generator's state (CPU; each CUDA device when present) as JSON, so that a resumed run
// draws exactly the numbers the uninterrupted run would have drawn.
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

namespace dirmoe {

/// Archive bytes with sub-archives "model" and, if `optimizer` is given, "optimizer".
std::string save_training_payload(const torch::nn::Module& model, const torch::optim::Optimizer* optimizer);

/// Loads the "model" sub-archive into `model` (parameters and buffers, copied onto their current
/// devices). Throws IoError on a missing or mismatched tensor, naming `origin`.
void load_model_payload(torch::nn::Module& model, const std::string& payload, const std::string& origin);

/// Loads the "optimizer" sub-archive into an optimiser built over the same parameters.
void load_optimizer_payload(torch::optim::Optimizer& optimizer, const std::string& payload, const std::string& origin);

/// {"cpu": hex, "cuda": [hex per device]} of the default generators.
nlohmann::json capture_rng_state();
/// Restores what capture_rng_state() returned (CUDA entries only where the devices exist).
void restore_rng_state(const nlohmann::json& state);

}  // namespace dirmoe
