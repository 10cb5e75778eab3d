// Reading sources: text trees, JSONL (plain/gz/zst) and bad input.
#include <catch2/catch.hpp>

#include "dirmoe/core/error.h"
#include "dirmoe/data/byte_reader.h"
#include "dirmoe/data/document_source.h"
#include "../support/test_paths.h"

using namespace dirmoe::data;
namespace {
const std::string kData = dirmoe::testing::test_data_dir();

std::vector<Document> read_all(const std::string& spec, SourceStats* stats = nullptr, int64_t cap = 0) {
  std::vector<Document> docs;
  auto s = read_source(spec, SourceOptions{cap}, [&](Document&& d) { docs.push_back(std::move(d)); });
  if (stats != nullptr) *stats = s;
  return docs;
}
}  // namespace

TEST_CASE("a text tree gives one document per file, domain = top-level folder", "[data][source]") {
  SourceStats stats;
  const auto docs = read_all(kData + "/corpus/tree", &stats);
  REQUIRE(docs.size() == 72);
  CHECK(stats.kind == "text-tree");
  for (const char* d : {"code", "cooking", "weather"}) {
    CHECK(stats.domains.at(d).files == 24);
    CHECK(stats.domains.at(d).documents == 24);
  }
  // Sorted file order: code/ first, and its first file's text unchanged.
  CHECK(docs.front().domain == "code");
  CHECK(docs.front().text == read_decompressed(kData + "/corpus/tree/code/code_00.py"));
  // NAME=PATH relabels every document.
  const auto relabeled = read_all("all=" + kData + "/corpus/tree/weather");
  REQUIRE(relabeled.size() == 24);
  CHECK(relabeled[0].domain == "all");
  // The cap keeps the first N of each domain.
  SourceStats capped;
  CHECK(read_all(kData + "/corpus/tree", &capped, 5).size() == 15);
  CHECK(capped.capped == 57);  // 19 files per domain left out
}

TEST_CASE("JSONL reads the same from plain, gzip and zstd files", "[data][source]") {
  SourceStats stats;
  const auto plain = read_all(kData + "/corpus/jsonl/mixed.jsonl", &stats);
  REQUIRE(plain.size() == 25);
  CHECK(stats.domains.at("cooking").documents == 12);
  CHECK(stats.domains.at("mixed").documents == 12);  // no "domain" field: the file's stem
  CHECK(stats.domains.at("unicode").documents == 1);
  CHECK(plain.back().text == "Caf\xc3\xa9 cr\xc3\xa8me, na\xc3\xafve \xe2\x80\x94 \xc3\xbc" "ber \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\n");
  for (const char* ext : {".gz", ".zst"}) {
    const auto other = read_all(kData + "/corpus/jsonl/mixed.jsonl" + ext);
    REQUIRE(other.size() == plain.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      CHECK(other[i].text == plain[i].text);
      CHECK(other[i].domain == plain[i].domain);
    }
  }
  CHECK(std::string(ByteReader(kData + "/corpus/jsonl/mixed.jsonl.zst").format()) == "zstd");
  CHECK(std::string(ByteReader(kData + "/corpus/jsonl/mixed.jsonl.gz").format()) == "gzip");
}

TEST_CASE("malformed JSONL names the file and the line", "[data][source][bad]") {
  const std::string path = kData + "/bad/malformed.jsonl";
  REQUIRE_THROWS_AS(read_all(path), dirmoe::DataError);
  REQUIRE_THROWS_WITH(read_all(path), Catch::Matchers::Contains(path + ":3:"));
  REQUIRE_THROWS_WITH(read_all(kData + "/bad/missing_text.jsonl"),
                      Catch::Matchers::Contains("missing_text.jsonl:2:") && Catch::Matchers::Contains("\"text\""));
}

TEST_CASE("missing paths, invalid UTF-8 and empty documents", "[data][source][bad]") {
  REQUIRE_THROWS_AS(read_all("/nonexistent/dirmoe/corpus"), dirmoe::IoError);
  REQUIRE_THROWS_WITH(read_all("/nonexistent/dirmoe/corpus"), Catch::Matchers::Contains("/nonexistent/dirmoe/corpus"));
  SourceStats stats;
  const auto docs = read_all(kData + "/bad/tree", &stats);
  REQUIRE(docs.size() == 2);          // blank.txt is skipped
  CHECK(stats.empty_skipped == 1);
  CHECK(stats.invalid_utf8_documents == 1);
  CHECK(stats.replaced_sequences == 3);  // \xe9, \xff, \xfe
  CHECK(docs[1].text == "Caf\xef\xbf\xbd au lait costs \xef\xbf\xbd\xef\xbf\xbd two euros.\n");
}
