// dirmoe-eval: zero-shot evaluation of a checkpoint (lm-eval-harness scoring), side-by-side
// tables of several results, and export to safetensors.
//   dirmoe-eval --checkpoint RUN_OR_CKPT --tasks heldout_cloze,arc_easy --task-dir DIR --out res.json
//   dirmoe-eval table a.json b.json [--out table.md]
//   dirmoe-eval export --checkpoint RUN_OR_CKPT --out DIR
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "dirmoe/config/config.h"
#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/build_info.h"
#include "dirmoe/core/device.h"
#include "dirmoe/core/cpu_caching_allocator.h"
#include "dirmoe/core/error.h"
#include "dirmoe/core/output_lock.h"
#include "dirmoe/core/progress.h"
#include "dirmoe/data/shard_dataset.h"
#include "dirmoe/data/tokenizer.h"
#include "dirmoe/eval/corpus_eval.h"
#include "dirmoe/eval/eval_report.h"
#include "dirmoe/eval/heldout_tasks.h"
#include "dirmoe/eval/model_export.h"
#include "dirmoe/eval/model_scorer.h"
#include "dirmoe/eval/router_rule_eval.h"
#include "dirmoe/eval/sample_log.h"
#include "dirmoe/eval/task_readers.h"
#include "dirmoe/model/decoder.h"
// NOTE: the checkpoint loader comes with the trainer; until it is part of the build the tool
// only says so (the table subcommand works regardless).
#if __has_include("dirmoe/train/checkpoint.h")
#include "dirmoe/train/checkpoint.h"
#define DIRMOE_EVAL_HAS_CHECKPOINTS 1
#else
#define DIRMOE_EVAL_HAS_CHECKPOINTS 0
#endif

namespace fs = std::filesystem;
using namespace dirmoe;
using namespace dirmoe::eval;

namespace {

[[maybe_unused]] std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= s.size()) {
    size_t end = s.find(',', begin);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(begin, end - begin);
    if (!item.empty()) out.push_back(item);
    begin = end + 1;
  }
  return out;
}

struct EvalOptions {
  std::string checkpoint, tasks, task_dir, data, out, device = "auto", log_samples;
  int64_t train_rule_draws = 0;  // > 0: the validation loss under the training-mode router too (H10)
  std::vector<std::string> overrides;
};

