#include "dirmoe/eval/task_evaluator.h"

#include <cmath>

#include "dirmoe/core/error.h"

namespace dirmoe::eval {
namespace {

double mean(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

int64_t first_argmax(const std::vector<double>& v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[best]) best = static_cast<int64_t>(i);
  }
  return best;
}

}  // namespace

double mean_stderr(const std::vector<double>& values) {
  const size_t n = values.size();
  if (n < 2) return 0.0;
  const double mu = mean(values);
  double ss = 0.0;
  for (double x : values) ss += (x - mu) * (x - mu);
  return std::sqrt(ss / static_cast<double>(n - 1)) / std::sqrt(static_cast<double>(n));
}

TaskResult aggregate_task(const Task& task, const std::vector<std::vector<LogLikelihood>>& lls) {
  TaskResult result;
  result.name = task.name;
  result.prompt_version = task.prompt_version;
  result.prompt_format = task.prompt_format;
  result.source = task.source;
  result.n = static_cast<int64_t>(lls.size());
  std::vector<double> acc, acc_norm, ll;
  for (size_t d = 0; d < lls.size(); ++d) {
    const TaskDoc& doc = task.docs[d];
    std::vector<double> sums;
    for (const auto& r : lls[d]) sums.push_back(r.sum);
    result.n_requests += static_cast<int64_t>(sums.size());
    result.loglikelihoods.push_back(sums);
    std::vector<bool> greedy;
    for (const auto& r : lls[d]) greedy.push_back(r.is_greedy);
    result.is_greedy.push_back(greedy);
    if (task.kind == TaskKind::kLogLikelihood) {
      acc.push_back(lls[d].at(0).is_greedy ? 1.0 : 0.0);
      ll.push_back(sums.at(0));
      result.predictions.push_back(0);
      continue;
    }
    const int64_t pred = first_argmax(sums);
    result.predictions.push_back(pred);
    acc.push_back(pred == doc.gold ? 1.0 : 0.0);
    std::vector<double> normed;
    for (size_t i = 0; i < sums.size(); ++i) {
      normed.push_back(sums[i] / static_cast<double>(doc.choice_chars.at(i)));
    }
    acc_norm.push_back(first_argmax(normed) == doc.gold ? 1.0 : 0.0);
  }
  result.doc_acc = acc;
  if (task.kind == TaskKind::kMultipleChoice && task.report_acc_norm) result.doc_acc_norm = acc_norm;
  result.metrics["acc"] = {mean(acc), mean_stderr(acc)};
  if (task.kind == TaskKind::kLogLikelihood) {
    const double ppl = std::exp(-mean(ll));
    result.metrics["perplexity"] = {ppl, ppl * mean_stderr(ll)};
  } else if (task.report_acc_norm) {
    result.metrics["acc_norm"] = {mean(acc_norm), mean_stderr(acc_norm)};
  }
  return result;
}

TaskResult evaluate_task(const Task& task, const TextEncoder& encoder, LogLikelihoodScorer& scorer,
                         int64_t max_docs) {
  const size_t n_docs = max_docs > 0 ? std::min<size_t>(task.docs.size(), static_cast<size_t>(max_docs))
                                     : task.docs.size();
  if (n_docs == 0) throw DataError("task " + task.name + ": no documents in " + task.source);
  std::vector<TokenizedRequest> requests;
  for (size_t d = 0; d < n_docs; ++d) {
    for (const auto& r : task.docs[d].requests) requests.push_back(encode_request(encoder, r));
  }
  const std::vector<LogLikelihood> flat = scorer.score(requests);
  if (flat.size() != requests.size()) throw Error("eval: scorer returned a wrong number of results");
  std::vector<std::vector<LogLikelihood>> per_doc(n_docs);
  size_t k = 0;
  for (size_t d = 0; d < n_docs; ++d) {
    for (size_t i = 0; i < task.docs[d].requests.size(); ++i) per_doc[d].push_back(flat[k++]);
  }
  return aggregate_task(task, per_doc);
}

}  // namespace dirmoe::eval
