// Window sampling: seeded, resumable, per-rank, domain-weighted; sequential reading in order.
#include <unistd.h>

#include <filesystem>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/core/error.h"
#include "dirmoe/data/shard_dataset.h"
#include "dirmoe/data/shard_writer.h"
#include "dirmoe/data/window_sampler.h"

using namespace dirmoe::data;
namespace fs = std::filesystem;

namespace {

// Documents alternate domains: domain 0 holds token ids 0..999, domain 1 ids 1000..1999, domain 2
// ids 2000..2999; each token id also encodes its position (id % 1000 == position % 1000 within the
// document), so a window's first token tells its domain.
struct Fixture {
  fs::path dir;
  Fixture() {
    dir = fs::temp_directory_path() / ("dirmoe_sampler_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    SplitWriter w(dir, "train", 2);
    const int lengths[3] = {300, 900, 150};
    for (int d = 0; d < 60; ++d) {
      const int dom = d % 3;
      std::vector<int32_t> ids(static_cast<size_t>(lengths[dom]));
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = dom * 1000 + static_cast<int32_t>(i % 1000);
      w.add_document(ids.data(), ids.size(), dom);
    }
    dirmoe::write_file_atomic(dir / "tokenizer.model", "x");
    write_shard_manifest(dir, make_shard_manifest({"a", "b", "c"}, 4096, describe_file(dir, "tokenizer.model"), 1, 2,
                                                  {w.finish()}));
  }
  ~Fixture() { fs::remove_all(dir); }
};

}  // namespace

TEST_CASE("windows are seq_len+1 consecutive tokens and reproducible from the seed", "[data][sampler]") {
  Fixture fx;
  ShardDataset ds(fx.dir.string());
  const auto train = ds.split("train");
  WindowSampler a(train, 32, 11), b(train, 32, 11), c(train, 32, 12), r1(train, 32, 11, {}, 1);
  const auto xa = a.next_batch(8);
  CHECK(xa.sizes() == torch::IntArrayRef({8, 33}));
  CHECK(xa.dtype() == torch::kInt64);
  CHECK(torch::equal(xa, b.next_batch(8)));
  CHECK_FALSE(torch::equal(xa, c.next_batch(8)));
  CHECK_FALSE(torch::equal(xa, r1.next_batch(8)));  // another rank, another stream
  // The global torch generator is neither used nor disturbed.
  torch::manual_seed(0);
  const auto before = torch::rand({1});
  torch::manual_seed(0);
  a.next_batch(4);
  CHECK(torch::equal(before, torch::rand({1})));
}

TEST_CASE("a restored sampler draws the very same next windows", "[data][sampler]") {
  Fixture fx;
  ShardDataset ds(fx.dir.string());
  const auto train = ds.split("train");
  for (const std::map<std::string, double>& weights : {std::map<std::string, double>{},
                                                      std::map<std::string, double>{{"a", 1.0}, {"c", 3.0}}}) {
    WindowSampler run(train, 16, 5, weights);
    run.next_batch(7);
    const auto saved = nlohmann::json::parse(run.state().dump());  // through text, as in a checkpoint
    const auto expected1 = run.next_batch(5), expected2 = run.next_batch(3);
    WindowSampler resumed(train, 16, 5, weights);
    resumed.restore(saved);
    CHECK(torch::equal(resumed.next_batch(5), expected1));
    CHECK(torch::equal(resumed.next_batch(3), expected2));
    CHECK(resumed.windows_drawn() == run.windows_drawn());
    WindowSampler other_seed(train, 16, 6, weights);
    CHECK_THROWS_AS(other_seed.restore(saved), dirmoe::DataError);
    WindowSampler other_len(train, 8, 5, weights);
    CHECK_THROWS_AS(other_len.restore(saved), dirmoe::DataError);
  }
}

TEST_CASE("domain weights set the mixture", "[data][sampler]") {
  Fixture fx;
  ShardDataset ds(fx.dir.string());
  const auto train = ds.split("train");
  // Weights a:1, c:3 → 25% / 0% / 75% of windows start in a / b / c. Domain c's documents are 150
  // tokens, so windows of 101 tokens starting in c usually run into the next document; the first
  // token still tells where the window started.
  WindowSampler s(train, 100, 3, {{"a", 1.0}, {"c", 3.0}});
  const auto x = s.next_batch(4000);
  const auto first = x.index({torch::indexing::Slice(), 0}).floor_divide(1000);
  const double frac_a = first.eq(0).sum().item<double>() / 4000.0;
  const double frac_b = first.eq(1).sum().item<double>() / 4000.0;
  CHECK(frac_b == 0.0);
  CHECK(std::abs(frac_a - 0.25) < 5 * std::sqrt(0.25 * 0.75 / 4000));
  // Consecutive tokens inside a document: each window is a contiguous slice of the split.
  const auto row = x[0];
  CHECK(row.size(0) == 101);
  // Natural mixture: proportional to tokens (a 300, b 900, c 150 per 3 documents).
  WindowSampler n(train, 10, 3);
  const auto y = n.next_batch(4000).index({torch::indexing::Slice(), 0}).floor_divide(1000);
  CHECK(std::abs(y.eq(1).sum().item<double>() / 4000.0 - 900.0 / 1350.0) < 0.04);
  CHECK_THROWS_AS(WindowSampler(train, 10, 3, {{"zzz", 1.0}}), dirmoe::DataError);
  CHECK_THROWS_AS(WindowSampler(train, 1000000, 3), dirmoe::DataError);
}

TEST_CASE("the sequential reader walks the split in order with per-token domains", "[data][sampler]") {
  Fixture fx;
  ShardDataset ds(fx.dir.string());
  const auto train = ds.split("train");
  SequentialReader reader(train, 64);
  CHECK(reader.n_windows() == (train.size() - 1) / 64);
  torch::Tensor tokens_BT1, domains_BT;
  int64_t window = 0;
  while (reader.next(5, tokens_BT1, domains_BT)) {
    REQUIRE(tokens_BT1.size(1) == 65);
    REQUIRE(domains_BT.size(1) == 64);
    for (int64_t b = 0; b < tokens_BT1.size(0); ++b, ++window) {
      const int64_t start = window * 64;
      for (int64_t t = 0; t < 65; ++t) REQUIRE(tokens_BT1[b][t].item<int64_t>() == train.token(start + t));
      for (int64_t t = 0; t < 64; ++t) {
        REQUIRE(domains_BT[b][t].item<int64_t>() == train.domain_of(start + t));
        REQUIRE(domains_BT[b][t].item<int64_t>() == tokens_BT1[b][t].item<int64_t>() / 1000);
      }
    }
  }
  CHECK(window == reader.n_windows());
  CHECK_FALSE(reader.next(5, tokens_BT1, domains_BT));
}

TEST_CASE("a strided sequential reader takes every s-th window", "[data][sampler]") {
  Fixture fx;
  ShardDataset ds(fx.dir.string());
  const auto train = ds.split("train");
  const int64_t all = (train.size() - 1) / 64;
  SequentialReader reader(train, 64, /*window_stride=*/7);
  CHECK(reader.n_windows() == (all + 6) / 7);
  torch::Tensor tokens_BT1, domains_BT;
  int64_t window = 0;
  while (reader.next(3, tokens_BT1, domains_BT)) {
    for (int64_t b = 0; b < tokens_BT1.size(0); ++b, ++window) {
      const int64_t start = window * 7 * 64;
      REQUIRE(start + 65 <= train.size());
      for (int64_t t = 0; t < 65; ++t) REQUIRE(tokens_BT1[b][t].item<int64_t>() == train.token(start + t));
      for (int64_t t = 0; t < 64; ++t) REQUIRE(domains_BT[b][t].item<int64_t>() == train.domain_of(start + t));
    }
  }
  CHECK(window == reader.n_windows());
  REQUIRE_THROWS_AS(SequentialReader(train, 64, 0), dirmoe::DataError);
}
