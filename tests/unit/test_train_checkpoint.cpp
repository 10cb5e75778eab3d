// Checkpoint container: round trip, and refusal of foreign, truncated, corrupt and newer files.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/router/dirmoe_router.h"
#include "dirmoe/train/checkpoint.h"
#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/training_state.h"
#include "../support/test_files.h"

namespace fs = std::filesystem;

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dirmoe::IoError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("checkpoint container round trip and prune", "[train][checkpoint]") {
  const fs::path dir = dirmoe::testing::fresh_test_dir("ckpt_roundtrip");
  const nlohmann::json meta = {{"step", 7}, {"hello", "world"}};
  const std::string payload("\x00\x01\x02 binary \xff", 13);
  dirmoe::write_checkpoint_file(dir / dirmoe::step_checkpoint_name(7), meta, payload);
  const auto file = dirmoe::read_checkpoint_file(dir / "step_00000007.ckpt");
  CHECK(file.meta == meta);
  CHECK(file.payload == payload);
  for (int64_t s : {1, 3, 12}) dirmoe::write_checkpoint_file(dir / dirmoe::step_checkpoint_name(s), meta, payload);
  dirmoe::write_checkpoint_file(dir / "best.ckpt", meta, payload);
  auto steps = dirmoe::list_step_checkpoints(dir);
  REQUIRE(steps.size() == 4);
  CHECK(steps.back().filename() == "step_00000012.ckpt");
  dirmoe::prune_step_checkpoints(dir, 2);
  steps = dirmoe::list_step_checkpoints(dir);
  REQUIRE(steps.size() == 2);
  CHECK(steps.front().filename() == "step_00000007.ckpt");
  CHECK(fs::exists(dir / "best.ckpt"));
  CHECK(dirmoe::resolve_checkpoint_path(dir) == dir / "best.ckpt");
  fs::remove_all(dir);
}

TEST_CASE("foreign, truncated, corrupt and newer checkpoints are refused", "[train][checkpoint]") {
  const fs::path dir = dirmoe::testing::fresh_test_dir("ckpt_refuse");
  const fs::path good = dir / "good.ckpt";
  dirmoe::write_checkpoint_file(good, {{"step", 1}}, std::string(1000, 'x'));
  const std::string bytes = dirmoe::read_file(good);

  // Foreign: a LibTorch archive (what torch::save writes) and a text file.
  torch::save(torch::ones({3}), (dir / "foreign.pt").string());
  CHECK_THAT(message_of([&] { dirmoe::read_checkpoint_file(dir / "foreign.pt"); }),
             Catch::Contains("not a dirmoe checkpoint") && Catch::Contains("foreign.pt"));
  dirmoe::write_file_atomic(dir / "text.ckpt", "{\"step\": 1}\n");
  CHECK_THAT(message_of([&] { dirmoe::read_checkpoint_file(dir / "text.ckpt"); }), Catch::Contains("not a dirmoe checkpoint"));

  // Truncated at several points.
  for (size_t cut : {size_t{10}, size_t{30}, bytes.size() / 2, bytes.size() - 1}) {
    dirmoe::write_file_atomic(dir / "cut.ckpt", bytes.substr(0, cut));
    CHECK_THAT(message_of([&] { dirmoe::read_checkpoint_file(dir / "cut.ckpt"); }),
               Catch::Contains("truncated") || Catch::Contains("corrupt"));
  }

  // One flipped byte in the payload.
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x20;
  dirmoe::write_file_atomic(dir / "flip.ckpt", flipped);
  CHECK_THAT(message_of([&] { dirmoe::read_checkpoint_file(dir / "flip.ckpt"); }), Catch::Contains("CRC-32 mismatch"));

  // A newer format version.
  std::string newer = bytes;
  newer[8] = static_cast<char>(dirmoe::kCheckpointFormatVersion + 1);
  dirmoe::write_file_atomic(dir / "newer.ckpt", newer);
  CHECK_THAT(message_of([&] { dirmoe::read_checkpoint_file(dir / "newer.ckpt"); }), Catch::Contains("format version"));

  CHECK_THAT(message_of([&] { dirmoe::read_checkpoint_file(dir / "missing.ckpt"); }), Catch::Contains("missing.ckpt"));
  // load_checkpoint (what eval and analyze call) refuses the same files before building a model.
  CHECK_THAT(message_of([&] { dirmoe::load_checkpoint(dir / "flip.ckpt"); }), Catch::Contains("CRC-32 mismatch"));
  CHECK_THAT(message_of([&] { dirmoe::load_checkpoint(dir / "foreign.pt"); }), Catch::Contains("not a dirmoe checkpoint"));
  CHECK_THAT(message_of([&] { dirmoe::load_checkpoint(good); }), Catch::Contains("lacks the config"));
  fs::create_directories(dir / "empty_run");
  CHECK_THAT(message_of([&] { dirmoe::load_checkpoint(dir / "empty_run"); }), Catch::Contains("no checkpoint found"));
  fs::remove_all(dir);
}

