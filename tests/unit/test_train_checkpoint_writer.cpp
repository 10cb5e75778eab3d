// The checkpoint writer alone (no training): step checkpoints rotate to keep_last, best.ckpt is the
// same file as the step checkpoint it was linked from, and a crash between writing a file and renaming
// it into place (a leftover *.tmp) neither shows up as a checkpoint nor stops the next write.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro that would otherwise replace
// Catch's in builds without the precompiled header.
#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/train/checkpoint.h"
#include "dirmoe/train/checkpoint_file.h"
#include "dirmoe/train/checkpoint_writer.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/run_counters.h"

namespace fs = std::filesystem;

namespace {

class CountingSource : public dirmoe::BatchSource {
 public:
  torch::Tensor next_batch(int64_t batch_size) override { return torch::zeros({batch_size, 5}, torch::kInt64); }
  nlohmann::json state() const override { return {{"draws", draws}}; }
  void restore(const nlohmann::json& s) override { draws = s.at("draws").get<int64_t>(); }
  int64_t draws = 0;
};

struct Fixture {
  fs::path dir;
  dirmoe::Config config;
  torch::nn::Linear module{torch::nn::LinearOptions(3, 2)};
  torch::optim::AdamW optimizer{module->parameters(), torch::optim::AdamWOptions(1e-3)};
  CountingSource sampler;
  dirmoe::RunCounters counters;
  dirmoe::DistributedContext dist;  // one process

  Fixture() {
    dir = fs::temp_directory_path() / ("dirmoe_ckpt_writer_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    config.model.n_layers = 1;
    counters.parity = dirmoe::ParityTracker(1, 1.0, 0.05);
    counters.load = dirmoe::LoadTracker(1, 2, 2.0);
  }
  ~Fixture() { fs::remove_all(dir); }
  dirmoe::CheckpointSources sources() { return {config, *module, &optimizer, sampler, counters}; }
};

ino_t inode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("checkpoint writer: keep_last rotation and best.ckpt as a link to its step", "[train][checkpoint]") {
  Fixture f;
  dirmoe::CheckpointWriter writer(f.dir / "checkpoints", /*keep_last=*/2, f.dist, /*expert_parallel=*/nullptr);
  for (int64_t step : {10, 20, 30, 40}) {
    f.counters.step = step;
    f.counters.tokens = step * 100;
    f.sampler.draws = step;
    const bool best = step == 20;  // the validation loss improved at step 20 only
    const fs::path path = writer.write_step(f.sources(), best);
    CHECK(path == f.dir / "checkpoints" / dirmoe::step_checkpoint_name(step));
    CHECK(writer.last() == path);
  }
  const auto kept = dirmoe::list_step_checkpoints(f.dir / "checkpoints");
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].filename() == "step_00000030.ckpt");
  CHECK(kept[1].filename() == "step_00000040.ckpt");
  // best.ckpt outlives the rotation of the step file it was linked from, and holds step 20's state
  const dirmoe::CheckpointFile best = dirmoe::read_checkpoint_file(f.dir / "checkpoints" / "best.ckpt");
  CHECK(best.meta.at("step").get<int64_t>() == 20);
  CHECK(best.meta.at("ranks").at(0).at("sampler").at("draws").get<int64_t>() == 20);
  CHECK(best.meta.at("tokens").get<int64_t>() == 2000);
  CHECK_FALSE(fs::exists(f.dir / "checkpoints" / "best.ckpt.tmp"));

  // a newer best is the same file as its step checkpoint (a hard link, not a second write)
  f.counters.step = 50;
  const fs::path step50 = writer.write_step(f.sources(), /*also_best=*/true);
  CHECK(inode(step50) == inode(f.dir / "checkpoints" / "best.ckpt"));
  CHECK(dirmoe::list_step_checkpoints(f.dir / "checkpoints").size() == 2);

  // best.ckpt between step checkpoints is written whole, and the step files are left alone
  f.counters.step = 55;
  writer.write_best(f.sources());
  CHECK(dirmoe::read_checkpoint_file(f.dir / "checkpoints" / "best.ckpt").meta.at("step").get<int64_t>() == 55);
  CHECK(dirmoe::read_checkpoint_file(step50).meta.at("step").get<int64_t>() == 50);
}

TEST_CASE("checkpoint writer: a crash between write and rename leaves the last good files", "[train][checkpoint]") {
  Fixture f;
  dirmoe::CheckpointWriter writer(f.dir / "checkpoints", /*keep_last=*/2, f.dist, nullptr);
  f.counters.step = 10;
  writer.write_step(f.sources(), /*also_best=*/true);
  // What a kill leaves between writing and renaming: half a step file and half a best link under
  // their temporary names.
  const fs::path ckpts = f.dir / "checkpoints";
  dirmoe::write_file_atomic(ckpts / "step_00000020.ckpt.tmp", "half a checkpoint");
  std::ofstream(ckpts / "best.ckpt.tmp") << "half a link";
  const auto listed = dirmoe::list_step_checkpoints(ckpts);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].filename() == "step_00000010.ckpt");
  CHECK(dirmoe::read_checkpoint_file(ckpts / "best.ckpt").meta.at("step").get<int64_t>() == 10);

  // the next run writes over the leftovers: the stale best.ckpt.tmp is replaced, not renamed as it was
  f.counters.step = 20;
  writer.write_step(f.sources(), /*also_best=*/true);
  CHECK(dirmoe::read_checkpoint_file(ckpts / "step_00000020.ckpt").meta.at("step").get<int64_t>() == 20);
  CHECK(dirmoe::read_checkpoint_file(ckpts / "best.ckpt").meta.at("step").get<int64_t>() == 20);
  CHECK_FALSE(fs::exists(ckpts / "best.ckpt.tmp"));
}
