#include "dirmoe/data/corpus_builder.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/build_info.h"
#include "dirmoe/core/error.h"
#include "dirmoe/core/progress.h"
#include "dirmoe/core/remove_tree.h"
#include "dirmoe/data/document_source.h"
#include "dirmoe/data/document_split.h"
#include "dirmoe/data/shard_writer.h"
#include "dirmoe/data/tokenizer.h"

namespace dirmoe::data {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Documents of one split between the reading pass and the encoding pass:
/// records {uint32 domain id, uint64 n_bytes, bytes}.
class StagingFile {
 public:
  explicit StagingFile(fs::path path) : path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "w+b");
    if (f_ == nullptr) throw IoError(fmt::format("{}: cannot create ({})", path_.string(), std::strerror(errno)));
  }
  ~StagingFile() {
    if (f_ != nullptr) std::fclose(f_);
  }
  void append(int domain, const std::string& text) {
    const uint32_t d = static_cast<uint32_t>(domain);
    const uint64_t n = text.size();
    if (std::fwrite(&d, 4, 1, f_) != 1 || std::fwrite(&n, 8, 1, f_) != 1 ||
        (n > 0 && std::fwrite(text.data(), 1, n, f_) != n)) {
      throw IoError(fmt::format("{}: write failed ({}); is the disk full?", path_.string(), std::strerror(errno)));
    }
    bytes_ += static_cast<int64_t>(n);
    ++docs_;
  }
  void rewind() {
    std::fflush(f_);
    std::fseek(f_, 0, SEEK_SET);
  }
  bool read(int& domain, std::string& text) {
    uint32_t d;
    uint64_t n;
    if (std::fread(&d, 4, 1, f_) != 1) return false;
    if (std::fread(&n, 8, 1, f_) != 1) throw IoError(path_.string() + ": truncated staging record");
    text.resize(n);
    if (n > 0 && std::fread(text.data(), 1, n, f_) != n) throw IoError(path_.string() + ": truncated staging record");
    domain = static_cast<int>(d);
    return true;
  }
  int64_t bytes() const { return bytes_; }
  int64_t docs() const { return docs_; }

 private:
  fs::path path_;
  std::FILE* f_ = nullptr;
  int64_t bytes_ = 0, docs_ = 0;
};

/// Removes the staging directory however the build ends.
struct ScopedDir {
  fs::path path;
  ~ScopedDir() { remove_tree(path.string()); }
};

// Cut a document into tokenizer-training "sentences": runs of lines up to ~1 KB, broken at blank
// lines, never longer than 4 KB (longer lines are cut at a UTF-8 character boundary).
template <typename F>
void for_each_chunk(const std::string& text, F&& f) {
  constexpr size_t kTarget = 1024, kMax = 4096;
  std::string chunk;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string::npos ? text.size() : nl + 1;
    std::string_view line(text.data() + pos, end - pos);
    pos = end;
    while (line.size() > kMax) {
      size_t cut = kMax;
      while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
      if (!chunk.empty()) f(std::move(chunk)), chunk.clear();
      f(std::string(line.substr(0, cut)));
      line.remove_prefix(cut);
    }
    if (chunk.size() + line.size() > kMax) f(std::move(chunk)), chunk.clear();
    chunk.append(line);
    const bool blank = line.size() <= 2 && line.find_first_not_of("\r\n") == std::string_view::npos;
    if (chunk.size() >= kTarget || (blank && chunk.size() > 200)) f(std::move(chunk)), chunk.clear();
  }
  if (!chunk.empty()) f(std::move(chunk));
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

