// Fuzzes the shard directory reader (ShardDataset): the input packs manifest.json, train.idx and
// train.bin (separated as in fuzz_util.h); every split that opens is then walked the way the
// window sampler and the analyzers walk it.
#include "dirmoe/data/shard_dataset.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const auto parts = dirmoe::fuzz::split_parts(data, size, 3);
  const fs::path dir = dirmoe::fuzz::scratch_dir() / "shards";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  dirmoe::fuzz::write_bytes(dir / "manifest.json", parts[0]);
  dirmoe::fuzz::write_bytes(dir / "train.idx", parts[1]);
  dirmoe::fuzz::write_bytes(dir / "train.bin", parts[2]);
  dirmoe::fuzz::expect_no_crash([&] {
    const dirmoe::data::ShardDataset dataset(dir.string());
    for (const auto& name : dataset.split_names()) {
      const auto split = dataset.split(name);
      (void)split.tokens_per_domain();
      for (int64_t d = 0; d < split.n_documents(); ++d) {
        (void)split.doc_domain(d);
        if (split.doc_end(d) > split.doc_begin(d)) (void)split.document_of(split.doc_begin(d));
      }
      std::vector<int64_t> tokens(static_cast<size_t>(std::min<int64_t>(split.size(), 4096)));
      split.copy_tokens(0, static_cast<int64_t>(tokens.size()), tokens.data());
      for (int64_t i = 0; i < split.size() && i < 4096; ++i) (void)split.token(i);
    }
    dataset.verify();
  });
  return 0;
}
