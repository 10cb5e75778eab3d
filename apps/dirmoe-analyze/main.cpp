// dirmoe-analyze: routing statistics → HDF5 + reports.
//   dirmoe-analyze --checkpoint PATH --split validation|heldout --tokens N --out DIR
//       [--data DIR] [--batch-size B] [--trace-tokens N] [--device D]
//     runs the checkpoint's model (eval mode, no grad) over the first N tokens of the split, read
//     in order (N is rounded up to whole windows of seq_len), and writes DIR/routing.h5,
//     DIR/report.md and DIR/report.json (with the DirMoE prior's predictions for router dirmoe);
//     layers whose load max/mean exceeds --load-threshold (default 2) are flagged in both
//   dirmoe-analyze compare A.h5 B.h5 ... [--out FILE.md]   side-by-side table (markdown; JSON beside)
//   dirmoe-analyze report routing.h5 --out DIR             report.md + report.json of one file
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/config/config.h"
#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/build_info.h"
#include "dirmoe/core/device.h"
#include "dirmoe/core/error.h"
#include "dirmoe/core/output_lock.h"
#include "dirmoe/core/progress.h"
#include "dirmoe/data/shard_dataset.h"
#include "dirmoe/data/window_sampler.h"
#include "dirmoe/stats/routing_stats_accumulator.h"
#include "dirmoe/train/checkpoint.h"
#include "dirmoe/train/trainer.h"
#include "dirmoe/stats/routing_report.h"
#include "dirmoe/stats/routing_stats_file.h"

namespace fs = std::filesystem;

