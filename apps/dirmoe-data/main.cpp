// dirmoe-data: build token shards from text sources, or check a built directory.
//   dirmoe-data build --out DIR [--source default|PATH ...] [--vocab-size N] [--tokenizer FILE.model]
//                     [--seed S] [--split 0.98,0.01,0.01] [--max-docs-per-domain N]
//   dirmoe-data verify DIR       sizes and sha256 of every file against the manifest
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dirmoe/core/error.h"
#include "dirmoe/core/output_lock.h"
#include "dirmoe/data/corpus_builder.h"
#include "dirmoe/data/document_split.h"
#include "dirmoe/data/shard_dataset.h"

namespace {

int64_t directory_bytes(const std::filesystem::path& dir) {
  int64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) total += static_cast<int64_t>(e.file_size());
  }
  return total;
}

void print_summary(const nlohmann::json& m, const std::string& dir) {
  std::printf("%-14s", "domain");
  for (const auto& [split, _] : m.at("splits").items()) std::printf(" %14s", split.c_str());
  std::printf("\n");
  for (const auto& d : m.at("domains")) {
    const auto name = d.get<std::string>();
    std::printf("%-14s", name.c_str());
    for (const auto& [split, s] : m.at("splits").items()) {
      const auto& per = s.at("domains");
      std::printf(" %14lld", per.contains(name) ? static_cast<long long>(per.at(name).at("tokens").get<int64_t>()) : 0LL);
    }
    std::printf("\n");
  }
  std::printf("%-14s", "total tokens");
  for (const auto& [split, s] : m.at("splits").items()) std::printf(" %14lld", static_cast<long long>(s.at("n_tokens").get<int64_t>()));
  std::printf("\n");
  const auto& in = m.at("input");
  std::printf("documents %lld (%.1f MB); empty skipped %lld; documents with invalid UTF-8 %lld (%lld sequences replaced)\n",
              static_cast<long long>(in.at("documents").get<int64_t>()), in.at("bytes").get<double>() / 1e6,
              static_cast<long long>(in.at("empty_documents_skipped").get<int64_t>()),
              static_cast<long long>(in.at("invalid_utf8_documents").get<int64_t>()),
              static_cast<long long>(in.at("invalid_utf8_sequences_replaced").get<int64_t>()));
  const auto& t = m.at("timing");
  std::printf("vocab %lld (%s); read %.1f s, tokenizer %.1f s, encode %.1f s (%.2f MB/s, %.2f M tok/s), total %.1f s\n",
              static_cast<long long>(m.at("tokenizer").at("vocab_size").get<int64_t>()), m.at("dtype").get<std::string>().c_str(),
              t.at("read_s").get<double>(), t.at("tokenizer_s").get<double>(), t.at("encode_s").get<double>(),
              t.at("encode_mb_per_s").get<double>(), t.at("encode_tokens_per_s").get<double>() / 1e6,
              t.at("total_s").get<double>());
  std::printf("wrote %s (%.1f MB)\n", dir.c_str(), static_cast<double>(directory_bytes(dir)) / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG and is reported with the
  // file's name, instead of SIGXFSZ killing the process in the middle of it.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"dirmoe-data: build and check token shards"};
  app.require_subcommand(1);

  dirmoe::data::BuildOptions opt;
  std::string split_text = "0.98,0.01,0.01";
  double sample_mb = static_cast<double>(opt.tokenizer_sample_bytes) / 1e6;
  bool quiet = false;
  auto* build = app.add_subcommand("build", "build corpus, tokenizer and shards into --out");
  build->add_option("--out", opt.out_dir, "output directory")->required();
  build->add_option("--source", opt.sources,
                    "`default` (Debian text packages), a directory of text files (domain = top-level folder), a JSONL "
                    "file (.jsonl[.gz|.zst], fields text and optional domain); NAME=PATH sets the domain; repeatable")
      ->capture_default_str();
  auto* vocab_opt = build->add_option("--vocab-size", opt.vocab_size, "BPE vocabulary size")->capture_default_str();
  build->add_option("--tokenizer", opt.tokenizer, "reuse this SentencePiece .model instead of training one")
      ->check(CLI::ExistingFile);
  build->add_option("--seed", opt.seed, "seed of the document split and the tokenizer sample")->capture_default_str();
  build->add_option("--split", split_text, "train,validation,heldout fractions")->capture_default_str();
  build->add_option("--max-docs-per-domain", opt.max_docs_per_domain, "keep the first N documents of each domain (0: all)")
      ->capture_default_str();
  build->add_option("--tokenizer-sample-mb", sample_mb, "MB of train text sampled to train the tokenizer")->capture_default_str();
  build->add_option("--threads", opt.threads, "encoding threads (0: all cores)")->capture_default_str();
  build->add_flag("--quiet", quiet, "no progress lines or summary");

  std::string verify_dir;
  auto* verify = app.add_subcommand("verify", "check a built directory: every file's size and sha256 against its manifest");
  verify->add_option("dir", verify_dir, "data directory")->required();

  CLI11_PARSE(app, argc, argv);
  try {
    if (*build) {
      opt.vocab_size_given = vocab_opt->count() > 0;
      opt.split = dirmoe::data::DocumentSplitter::parse_fractions(split_text);
      opt.tokenizer_sample_bytes = static_cast<int64_t>(sample_mb * 1e6);
      opt.progress = !quiet;
      opt.command_line = std::vector<std::string>(argv, argv + argc);
      // One writer per data directory, from before its first write until the process ends.
      const dirmoe::OutputLock lock(dirmoe::OutputLock::for_directory(opt.out_dir), opt.out_dir,
                                    dirmoe::OutputLock::command_line(argc, argv));
      const auto manifest = dirmoe::data::build_shards(opt);
      if (!quiet) print_summary(manifest, opt.out_dir);
    } else if (*verify) {
      dirmoe::data::ShardDataset ds(verify_dir);
      ds.verify();
      std::printf("%s: ok (%zu files, sizes and sha256 match the manifest)\n", verify_dir.c_str(),
                  ds.manifest().at("files").size());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dirmoe-data: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
