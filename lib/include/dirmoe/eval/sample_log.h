#pragma once
// Per-item records of an evaluation (`dirmoe-eval --log-samples FILE.jsonl`), one JSON line per
// scored document, so any item can be traced and compared with lm-eval-harness's own sample log:
//   task            our task name
//   doc_id          0-based index of the document's record in the task file (the harness's doc_id)
//   context         the context string; for tasks whose contexts differ per choice (WinoGrande's
//                   partial scoring) the list of contexts, one per continuation
//   continuations   the continuation strings, target delimiter included (" yes")
//   loglikelihoods  Σ log p(continuation | context), one per continuation
//   is_greedy       every continuation token is the argmax, one per continuation
//   target          index of the gold continuation
//   acc, acc_norm   this item's 0/1 contribution (acc_norm only where the task reports it)
#include <cstddef>

#include <nlohmann/json.hpp>

#include "dirmoe/eval/task.h"
#include "dirmoe/eval/task_evaluator.h"

namespace dirmoe::eval {

/// The record of document `d` of `task`, scored in `result` (aggregate_task / evaluate_task).
nlohmann::json sample_record(const Task& task, const TaskResult& result, size_t d);

/// Every scored document of `task` as JSONL (one record per line, '\n'-terminated).
std::string sample_log_jsonl(const Task& task, const TaskResult& result);

}  // namespace dirmoe::eval
