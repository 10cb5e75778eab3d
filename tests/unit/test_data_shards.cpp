// Shard files: what is written is what is read (tokens, document offsets, domains), and a
// directory whose files disagree with the manifest is refused, naming the file.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <catch2/catch.hpp>

#include "dirmoe/core/error.h"
#include "dirmoe/data/shard_dataset.h"
#include "dirmoe/data/shard_writer.h"
#include "../support/test_files.h"

using namespace dirmoe::data;
namespace fs = std::filesystem;

namespace {

struct Written {
  std::vector<std::vector<int32_t>> docs;
  std::vector<int> domains;
};

// Writes `n_docs` random documents into a "train" split and an empty "validation" split.
Written write_dataset(const fs::path& dir, int64_t vocab, int n_docs, uint32_t seed) {
  fs::create_directories(dir);
  std::mt19937 rng(seed);
  Written w;
  const int dtype_bytes = token_dtype_for_vocab(vocab) == "uint16" ? 2 : 4;
  SplitWriter train(dir, "train", dtype_bytes);
  for (int d = 0; d < n_docs; ++d) {
    std::vector<int32_t> ids(rng() % 50);  // includes empty documents
    for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
    const int dom = static_cast<int>(rng() % 3);
    train.add_document(ids.data(), ids.size(), dom);
    w.docs.push_back(ids);
    w.domains.push_back(dom);
  }
  std::vector<SplitSummary> splits{train.finish(), SplitWriter(dir, "validation", dtype_bytes).finish()};
  dirmoe::write_file_atomic(dir / "tokenizer.model", "not a real model");
  write_shard_manifest(dir, make_shard_manifest({"alpha", "beta", "gamma"}, vocab, describe_file(dir, "tokenizer.model"),
                                                1, 2, splits));
  return w;
}

}  // namespace

TEST_CASE("shards round-trip tokens, offsets and domains (uint16 and uint32)", "[data][shards]") {
  for (int64_t vocab : {int64_t(8192), int64_t(100000)}) {
    const auto dir = dirmoe::testing::unused_test_path("shards_rt");
    const auto w = write_dataset(dir, vocab, 300, 42);
    ShardDataset ds(dir.string());
    ds.verify();
    CHECK(ds.vocab_size() == vocab);
    CHECK(ds.dtype() == (vocab == 8192 ? "uint16" : "uint32"));
    CHECK(ds.domains() == std::vector<std::string>{"alpha", "beta", "gamma"});
    CHECK(ds.split_names() == std::vector<std::string>{"train", "validation"});
    const auto train = ds.split("train");
    REQUIRE(train.n_documents() == 300);
    int64_t pos = 0;
    std::vector<int64_t> per_domain(3, 0);
    for (int64_t d = 0; d < 300; ++d) {
      const auto& ids = w.docs[static_cast<size_t>(d)];
      REQUIRE(train.doc_begin(d) == pos);
      REQUIRE(train.doc_end(d) == pos + static_cast<int64_t>(ids.size()));
      CHECK(train.doc_domain(d) == w.domains[static_cast<size_t>(d)]);
      for (size_t i = 0; i < ids.size(); ++i) {
        REQUIRE(train.token(pos + static_cast<int64_t>(i)) == ids[i]);
        REQUIRE(train.domain_of(pos + static_cast<int64_t>(i)) == w.domains[static_cast<size_t>(d)]);
      }
      per_domain[static_cast<size_t>(w.domains[static_cast<size_t>(d)])] += static_cast<int64_t>(ids.size());
      pos += static_cast<int64_t>(ids.size());
    }
    CHECK(train.size() == pos);
    CHECK(train.tokens_per_domain() == per_domain);
    CHECK(ds.manifest().at("splits").at("train").at("domains").at("beta").at("tokens").get<int64_t>() == per_domain[1]);
    CHECK(ds.split("validation").size() == 0);
    CHECK_THROWS_AS(ds.split("test"), dirmoe::DataError);
    // The .bin is the plain little-endian array nanoGPT's np.memmap reads.
    std::ifstream bin(dir / "train.bin", std::ios::binary);
    unsigned char b[4] = {0, 0, 0, 0};
    bin.read(reinterpret_cast<char*>(b), vocab == 8192 ? 2 : 4);
    CHECK(int64_t(b[0]) + (int64_t(b[1]) << 8) + (int64_t(b[2]) << 16) + (int64_t(b[3]) << 24) == train.token(0));
    fs::remove_all(dir);
  }
}

TEST_CASE("a shard whose size or hash disagrees with the manifest is refused", "[data][shards][bad]") {
  const auto dir = dirmoe::testing::unused_test_path("shards_bad");
  write_dataset(dir, 8192, 50, 7);
  REQUIRE_NOTHROW(ShardDataset(dir.string()).verify());
  const auto bin = (dir / "train.bin").string();

  // Same size, one byte flipped: the open succeeds (sizes only), verify() names the file.
  {
    std::fstream f(bin, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(10);
    const char c = static_cast<char>(f.get());
    f.seekp(10);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  ShardDataset flipped(dir.string());
  REQUIRE_THROWS_AS(flipped.verify(), dirmoe::DataError);
  REQUIRE_THROWS_WITH(flipped.verify(), Catch::Matchers::Contains(bin) && Catch::Matchers::Contains("sha256"));

  // Truncated: refused on open.
  fs::resize_file(bin, fs::file_size(bin) - 2);
  REQUIRE_THROWS_AS(ShardDataset(dir.string()), dirmoe::DataError);
  REQUIRE_THROWS_WITH(ShardDataset(dir.string()), Catch::Matchers::Contains(bin) && Catch::Matchers::Contains("bytes"));

  // No manifest (an interrupted build): refused, saying so.
  fs::remove(dir / "manifest.json");
  REQUIRE_THROWS_WITH(ShardDataset(dir.string()), Catch::Matchers::Contains("no manifest.json"));
  fs::remove_all(dir);
}

TEST_CASE("an abandoned split writer leaves no files", "[data][shards]") {
  const auto dir = dirmoe::testing::unused_test_path("shards_abandoned");
  fs::create_directories(dir);
  {
    SplitWriter w(dir, "train", 2);
    const int32_t ids[3] = {1, 2, 70000};
    CHECK_THROWS_AS(w.add_document(ids, 3, 0), dirmoe::DataError);  // does not fit uint16
  }
  CHECK(fs::is_empty(dir));
  fs::remove_all(dir);
}
