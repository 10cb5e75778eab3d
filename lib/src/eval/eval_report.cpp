#include "dirmoe/eval/eval_report.h"

#include <fmt/format.h>

#include <set>

namespace dirmoe::eval {
namespace {

std::string format_metric(const std::string& metric, const nlohmann::json& m) {
  const double value = m.at("value").get<double>();
  const double se = m.value("stderr", 0.0);
  if (metric == "perplexity") return fmt::format("{:.3f} ± {:.3f}", value, se);
  return fmt::format("{:.4f} ± {:.4f}", value, se);
}

}  // namespace

nlohmann::json task_result_json(const TaskResult& result) {
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& [name, m] : result.metrics) metrics[name] = {{"value", m.value}, {"stderr", m.std_error}};
  return {{"n", result.n},
          {"n_requests", result.n_requests},
          {"metrics", metrics},
          {"prompt_version", result.prompt_version},
          {"prompt_format", result.prompt_format},
          {"source", result.source}};
}

std::string report_markdown(const nlohmann::json& report) {
  std::string md = "| task | n | metric | value ± stderr |\n|---|---:|---|---|\n";
  if (report.contains("tasks")) {
    for (const auto& [task, r] : report["tasks"].items()) {
      for (const auto& [metric, m] : r.at("metrics").items()) {
        md += fmt::format("| {} | {} | {} | {} |\n", task, r.value("n", 0), metric, format_metric(metric, m));
      }
    }
  }
  if (report.contains("validation")) {
    const auto& v = report["validation"];
    md += fmt::format("| validation ({}) | {} | perplexity | {:.3f} |\n", v.value("split", "?"),
                      v.value("tokens", 0), v.value("perplexity", 0.0));
  }
  if (report.contains("throughput")) {
    md += fmt::format("\nEval throughput: {:.0f} tokens/s ({} tokens in {:.1f} s).\n",
                      report["throughput"].value("tokens_per_second", 0.0), report["throughput"].value("tokens", 0),
                      report["throughput"].value("seconds", 0.0));
  }
  return md;
}

std::string side_by_side_markdown(const std::vector<std::pair<std::string, nlohmann::json>>& reports) {
  // rows in first-seen order across reports
  std::vector<std::pair<std::string, std::string>> rows;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& [label, report] : reports) {
    if (!report.contains("tasks")) continue;
    for (const auto& [task, r] : report["tasks"].items()) {
      for (const auto& [metric, m] : r.at("metrics").items()) {
        if (seen.insert({task, metric}).second) rows.emplace_back(task, metric);
      }
    }
    if (report.contains("validation") && seen.insert({"validation", "perplexity"}).second) {
      rows.emplace_back("validation", "perplexity");
    }
  }
  std::string md = "| task | metric |";
  std::string rule = "|---|---|";
  for (const auto& [label, report] : reports) {
    md += " " + label + " |";
    rule += "---|";
  }
  md += "\n" + rule + "\n";
  for (const auto& [task, metric] : rows) {
    md += "| " + task + " | " + metric + " |";
    for (const auto& [label, report] : reports) {
      std::string cell = "–";
      if (task == "validation") {
        if (report.contains("validation")) cell = fmt::format("{:.3f}", report["validation"].value("perplexity", 0.0));
      } else if (report.contains("tasks") && report["tasks"].contains(task) &&
                 report["tasks"][task].at("metrics").contains(metric)) {
        cell = format_metric(metric, report["tasks"][task]["metrics"][metric]);
      }
      md += " " + cell + " |";
    }
    md += "\n";
  }
  return md;
}

}  // namespace dirmoe::eval