#if DIRMOE_EVAL_HAS_CHECKPOINTS
int run_eval(const EvalOptions& opt) {
  const torch::Device device = dirmoe::resolve_device(opt.device, "--device");
  LoadedCheckpoint ckpt = load_checkpoint(opt.checkpoint, device);
  Config config = ckpt.config;
  for (const auto& o : opt.overrides) apply_override(config, o);
  if (!opt.tasks.empty()) config.eval.tasks = split_list(opt.tasks);
  if (!opt.task_dir.empty()) config.eval.task_dir = opt.task_dir;
  if (!opt.data.empty()) config.data.dir = opt.data;
  config.validate();
  if (!fs::exists(config.data.dir)) {
    throw IoError("data directory " + config.data.dir + " not found (it holds the tokenizer and the held-out split); "
                  "pass --data DIR");
  }
  data::ShardDataset dataset(config.data.dir);
  data::Tokenizer tokenizer(dataset.tokenizer_path());
  TokenizerEncoder encoder(tokenizer);

  Decoder model = ckpt.model;
  model->eval();
  LogitsFn logits_fn = [&](const torch::Tensor& tokens_BT) { return model->forward(tokens_BT).logits_BTV; };
  const int64_t window = config.model.seq_len;
  ModelScorer scorer(logits_fn, window, config.eval.batch_size, device);

  // Load every task before scoring any, so a missing file fails fast.
  std::vector<Task> tasks;
  std::vector<HeldoutDocument> heldout_docs;
  for (const auto& name : config.eval.tasks) {
    if (name == "heldout_cloze" || name == "heldout_choice") {
      if (heldout_docs.empty()) {
        heldout_docs = decode_documents(dataset.split("heldout"), tokenizer, /*max_docs=*/4000,
                                        /*max_tokens_per_doc=*/2048);
      }
      HeldoutTaskOptions ho;
      ho.n_examples = config.eval.heldout_examples;
      ho.seed = config.eval.seed;
      // every choice must fit the window: at most half of it, in characters (>= 1 per token)
      ho.max_continuation_chars = std::min<int64_t>(ho.max_continuation_chars, config.model.seq_len / 2);
      tasks.push_back(name == "heldout_cloze" ? build_heldout_cloze(heldout_docs, ho)
                                              : build_heldout_choice(heldout_docs, ho));
    } else {
      if (config.eval.task_dir.empty() && find_task_spec(name) != nullptr) {
        throw ConfigError("task " + name + " reads " + find_task_spec(name)->file_name +
                          " from a task directory: pass --task-dir DIR (or set eval.task_dir)");
      }
      tasks.push_back(load_task_file(name, config.eval.task_dir));
    }
  }

  nlohmann::json report;
  report["format_version"] = 1;
  report["checkpoint"] = fs::absolute(opt.checkpoint).string();
  report["step"] = ckpt.step;
  report["git_revision"] = git_revision();
  report["device"] = device.str();
  report["config"] = config_to_json(config);
  report["tasks"] = nlohmann::json::object();
  std::string samples;  // --log-samples: one JSON line per scored document
  for (const Task& task : tasks) {
    const int64_t n_docs = config.eval.max_examples > 0
                               ? std::min<int64_t>(config.eval.max_examples, static_cast<int64_t>(task.docs.size()))
                               : static_cast<int64_t>(task.docs.size());
    int64_t n_req = 0;
    for (int64_t d = 0; d < n_docs; ++d) n_req += static_cast<int64_t>(task.docs[d].requests.size());
    ProgressLine progress(task.name, static_cast<double>(n_req), "req", 1.0, "tok");
    const int64_t tokens_before = scorer.tokens_processed();
    scorer.set_progress([&](int64_t done, int64_t) {
      progress.update(static_cast<double>(done), static_cast<double>(scorer.tokens_processed() - tokens_before));
    });
    TaskResult result = evaluate_task(task, encoder, scorer, config.eval.max_examples);
    progress.finish();
    report["tasks"][task.name] = task_result_json(result);
    if (!opt.log_samples.empty()) samples += sample_log_jsonl(task, result);
    std::string line = fmt::format("{:<16} n={:<6}", task.name, result.n);
    for (const auto& [metric, m] : result.metrics) line += fmt::format(" {}={:.4f}±{:.4f}", metric, m.value, m.std_error);
    std::cerr << line << "\n";
  }
  if (config.eval.validation_tokens > 0) {
    const auto windows = split_windows(dataset.split("validation"), window, config.eval.validation_tokens);
    int64_t total_tokens = 0;
    for (const auto& w : windows) total_tokens += static_cast<int64_t>(w.size());
    ProgressLine progress("validation", static_cast<double>(windows.size()), "win", 1.0, "tok");
    const auto start = std::chrono::steady_clock::now();
    SequenceNll nll = sequence_nll(logits_fn, windows, config.eval.batch_size, device, [&](int64_t done, int64_t) {
      progress.update(static_cast<double>(done));
    });
    progress.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report["validation"] = {{"split", "validation"},
                            {"tokens", nll.n_tokens},
                            {"nll", nll.n_tokens ? nll.nll / nll.n_tokens : 0.0},
                            {"perplexity", nll.n_tokens ? std::exp(nll.nll / nll.n_tokens) : 0.0},
                            {"input_tokens", total_tokens},
                            {"seconds", seconds}};
    std::cerr << fmt::format("validation perplexity {:.3f} over {} tokens\n",
                             report["validation"]["perplexity"].get<double>(), nll.n_tokens);
  }
  if (opt.train_rule_draws > 0) {
    if (config.eval.validation_tokens <= 0) {
      throw ConfigError("--train-rule-draws scores the validation split: set eval.validation_tokens > 0");
    }
    const auto windows = split_windows(dataset.split("validation"), window, config.eval.validation_tokens);
    std::cerr << fmt::format("router rules: evaluation rule, then the training rule over {} draws\n",
                             opt.train_rule_draws);
    const RouterRuleNll eval_rule = router_rule_nll(model, windows, config.eval.batch_size, device, 0, config.train.seed);
    const RouterRuleNll train_rule =
        router_rule_nll(model, windows, config.eval.batch_size, device, opt.train_rule_draws, config.train.seed);
    report["router_rules"] = router_rules_json(eval_rule, train_rule);
    std::cerr << fmt::format("validation loss: evaluation rule {:.4f}, training rule {:.4f} ± {:.4f} ({} draws)\n",
                             eval_rule.nll, train_rule.nll, train_rule.nll_std, train_rule.draws);
  }
  report["throughput"] = {{"tokens", scorer.tokens_processed()},
                          {"seconds", scorer.seconds()},
                          {"tokens_per_second", scorer.seconds() > 0 ? scorer.tokens_processed() / scorer.seconds() : 0.0}};
  const fs::path out(opt.out);
  if (out.has_parent_path()) ensure_directory(out.parent_path());
  if (!opt.log_samples.empty()) {
    // the item records, and beside them (FILE.config.json) the resolved config and git revision
    const fs::path log_path(opt.log_samples);
    if (log_path.has_parent_path()) ensure_directory(log_path.parent_path());
    write_file_atomic(log_path, samples);
    fs::path log_config = log_path;
    log_config.replace_extension(".config.json");
    write_file_atomic(log_config, config_report_json(config));
    report["log_samples"] = fs::absolute(log_path).string();
  }
  write_file_atomic(out, report.dump(2) + "\n");
  fs::path md = out;
  md.replace_extension(".md");
  write_file_atomic(md, report_markdown(report));
  std::cout << report_markdown(report);
  std::cerr << "wrote " << out.string() << " and " << md.string() << "\n";
  return 0;
}