namespace {

void write_report(const dirmoe::RoutingReport& report, const fs::path& dir) {
  dirmoe::ensure_directory(dir);
  dirmoe::write_file_atomic(dir / "report.md", dirmoe::routing_report_markdown(report));
  dirmoe::write_file_atomic(dir / "report.json", dirmoe::routing_report_json(report).dump(2) + "\n");
}

struct AnalyzeOptions {
  std::string checkpoint, split = "validation", out, data_dir, device = "cpu";
  int64_t tokens = 0, batch_size = 8, trace_tokens = 0;
  double load_threshold = dirmoe::kDefaultLoadThreshold;
};

/// Routing statistics of a checkpoint over the first `tokens` tokens of a split.
void analyze_checkpoint(const AnalyzeOptions& o) {
  if (o.split != "validation" && o.split != "heldout")
    throw dirmoe::ConfigError(fmt::format("--split must be validation or heldout, not '{}'", o.split));
  if (o.tokens <= 0) throw dirmoe::ConfigError("--tokens must be positive");
  if (o.batch_size <= 0) throw dirmoe::ConfigError("--batch-size must be positive");
  if (!fs::exists(o.checkpoint))
    throw dirmoe::IoError(fmt::format("checkpoint '{}' does not exist (give a .ckpt file or a run directory)", o.checkpoint));
  const torch::Device device = dirmoe::resolve_device(o.device, "--device");
  const fs::path ckpt_path = dirmoe::resolve_checkpoint_path(o.checkpoint);
  dirmoe::LoadedCheckpoint ck = dirmoe::load_checkpoint(ckpt_path, device);
  const dirmoe::Config& config = ck.config;
  const std::string data_dir = o.data_dir.empty() ? config.data.dir : o.data_dir;
  if (!fs::is_directory(data_dir))
    throw dirmoe::IoError(fmt::format("data directory '{}' does not exist ({}); build it with `dirmoe-data build` or "
                                      "give --data DIR", data_dir, o.data_dir.empty() ? "from the checkpoint's config data.dir" : "--data"));
  const dirmoe::data::ShardDataset dataset(data_dir);
  if (dataset.vocab_size() > config.model.vocab_size)
    throw dirmoe::DataError(fmt::format("{}: vocabulary size {} exceeds the checkpoint's model.vocab_size {} ({}); "
                                        "is this the data the model was trained on?", data_dir,
                                        dataset.vocab_size(), config.model.vocab_size, ckpt_path.string()));
  const int64_t T = config.model.seq_len;
  // Splits are stored domain by domain: read windows spread evenly over the whole split, so that
  // --tokens N below the split's size still sees every domain in proportion.
  const dirmoe::data::TokenSplit split = dataset.split(o.split);
  const int64_t all_windows = dirmoe::data::SequentialReader(split, T).n_windows();
  const int64_t wanted_windows = std::max<int64_t>(1, (o.tokens + T - 1) / T);
  dirmoe::data::SequentialReader reader(split, T, std::max<int64_t>(1, all_windows / wanted_windows));
  if (reader.n_windows() == 0)
    throw dirmoe::DataError(fmt::format("{}: split '{}' has fewer than seq_len + 1 = {} tokens", data_dir, o.split, T + 1));

  dirmoe::RoutingStatsOptions so;
  so.n_layers = config.model.n_layers;
  so.n_experts = config.model.n_experts;
  so.n_domains = static_cast<int64_t>(dataset.domains().size());
  so.trace_stride = o.trace_tokens > 0 ? 1 : 0;
  so.trace_max_tokens = o.trace_tokens;
  dirmoe::RoutingStatsAccumulator acc(so);

  auto& model = ck.model;
  model->eval();
  torch::NoGradGuard no_grad;
  dirmoe::ProgressLine progress("analyze", static_cast<double>(o.tokens), "k tok", 1e3, "");
  int64_t done = 0;
  torch::Tensor tokens_BT1, domains_BT;
  while (done < o.tokens) {
    const int64_t rows = std::min<int64_t>(o.batch_size, (o.tokens - done + T - 1) / T);
    if (!reader.next(rows, tokens_BT1, domains_BT)) break;
    const torch::Tensor inputs_BT = tokens_BT1.slice(1, 0, T).contiguous();
    acc.set_domains(domains_BT.reshape({-1}).to(device), inputs_BT.reshape({-1}).to(device));
    model->forward(inputs_BT.to(device), &acc);
    done += inputs_BT.numel();
    progress.update(static_cast<double>(done));
  }
  progress.finish();
  if (done < o.tokens)
    std::fprintf(stderr, "note: split '%s' holds only %lld tokens in whole windows; analysed all of them\n",
                 o.split.c_str(), static_cast<long long>(done));

  dirmoe::RoutingStatsFile file;
  file.attrs.router = config.router.type;
  file.attrs.k_target = config.model.n_experts_active;
  file.attrs.step = ck.step;
  file.attrs.config_json = dirmoe::config_to_json(config).dump();
  file.attrs.git_rev = dirmoe::git_revision();
  file.domains = dataset.domains();
  file.stats = acc.snapshot();
  dirmoe::ensure_directory(o.out);
  const fs::path h5 = fs::path(o.out) / "routing.h5";
  dirmoe::write_routing_stats(h5, file);
  write_report(dirmoe::make_routing_report(file, h5.string(), /*top_n=*/3, o.load_threshold), o.out);
  std::fprintf(stderr, "analysed %lld tokens of '%s' at step %lld; wrote %s, report.md, report.json\n",
               static_cast<long long>(done), o.split.c_str(), static_cast<long long>(ck.step), h5.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG and is reported with the
  // file's name, instead of SIGXFSZ killing the process in the middle of it.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"dirmoe-analyze: routing statistics of MoE checkpoints (HDF5, reports, comparisons)"};
  app.require_subcommand(0, 1);

  AnalyzeOptions ao;
  auto* ckpt_opt = app.add_option("--checkpoint", ao.checkpoint, "checkpoint file or run directory to analyse");
  app.add_option("--split", ao.split, "split to read in order: validation | heldout")->capture_default_str();
  app.add_option("--tokens", ao.tokens, "tokens to analyse (rounded up to whole windows)");
  app.add_option("--out", ao.out, "output directory (routing.h5, report.md, report.json)");
  app.add_option("--data", ao.data_dir, "data directory (default: the checkpoint's data.dir)");
  app.add_option("--batch-size", ao.batch_size, "windows per forward")->capture_default_str();
  app.add_option("--trace-tokens", ao.trace_tokens, "keep the routing of the first N tokens in /trace")->capture_default_str();
  app.add_option("--device", ao.device, "cpu | cuda | cuda:N | auto")->capture_default_str();
  const std::string threshold_help = "flag layers whose load max/mean (tokens per expert) exceeds this";
  app.add_option("--load-threshold", ao.load_threshold, threshold_help)->capture_default_str();

  std::vector<std::string> compare_files;
  std::string compare_out;
  auto* compare = app.add_subcommand("compare", "side-by-side table of several routing.h5 files");
  compare->add_option("files", compare_files, "routing.h5 files (one per run)")->required()->expected(1, -1);
  compare->add_option("--out", compare_out, "write the table to FILE.md (and FILE.json beside it) instead of stdout");
  compare->add_option("--load-threshold", ao.load_threshold, threshold_help)->capture_default_str();

  std::string report_file, report_out;
  auto* report = app.add_subcommand("report", "report.md + report.json of one routing.h5");
  report->add_option("file", report_file, "routing.h5")->required();
  report->add_option("--out", report_out, "output directory")->required();
  report->add_option("--load-threshold", ao.load_threshold, threshold_help)->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  try {
    if (!(ao.load_threshold >= 1.0))
      throw dirmoe::ConfigError(fmt::format("--load-threshold {} must be >= 1 (load max/mean is 1 when balanced)",
                                            ao.load_threshold));
    if (!compare->parsed() && !report->parsed()) {
      if (ckpt_opt->count() == 0) throw dirmoe::ConfigError("give --checkpoint PATH (or a subcommand: compare, report); see --help");
      if (ao.out.empty()) throw dirmoe::ConfigError("--out DIR is required with --checkpoint");
      if (ao.tokens <= 0) throw dirmoe::ConfigError("--tokens N (> 0) is required with --checkpoint");
      const dirmoe::OutputLock lock(dirmoe::OutputLock::for_directory(ao.out), ao.out,
                                    dirmoe::OutputLock::command_line(argc, argv));
      analyze_checkpoint(ao);
    } else if (compare->parsed()) {
      std::vector<dirmoe::RoutingReport> reports;
      for (const auto& f : compare_files) reports.push_back(dirmoe::make_routing_report(dirmoe::read_routing_stats(f), f, 3, ao.load_threshold));
      const std::string md = dirmoe::compare_reports_markdown(reports);
      if (compare_out.empty()) {
        std::fputs(md.c_str(), stdout);
      } else {
        fs::path out(compare_out);
        const dirmoe::OutputLock lock(dirmoe::OutputLock::for_file(out), out, dirmoe::OutputLock::command_line(argc, argv));
        dirmoe::write_file_atomic(out, md);
        fs::path json_out = out;
        json_out.replace_extension(".json");
        dirmoe::write_file_atomic(json_out, dirmoe::compare_reports_json(reports).dump(2) + "\n");
        std::fprintf(stderr, "wrote %s and %s\n", out.c_str(), json_out.c_str());
      }
    } else if (report->parsed()) {
      const dirmoe::OutputLock lock(dirmoe::OutputLock::for_directory(report_out), report_out,
                                    dirmoe::OutputLock::command_line(argc, argv));
      write_report(dirmoe::make_routing_report(dirmoe::read_routing_stats(report_file), report_file, 3, ao.load_threshold),
                   report_out);
      std::fprintf(stderr, "wrote %s/report.md and report.json\n", report_out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dirmoe-analyze: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
