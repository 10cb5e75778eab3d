#pragma once
// Scores a Task and aggregates its metrics as lm-eval-harness does:
//   acc      = mean over documents of [argmax_i LL_i == gold]            (first maximum wins)
//   acc_norm = mean of [argmax_i LL_i / len(choice_i) == gold], len in characters
//   stderr   = sample standard deviation (n−1) / √n of the per-document values
//   LAMBADA-style tasks: acc = mean [continuation is the greedy decode],
//                        perplexity = exp(−mean LL); its stderr by the delta method
//                        perplexity · stderr(LL) (the harness bootstraps it instead).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dirmoe/eval/loglikelihood_scorer.h"
#include "dirmoe/eval/task.h"

namespace dirmoe::eval {

struct MetricValue {
  double value = 0.0;
  double std_error = 0.0;
};

struct TaskResult {
  std::string name;
  std::string prompt_version;
  std::string prompt_format;
  std::string source;
  int64_t n = 0;                                 // documents scored
  std::map<std::string, MetricValue> metrics;    // "acc", "acc_norm", "perplexity"
  int64_t n_requests = 0;
  /// Per document, the summed log-likelihood of each request (for reference checks and debugging).
  std::vector<std::vector<double>> loglikelihoods;
  std::vector<int64_t> predictions;              // argmax of LL per document (multiple choice)
  /// Per document and request: every continuation token is the argmax.
  std::vector<std::vector<bool>> is_greedy;
  /// Per document, its contribution to "acc" and "acc_norm" (0 or 1; acc_norm empty when the task
  /// does not report it).
  std::vector<double> doc_acc, doc_acc_norm;
};

/// Sample std (n−1) / √n; 0 for fewer than two values.
double mean_stderr(const std::vector<double>& values);

/// Aggregates already computed log-likelihoods (`lls[d]` one per request of doc d) into metrics.
TaskResult aggregate_task(const Task& task, const std::vector<std::vector<LogLikelihood>>& lls);

/// Encodes every request of the first `max_docs` documents (0: all), scores them in one call to
/// `scorer` (so it can batch across documents) and aggregates.
TaskResult evaluate_task(const Task& task, const TextEncoder& encoder, LogLikelihoodScorer& scorer,
                         int64_t max_docs = 0);

}  // namespace dirmoe::eval
