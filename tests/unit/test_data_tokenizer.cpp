// Tokenizer: a small BPE trained on the fixture corpus round-trips text exactly.
#include <unistd.h>

#include <filesystem>

#include <catch2/catch.hpp>

#include "dirmoe/core/error.h"
#include "dirmoe/data/document_source.h"
#include "dirmoe/data/tokenizer.h"
#include "../support/test_paths.h"

using namespace dirmoe::data;
namespace fs = std::filesystem;

namespace {
std::vector<std::string> fixture_texts() {
  std::vector<std::string> texts;
  read_source(std::string(dirmoe::testing::test_data_dir()) + "/corpus/tree", {}, [&](Document&& d) { texts.push_back(d.text); });
  return texts;
}
}  // namespace

TEST_CASE("BPE trained on the fixture encodes and decodes exactly", "[data][tokenizer]") {
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto texts = fixture_texts();
  TokenizerTrainOptions opt;
  opt.vocab_size = 600;
  opt.threads = 1;
  train_tokenizer(texts, (dir / "t.model").string(), opt);
  Tokenizer tok((dir / "t.model").string());
  CHECK(tok.vocab_size() == 600);
  CHECK(tok.unk_id() == 0);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.piece(2) == "</s>");
  int64_t total_tokens = 0, total_bytes = 0;
  for (const auto& t : texts) {
    const auto ids = tok.encode(t);
    CHECK(tok.decode(ids) == t);  // whitespace, newlines and indentation survive
    total_tokens += static_cast<int64_t>(ids.size());
    total_bytes += static_cast<int64_t>(t.size());
    for (int id : ids) CHECK(id != tok.unk_id());
  }
  // BPE merges do compress the text it was trained on (bytes alone would give 1 token per byte).
  CHECK(static_cast<double>(total_bytes) / static_cast<double>(total_tokens) > 2.0);
  // Unseen characters fall back to bytes, still exact.
  const std::string unseen = "  indented\n\ttab \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 end\n";
  CHECK(tok.decode(tok.encode(unseen)) == unseen);
  CHECK_THROWS_AS(tok.decode({9999}), dirmoe::DataError);
  CHECK_THROWS_AS(Tokenizer((dir / "missing.model").string()), dirmoe::IoError);
  fs::remove_all(dir);
}

TEST_CASE("a vocabulary larger than the text supports is refused", "[data][tokenizer][bad]") {
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_tok_big_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  TokenizerTrainOptions opt;
  opt.vocab_size = 5000;
  opt.threads = 1;
  const std::vector<std::string> tiny = {"a small text\n", "another small text\n"};
  REQUIRE_THROWS_AS(train_tokenizer(tiny, (dir / "t.model").string(), opt), dirmoe::DataError);
  REQUIRE_THROWS_WITH(train_tokenizer(tiny, (dir / "t.model").string(), opt), Catch::Matchers::Contains("--vocab-size 5000"));
  CHECK_FALSE(fs::exists(dir / "t.model"));
  fs::remove_all(dir);
}
