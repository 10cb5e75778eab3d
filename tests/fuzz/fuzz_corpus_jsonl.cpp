// Fuzzes the JSONL corpus reader of `dirmoe-data build`: the first byte picks the file's
// compression as named by its extension (.jsonl, .jsonl.gz, .jsonl.zst), the rest is the file.
#include "dirmoe/data/document_source.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* const kNames[] = {"docs.jsonl", "docs.jsonl.gz", "docs.jsonl.zst"};
  const auto path = dirmoe::fuzz::scratch_dir() / kNames[data[0] % 3];
  dirmoe::fuzz::write_bytes(path, std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  dirmoe::fuzz::expect_no_crash([&] {
    dirmoe::data::SourceOptions options;
    options.max_docs_per_domain = (data[0] / 3) % 4;  // 0: no cap
    int64_t bytes = 0;
    const auto stats = dirmoe::data::read_source("fuzz=" + path.string(), options,
                                                 [&](dirmoe::data::Document&& doc) { bytes += doc.text.size(); });
    (void)stats.to_json().dump();
  });
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return 0;
}
