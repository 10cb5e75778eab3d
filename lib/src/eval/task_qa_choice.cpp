// BoolQ, PIQA and SciQ: fixed-template questions with a small fixed set of answers.
#include <fstream>

#include "dirmoe/core/error.h"
#include "dirmoe/eval/jsonl.h"
#include "dirmoe/eval/task_readers.h"

namespace dirmoe::eval {
namespace {

std::string python_lstrip(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t\n\r\v\f");
  return first == std::string::npos ? std::string() : s.substr(first);
}

}  // namespace

Task read_boolq(const std::filesystem::path& path) {
  Task task = make_task("boolq", path, TaskKind::kMultipleChoice, /*report_acc_norm=*/false);
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    const std::string passage = require_string(record, "passage", where);
    const std::string question = require_string(record, "question", where);
    int64_t gold = 0;
    if (record.contains("label")) {
      gold = require_int(record, "label", where);
    } else if (record.contains("answer") && record["answer"].is_boolean()) {
      gold = record["answer"].get<bool>() ? 1 : 0;  // original release: answer true/false
    } else {
      fail_record(where, "missing field \"label\" (0 = no, 1 = yes) or boolean \"answer\"");
    }
    task.docs.push_back(
        make_choice_doc(passage + "\nQuestion: " + question + "?\nAnswer:", {"no", "yes"}, gold, where.str()));
    task.docs.back().doc_id = where.record;
  });
  return task;
}

Task read_piqa(const std::filesystem::path& path) {
  Task task = make_task("piqa", path, TaskKind::kMultipleChoice, /*report_acc_norm=*/true);
  // The original release keeps labels in "<stem>-labels.lst", one per line.
  std::vector<int64_t> side_labels;
  const auto labels_path = path.parent_path() / (path.stem().string() + "-labels.lst");
  if (std::filesystem::exists(labels_path)) {
    std::ifstream in(labels_path);
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        side_labels.push_back(std::stoll(line));
      } catch (const std::exception&) {
        throw DataError(labels_path.string() + ":" + std::to_string(line_no) + ": label is not an integer");
      }
    }
  }
  int64_t index = 0;
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    const std::string goal = require_string(record, "goal", where);
    const std::string sol1 = require_string(record, "sol1", where);
    const std::string sol2 = require_string(record, "sol2", where);
    int64_t gold = 0;
    if (record.contains("label")) {
      gold = require_int(record, "label", where);
    } else if (index < static_cast<int64_t>(side_labels.size())) {
      gold = side_labels[index];
    } else {
      fail_record(where, "missing field \"label\" (and no label in " + labels_path.string() + ")");
    }
    ++index;
    task.docs.push_back(make_choice_doc("Question: " + goal + "\nAnswer:", {sol1, sol2}, gold, where.str()));
    task.docs.back().doc_id = where.record;
  });
  return task;
}

Task read_sciq(const std::filesystem::path& path) {
  Task task = make_task("sciq", path, TaskKind::kMultipleChoice, /*report_acc_norm=*/true);
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    const std::string support = require_string(record, "support", where);
    const std::string question = require_string(record, "question", where);
    std::vector<std::string> choices = {require_string(record, "distractor1", where),
                                        require_string(record, "distractor2", where),
                                        require_string(record, "distractor3", where),
                                        require_string(record, "correct_answer", where)};
    task.docs.push_back(make_choice_doc(python_lstrip(support) + "\nQuestion: " + question + "\nAnswer:", choices,
                                        /*gold=*/3, where.str()));
    task.docs.back().doc_id = where.record;
  });
  return task;
}

}  // namespace dirmoe::eval
