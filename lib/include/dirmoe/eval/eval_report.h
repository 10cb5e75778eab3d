#pragma once
// The eval output: one JSON document per checkpoint
//   {"format_version": 1, "checkpoint": ..., "git_revision": ..., "config": {...},
//    "tasks": {"arc_easy": {"n": .., "metrics": {"acc": {"value": .., "stderr": ..}, ...},
//              "prompt_version": .., "prompt_format": .., "source": ..}, ...},
//    "validation": {"split": .., "perplexity": .., "nll": .., "tokens": ..},
//    "throughput": {"tokens": .., "seconds": .., "tokens_per_second": ..}}
// and markdown tables made from such documents (one checkpoint, or several side by side).
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dirmoe/eval/task_evaluator.h"

namespace dirmoe::eval {

nlohmann::json task_result_json(const TaskResult& result);

/// One markdown table of a report: task | n | metric | value ± stderr.
std::string report_markdown(const nlohmann::json& report);

/// Side-by-side table: one row per (task, metric), one column per labelled report ("value ± stderr").
std::string side_by_side_markdown(const std::vector<std::pair<std::string, nlohmann::json>>& reports);

}  // namespace dirmoe::eval
