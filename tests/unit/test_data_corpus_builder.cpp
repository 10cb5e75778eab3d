// End to end through the library: fixture sources → shards; every document comes back intact.
#include <unistd.h>

#include <filesystem>
#include <set>

#include <catch2/catch.hpp>

#include "dirmoe/core/error.h"
#include "dirmoe/data/corpus_builder.h"
#include "dirmoe/data/document_source.h"
#include "dirmoe/data/shard_dataset.h"
#include "dirmoe/data/tokenizer.h"
#include "../support/test_files.h"
#include "../support/test_paths.h"

using namespace dirmoe::data;
namespace fs = std::filesystem;

namespace {
const std::string kData = dirmoe::testing::test_data_dir();

BuildOptions fixture_options(const fs::path& out) {
  BuildOptions opt;
  opt.out_dir = out.string();
  opt.sources = {kData + "/corpus/tree", kData + "/corpus/jsonl/mixed.jsonl.zst"};
  opt.vocab_size = 600;
  opt.split = {0.7, 0.15, 0.15};
  opt.threads = 2;
  opt.progress = false;
  return opt;
}
}  // namespace

TEST_CASE("a fixture build stores every document once, intact, with its domain", "[data][build]") {
  const auto out = dirmoe::testing::unused_test_path("build");
  const auto manifest = build_shards(fixture_options(out));
  ShardDataset ds(out.string());
  ds.verify();
  CHECK(ds.vocab_size() == 600);
  CHECK(ds.dtype() == "uint16");
  CHECK(ds.domains() == std::vector<std::string>{"code", "cooking", "weather", "mixed", "unicode"});
  CHECK(manifest.at("input").at("documents").get<int64_t>() == 97);
  CHECK(manifest.at("sources").size() == 2);
  CHECK(manifest.at("git_revision").is_string());

  // Expected: (domain, text) of every source document.
  std::multiset<std::pair<std::string, std::string>> expected, got;
  for (const auto& spec : fixture_options(out).sources) {
    read_source(spec, {}, [&](Document&& d) { expected.emplace(d.domain, d.text); });
  }
  Tokenizer tok(ds.tokenizer_path());
  int64_t docs = 0;
  for (const auto& name : ds.split_names()) {
    const auto split = ds.split(name);
    for (int64_t d = 0; d < split.n_documents(); ++d) {
      std::vector<int> ids;
      for (int64_t i = split.doc_begin(d); i < split.doc_end(d); ++i) ids.push_back(static_cast<int>(split.token(i)));
      REQUIRE(!ids.empty());
      CHECK(ids.back() == ds.eos_id());
      ids.pop_back();
      got.emplace(ds.domains()[static_cast<size_t>(split.doc_domain(d))], tok.decode(ids));
      ++docs;
    }
    CHECK(split.n_documents() > 0);
  }
  CHECK(docs == 97);
  CHECK(got == expected);

  // Same seed → identical shards; another seed → another split.
  const auto out2 = dirmoe::testing::unused_test_path("build2");
  build_shards(fixture_options(out2));
  CHECK(ShardDataset(out2.string()).manifest().at("files") == manifest.at("files"));
  auto opt3 = fixture_options(out2);
  opt3.seed = 99;
  opt3.tokenizer = ds.tokenizer_path();  // reuse: only the split changes
  const auto m3 = build_shards(opt3);
  CHECK(m3.at("splits").at("validation").at("n_tokens") != manifest.at("splits").at("validation").at("n_tokens"));
  CHECK(m3.at("tokenizer_training").at("trained") == false);
  fs::remove_all(out);
  fs::remove_all(out2);
}

TEST_CASE("a failed build leaves no manifest and no temporary files", "[data][build][bad]") {
  const auto out = dirmoe::testing::unused_test_path("build_fail");
  // A good first build, then a rebuild that fails on malformed JSONL half-way.
  build_shards(fixture_options(out));
  REQUIRE(fs::exists(out / "manifest.json"));
  auto opt = fixture_options(out);
  opt.sources.push_back(kData + "/bad/malformed.jsonl");
  REQUIRE_THROWS_WITH(build_shards(opt), Catch::Matchers::Contains("malformed.jsonl:3:"));
  CHECK_FALSE(fs::exists(out / "manifest.json"));
  for (const auto& e : fs::directory_iterator(out)) {
    CHECK(e.path().filename().string().find("tmp") == std::string::npos);
    CHECK(e.path().filename().string().find("staging") == std::string::npos);
  }
  REQUIRE_THROWS_AS(ShardDataset(out.string()), dirmoe::DataError);

  // Vocabulary larger than the corpus supports.
  auto big = fixture_options(out);
  big.vocab_size = 60000;
  REQUIRE_THROWS_WITH(build_shards(big), Catch::Matchers::Contains("--vocab-size 60000"));
  CHECK_FALSE(fs::exists(out / "manifest.json"));
  fs::remove_all(out);
}

TEST_CASE("a capped build of the default corpus", "[data][build][slow]") {
  const auto out = dirmoe::testing::unused_test_path("build_default");
  BuildOptions opt;
  opt.out_dir = out.string();
  opt.max_docs_per_domain = 40;
  opt.vocab_size = 1000;
  opt.progress = false;
  const auto m = build_shards(opt);
  ShardDataset ds(out.string());
  ds.verify();
  CHECK(ds.domains().size() == 7);
  for (const auto& src : m.at("sources")) {
    CHECK(src.at("packages").size() >= 7);
    for (const auto& [name, d] : src.at("domains").items()) CHECK(d.at("documents").get<int64_t>() <= 40);
  }
  fs::remove_all(out);
}