TEST_CASE("model, optimiser and RNG state survive the payload round trip", "[train][checkpoint]") {
  torch::manual_seed(3);
  torch::nn::Linear a(torch::nn::LinearOptions(4, 3));
  dirmoe::TrainConfig train;
  auto opt_a = dirmoe::make_optimizer(*a, train);
  a->forward(torch::randn({5, 4})).pow(2).sum().backward();
  opt_a->step();
  const std::string payload = dirmoe::save_training_payload(*a, opt_a.get());
  const nlohmann::json rng = dirmoe::capture_rng_state();
  const torch::Tensor expected_draw = torch::rand({4});

  torch::nn::Linear b(torch::nn::LinearOptions(4, 3));
  auto opt_b = dirmoe::make_optimizer(*b, train);
  dirmoe::load_model_payload(*b, payload, "test");
  dirmoe::load_optimizer_payload(*opt_b, payload, "test");
  CHECK(torch::equal(a->weight, b->weight));
  CHECK(torch::equal(a->bias, b->bias));
  dirmoe::restore_rng_state(rng);
  CHECK(torch::equal(torch::rand({4}), expected_draw));

  // A second identical step from both gives identical weights (the moments were restored).
  const torch::Tensor x = torch::randn({5, 4});
  for (auto* pair : {&a, &b}) {
    (*pair)->zero_grad();
    (*pair)->forward(x).pow(2).sum().backward();
  }
  opt_a->step();
  opt_b->step();
  CHECK(torch::equal(a->weight, b->weight));

  // A model of another shape is refused with a message.
  torch::nn::Linear c(torch::nn::LinearOptions(5, 3));
  CHECK_THROWS_AS(dirmoe::load_model_payload(*c, payload, "test"), dirmoe::IoError);
}

// dirmoe-eval and dirmoe-analyze see the routers as training left them: DirMoE's temperature (which
// shapes its eval-time weights) is the schedule's value at the checkpoint's last step, not step 0's.
TEST_CASE("a loaded checkpoint's router schedules stand at its last training step", "[train][checkpoint]") {
  dirmoe::Config config;
  config.model.vocab_size = 16;
  config.model.d_model = 8;
  config.model.n_layers = 1;
  config.model.n_heads = 1;
  config.model.n_kv_heads = 1;
  config.model.d_ff = 8;
  config.model.seq_len = 4;
  config.model.n_experts = 4;
  config.router.type = "dirmoe";
  config.router.dirmoe.alpha_hidden = 4;
  config.router.dirmoe.tau_decay = 0.99;
  config.validate();
  dirmoe::Decoder model(config);
  const fs::path dir = dirmoe::testing::fresh_test_dir("schedule");
  const fs::path file = dir / dirmoe::step_checkpoint_name(120);
  dirmoe::write_checkpoint_file(file, {{"step", 120}, {"config", dirmoe::config_to_json(config)}},
                                dirmoe::save_training_payload(*model, nullptr));
  const dirmoe::LoadedCheckpoint ck = dirmoe::load_checkpoint(file);
  const auto* router = dynamic_cast<const dirmoe::DirmoeRouterImpl*>(&ck.model->blocks()[0]->moe->router());
  REQUIRE(router != nullptr);
  CHECK(router->schedule().tau == Approx(2.0 * std::pow(0.99, 119)));
  CHECK(router->schedule().tau == Approx(dirmoe::dirmoe_schedule(config.router.dirmoe, 119).tau));
  fs::remove_all(dir);
}
