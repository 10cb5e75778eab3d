#include "dirmoe/eval/sample_log.h"

#include "dirmoe/core/error.h"

namespace dirmoe::eval {

nlohmann::json sample_record(const Task& task, const TaskResult& result, size_t d) {
  if (d >= result.loglikelihoods.size() || d >= task.docs.size()) {
    throw Error("sample log: document " + std::to_string(d) + " of task " + task.name + " was not scored");
  }
  const TaskDoc& doc = task.docs[d];
  nlohmann::json contexts = nlohmann::json::array();
  nlohmann::json continuations = nlohmann::json::array();
  bool one_context = true;
  for (const Request& r : doc.requests) {
    contexts.push_back(r.context);
    continuations.push_back(r.continuation);
    one_context = one_context && r.context == doc.requests.front().context;
  }
  nlohmann::json j;
  j["task"] = task.name;
  j["doc_id"] = doc.doc_id;
  j["context"] = one_context ? contexts.at(0) : contexts;
  j["continuations"] = continuations;
  j["loglikelihoods"] = result.loglikelihoods[d];
  j["is_greedy"] = result.is_greedy.at(d);
  j["target"] = doc.gold;
  j["acc"] = result.doc_acc.at(d);
  if (!result.doc_acc_norm.empty()) j["acc_norm"] = result.doc_acc_norm.at(d);
  return j;
}

std::string sample_log_jsonl(const Task& task, const TaskResult& result) {
  std::string out;
  for (size_t d = 0; d < result.loglikelihoods.size(); ++d) out += sample_record(task, result, d).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return out;
}

}  // namespace dirmoe::eval
