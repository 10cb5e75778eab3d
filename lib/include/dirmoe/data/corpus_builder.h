#pragma once
// `dirmoe-data build`: sources → documents → train/validation/held-out split → tokenizer →
// token shards → manifest (last, atomically).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dirmoe::data {

/// Settings of one build; defaults are the default corpus with an 8192-piece BPE.
struct BuildOptions {
  std::string out_dir;
  std::vector<std::string> sources = {"default"};  // see read_source() for the forms
  int64_t vocab_size = 8192;
  bool vocab_size_given = false;    // with `tokenizer`: a given size must match the model's
  std::string tokenizer;            // an existing SentencePiece .model to reuse; empty: train one
  uint64_t seed = 1234;
  std::array<double, 3> split = {0.98, 0.01, 0.01};  // train, validation, heldout
  int64_t max_docs_per_domain = 0;  // 0: all documents
  int64_t tokenizer_sample_bytes = 12'000'000;  // training text sampled from the train split
  int threads = 0;                  // 0: all hardware threads
  bool progress = true;             // progress lines on stderr
  nlohmann::json command_line = nlohmann::json::array();  // recorded in the manifest
};

/// Build the data directory and return its manifest. On any error nothing that looks complete is
/// left: the previous manifest is removed before the first byte is written, temporary files are
/// cleaned up, and the new manifest is written only after every shard is in place.
nlohmann::json build_shards(const BuildOptions& options);

}  // namespace dirmoe::data