nlohmann::json build_shards(const BuildOptions& opt) {
  const auto t_start = Clock::now();
  if (opt.out_dir.empty()) throw ConfigError("--out: an output directory is required");
  if (opt.sources.empty()) throw ConfigError("--source: give at least one source (`default`, a directory or a JSONL file)");
  if (opt.tokenizer.empty() && (opt.vocab_size < 300 || opt.vocab_size > (int64_t(1) << 31))) {
    throw ConfigError(fmt::format("--vocab-size {}: must be at least 300 (256 byte pieces + specials + merges)", opt.vocab_size));
  }
  const DocumentSplitter splitter(opt.seed, opt.split);
  const int threads = opt.threads > 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
  // Check a given tokenizer before the long reading pass.
  if (!opt.tokenizer.empty()) {
    Tokenizer given(opt.tokenizer);
    if (opt.vocab_size_given && given.vocab_size() != opt.vocab_size) {
      throw ConfigError(fmt::format("--vocab-size {} disagrees with --tokenizer {} ({} pieces); drop --vocab-size",
                                    opt.vocab_size, opt.tokenizer, given.vocab_size()));
    }
  }

  const fs::path out(opt.out_dir);
  ensure_directory(out);
  // An old manifest would vouch for files this build is about to replace: remove it first.
  std::error_code ec;
  if (fs::exists(out / kManifestName)) {
    fs::remove(out / kManifestName, ec);
    if (ec) throw IoError(fmt::format("{}: cannot remove the old manifest ({})", (out / kManifestName).string(), ec.message()));
  }
  ScopedDir staging{out / fmt::format(".staging.{}", ::getpid())};
  ensure_directory(staging.path);

  // 1. Read every source, clean, split by document, stage.
  std::vector<std::unique_ptr<StagingFile>> stage;
  for (const char* name : kSplitNames) stage.push_back(std::make_unique<StagingFile>(staging.path / (std::string(name) + ".docs")));
  std::map<std::string, int> domain_ids;
  std::vector<std::string> domains;
  std::vector<SourceStats> source_stats;
  int64_t read_bytes = 0, read_docs = 0;
  {
    ProgressLine progress("read", 0, "MB", 1e6, "doc", opt.progress ? &std::cerr : nullptr);
    for (const auto& spec : opt.sources) {
      source_stats.push_back(read_source(spec, SourceOptions{opt.max_docs_per_domain}, [&](Document&& doc) {
        auto [it, inserted] = domain_ids.emplace(doc.domain, static_cast<int>(domains.size()));
        if (inserted) domains.push_back(doc.domain);
        stage[static_cast<size_t>(splitter.split_of(doc.text))]->append(it->second, doc.text);
        read_bytes += static_cast<int64_t>(doc.text.size());
        progress.update(static_cast<double>(read_bytes), static_cast<double>(++read_docs));
      }));
    }
    progress.finish();
  }
  const double read_s = seconds_since(t_start);
  if (read_docs == 0) {
    throw DataError(fmt::format("{}: the sources hold no non-empty documents", fmt::format("{}", fmt::join(opt.sources, ", "))));
  }
  for (size_t s = 0; s < kSplitNames.size(); ++s) {
    if (stage[s]->docs() == 0 && opt.split[s] > 0) {
      std::fprintf(stderr, "warning: split '%s' received no documents (%lld in total); use a larger corpus or --split\n",
                   kSplitNames[s], static_cast<long long>(read_docs));
    }
  }

  // 2. Tokenizer: reuse the given one or train BPE on a sample of the train split.
  const auto t_tok = Clock::now();
  const fs::path model_path = out / "tokenizer.model";
  int64_t sample_bytes = 0, sample_sentences = 0;
  if (!opt.tokenizer.empty()) {
    write_file_atomic(model_path, read_file(opt.tokenizer));
  } else {
    if (stage[0]->docs() == 0) throw DataError("the train split is empty: nothing to train the tokenizer on");
    const double p = std::min(1.0, static_cast<double>(opt.tokenizer_sample_bytes) / static_cast<double>(stage[0]->bytes()));
    std::vector<std::string> samples;
    uint64_t counter = 0;
    const uint64_t key = splitmix64(opt.seed ^ 0x746f6b656e697a65ULL);
    stage[0]->rewind();
    int domain;
    std::string text;
    while (stage[0]->read(domain, text)) {
      for_each_chunk(text, [&](std::string&& chunk) {
        const double u = static_cast<double>(splitmix64(key + 0x9e3779b97f4a7c15ULL * counter++) >> 11) * 0x1.0p-53;
        if (u < p) {
          sample_bytes += static_cast<int64_t>(chunk.size());
          samples.push_back(std::move(chunk));
        }
      });
    }
    sample_sentences = static_cast<int64_t>(samples.size());
    if (opt.progress) {
      std::fprintf(stderr, "tokenizer: training BPE (%lld pieces) on %.1f MB (%lld sentences) of the train split...\n",
                   static_cast<long long>(opt.vocab_size), static_cast<double>(sample_bytes) / 1e6,
                   static_cast<long long>(sample_sentences));
    }
    TokenizerTrainOptions topt;
    topt.vocab_size = opt.vocab_size;
    topt.threads = threads;
    train_tokenizer(samples, model_path.string(), topt);
  }
  const double tokenizer_s = seconds_since(t_tok);
  const Tokenizer tokenizer(model_path.string());
  const int64_t vocab = tokenizer.vocab_size();
  const std::string dtype = token_dtype_for_vocab(vocab);
  const int dtype_bytes = dtype == "uint16" ? 2 : 4;
  const int eos = tokenizer.eos_id();
  if (eos < 0) throw DataError(fmt::format("{}: the tokenizer has no EOS piece; documents need one", opt.tokenizer));

  // 3. Encode each split in parallel batches, in document order.
  const auto t_enc = Clock::now();
  std::vector<SplitSummary> summaries;
  int64_t total_bytes = 0;
  for (const auto& s : stage) total_bytes += s->bytes();
  int64_t encoded_bytes = 0, encoded_tokens = 0;
  {
    ProgressLine progress("encode", static_cast<double>(total_bytes), "MB", 1e6, "tok", opt.progress ? &std::cerr : nullptr);
    for (size_t s = 0; s < kSplitNames.size(); ++s) {
      SplitWriter writer(out, kSplitNames[s], dtype_bytes);
      stage[s]->rewind();
      std::vector<std::pair<int, std::string>> batch;
      std::vector<std::vector<int>> ids;
      bool more = true;
      while (more) {
        batch.clear();
        size_t batch_bytes = 0;
        int domain;
        std::string text;
        while (batch_bytes < (16u << 20) && (more = stage[s]->read(domain, text))) {
          batch_bytes += text.size();
          batch.emplace_back(domain, std::move(text));
        }
        ids.assign(batch.size(), {});
        std::atomic<size_t> next{0};
        std::vector<std::thread> pool;
        std::exception_ptr failure;
        std::mutex failure_mutex;
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([&] {
            try {
              for (size_t i; (i = next++) < batch.size();) ids[i] = tokenizer.encode(batch[i].second);
            } catch (...) {
              std::lock_guard<std::mutex> lock(failure_mutex);
              failure = std::current_exception();
            }
          });
        }
        for (auto& th : pool) th.join();
        if (failure) std::rethrow_exception(failure);
        for (size_t i = 0; i < batch.size(); ++i) {
          ids[i].push_back(eos);
          writer.add_document(ids[i].data(), ids[i].size(), batch[i].first);
          encoded_tokens += static_cast<int64_t>(ids[i].size());
        }
        encoded_bytes += static_cast<int64_t>(batch_bytes);
        progress.update(static_cast<double>(encoded_bytes), static_cast<double>(encoded_tokens));
      }
      summaries.push_back(writer.finish());
    }
    progress.finish();
  }
  const double encode_s = seconds_since(t_enc);

  // 4. Manifest, last.
  nlohmann::json extra;
  extra["created_utc"] = utc_now();
  extra["library_version"] = library_version();
  extra["command_line"] = opt.command_line;
  extra["config"] = {{"sources", opt.sources},
                     {"seed", opt.seed},
                     {"split", {{"train", opt.split[0]}, {"validation", opt.split[1]}, {"heldout", opt.split[2]}}},
                     {"vocab_size", vocab},
                     {"tokenizer", opt.tokenizer.empty() ? nlohmann::json("trained") : nlohmann::json(opt.tokenizer)},
                     {"max_docs_per_domain", opt.max_docs_per_domain},
                     {"tokenizer_sample_bytes", opt.tokenizer_sample_bytes}};
  nlohmann::json src = nlohmann::json::array();
  int64_t empty = 0, bad_docs = 0, replaced = 0;
  for (const auto& s : source_stats) {
    src.push_back(s.to_json());
    empty += s.empty_skipped;
    bad_docs += s.invalid_utf8_documents;
    replaced += s.replaced_sequences;
  }
  extra["sources"] = src;
  extra["input"] = {{"documents", read_docs}, {"bytes", read_bytes}, {"empty_documents_skipped", empty},
                    {"invalid_utf8_documents", bad_docs}, {"invalid_utf8_sequences_replaced", replaced}};
  extra["tokenizer_training"] = {{"trained", opt.tokenizer.empty()}, {"sample_bytes", sample_bytes},
                                 {"sample_sentences", sample_sentences}, {"algorithm", "sentencepiece-bpe"}};
  const double total_s = seconds_since(t_start);
  extra["timing"] = {{"read_s", read_s}, {"tokenizer_s", tokenizer_s}, {"encode_s", encode_s}, {"total_s", total_s},
                     {"encode_mb_per_s", static_cast<double>(total_bytes) / 1e6 / std::max(encode_s, 1e-9)},
                     {"encode_tokens_per_s", static_cast<double>(encoded_tokens) / std::max(encode_s, 1e-9)},
                     {"threads", threads}};
  auto manifest = make_shard_manifest(domains, vocab, describe_file(out, "tokenizer.model"), tokenizer.bos_id(), eos,
                                      summaries, extra);
  write_shard_manifest(out, manifest);
  return manifest;
}

}  // namespace dirmoe::data