#endif

int run_table(const std::vector<std::string>& files, const std::string& out) {
  std::vector<std::pair<std::string, nlohmann::json>> reports;
  for (const auto& f : files) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(f));
    } catch (const nlohmann::json::parse_error& e) {
      throw DataError(f + ": not a JSON eval report: " + e.what());
    }
    reports.emplace_back(fs::path(f).stem().string(), j);
  }
  const std::string md = side_by_side_markdown(reports);
  if (!out.empty()) write_file_atomic(out, md);
  std::cout << md;
  return 0;
}

#if DIRMOE_EVAL_HAS_CHECKPOINTS
int run_export(const std::string& checkpoint, const std::string& out, const std::string& data_dir) {
  LoadedCheckpoint ckpt = load_checkpoint(checkpoint, torch::kCPU);
  const std::string dir = data_dir.empty() ? ckpt.config.data.dir : data_dir;
  fs::path tokenizer;
  if (fs::exists(dir)) {
    tokenizer = data::ShardDataset(dir).tokenizer_path();
  } else {
    std::cerr << "warning: data directory " << dir << " not found; the tokenizer is not copied (pass --data DIR)\n";
  }
  ExportSummary s = export_model(*ckpt.model, ckpt.config, out, tokenizer);
  for (const auto& w : s.warnings) std::cerr << "warning: " << w << "\n";
  std::cerr << fmt::format("exported {} tensors ({} parameters) in the {} layout to {}\n", s.n_tensors,
                           s.n_parameters, s.layout, out);
  return 0;
}
#else
int run_eval(const EvalOptions&) { throw Error("this build has no checkpoint loader (dirmoe/train/checkpoint.h)"); }
int run_export(const std::string&, const std::string&, const std::string&) {
  throw Error("this build has no checkpoint loader (dirmoe/train/checkpoint.h)");
}
#endif

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG and is reported with the
  // file's name, instead of SIGXFSZ killing the process in the middle of it.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"dirmoe-eval: zero-shot evaluation (lm-eval-harness scoring), result tables, export"};
  EvalOptions opt;
  app.add_option("--checkpoint", opt.checkpoint, "checkpoint file or run directory");
  app.add_option("--tasks", opt.tasks, "comma-separated tasks (default: eval.tasks of the config)");
  app.add_option("--task-dir", opt.task_dir, "directory holding the tasks' JSONL files (<task>.jsonl)");
  app.add_option("--data", opt.data, "data directory (tokenizer, held-out and validation splits)");
  app.add_option("--out", opt.out, "output JSON (a markdown table is written beside it)");
  app.add_option("--device", opt.device, "auto | cpu | cuda | cuda:N");
  app.add_option("--set", opt.overrides, "config override a.b=value (repeatable)");
  app.add_option("--train-rule-draws", opt.train_rule_draws,
                 "also score the validation loss with the router in training mode (noise on), averaged over N "
                 "draws, beside the evaluation rule (report key router_rules)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-samples", opt.log_samples,
                 "write one JSON line per scored item (task, doc_id, context, continuations, loglikelihoods, "
                 "is_greedy, target, acc, acc_norm) to this file");

  auto* table = app.add_subcommand("table", "side-by-side markdown of several eval JSON files");
  std::vector<std::string> table_files;
  std::string table_out;
  table->add_option("files", table_files, "eval JSON files")->required();
  table->add_option("--out", table_out, "write the table to this file too");

  auto* exp = app.add_subcommand("export", "export a checkpoint as safetensors + config.json + tokenizer");
  std::string exp_ckpt, exp_out, exp_data;
  exp->add_option("--checkpoint", exp_ckpt, "checkpoint file or run directory")->required();
  exp->add_option("--out", exp_out, "output directory")->required();
  exp->add_option("--data", exp_data, "data directory whose tokenizer is copied");
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);
  try {
    dirmoe::install_cpu_caching_allocator();
    const std::string command = OutputLock::command_line(argc, argv);
    if (*table) {
      std::unique_ptr<OutputLock> lock;
      if (!table_out.empty()) lock = std::make_unique<OutputLock>(OutputLock::for_file(table_out), table_out, command);
      return run_table(table_files, table_out);
    }
    if (*exp) {
      // beside the exported directory, which stays exactly the model's files
      const OutputLock lock(OutputLock::for_file(exp_out), exp_out, command);
      return run_export(exp_ckpt, exp_out, exp_data);
    }
    if (opt.checkpoint.empty() || opt.out.empty()) {
      std::cerr << "dirmoe-eval: --checkpoint and --out are required (or use the table/export subcommands)\n";
      return 2;
    }
    // One writer per result file: other files of its directory (a run's checkpoints) stay writable.
    const OutputLock lock(OutputLock::for_file(opt.out), opt.out, command);
    return run_eval(opt);
  } catch (const std::exception& e) {
    std::cerr << "dirmoe-eval: " << e.what() << "\n";
    return 1;
  }
}
