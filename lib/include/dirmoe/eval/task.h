#pragma once
// A zero-shot task as lm-eval-harness poses it: each document is a set of (context, continuation)
// requests scored by log-likelihood. Multiple choice: one request per choice, the prediction is
// the argmax (acc) or the argmax of LL / len(choice) in characters (acc_norm). Log-likelihood
// tasks (LAMBADA): one request per document, acc = the continuation is the greedy decode.
#include <cstdint>
#include <string>
#include <vector>

namespace dirmoe::eval {

/// One scoring request: log p(continuation | context). Strings exactly as the harness builds them
/// (the continuation carries its target delimiter, e.g. " yes").
struct Request {
  std::string context;
  std::string continuation;
};

/// One document of a task.
struct TaskDoc {
  std::vector<Request> requests;  // one per choice (multiple choice) or exactly one (log-likelihood)
  /// Per choice, len(choice) in Unicode code points WITHOUT the target delimiter: the harness's
  /// acc_norm divisor (`len(choice)` of doc_to_choice's strings).
  std::vector<int64_t> choice_chars;
  int64_t gold = 0;  // index of the correct request
  /// Where the document came from: the 0-based index of its record in the task file (the harness's
  /// doc_id), or its index among generated documents (built-in tasks).
  int64_t doc_id = 0;
};

enum class TaskKind {
  kMultipleChoice,  // acc (and acc_norm where the harness reports it)
  kLogLikelihood,   // LAMBADA-style: acc = greedy match, perplexity = exp(−mean LL)
};

/// A loaded task, ready to score.
struct Task {
  std::string name;            // e.g. "arc_easy"
  TaskKind kind = TaskKind::kMultipleChoice;
  bool report_acc_norm = true; // the harness lists acc_norm for this task
  /// Identifies the prompt format, e.g. "lm-eval-harness-0.4.13:arc_easy:1.0+dirmoe.1"; changes whenever our
  /// rendering of the prompt changes, so results carry what they were scored with.
  std::string prompt_version;
  std::string prompt_format;   // human-readable template, e.g. "Question: {question}\nAnswer:| {choice}"
  std::string source;          // the file (or split) the documents came from
  std::vector<TaskDoc> docs;
};

/// Number of Unicode code points of a UTF-8 string (Python's len()); invalid bytes count as one.
int64_t utf8_length(const std::string& text);

}  // namespace dirmoe::eval
