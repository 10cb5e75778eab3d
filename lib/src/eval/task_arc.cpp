// ARC-Easy, ARC-Challenge and OpenBookQA share one record shape: a question with lettered (or
// numbered) choices and an answerKey naming the correct label.
#include "dirmoe/eval/jsonl.h"
#include "dirmoe/eval/task_readers.h"

namespace dirmoe::eval {
namespace {

struct LabelledQuestion {
  std::string stem;
  std::vector<std::string> texts;
  std::vector<std::string> labels;
};

// Reads the Hugging Face layout {<stem_key>: str, choices: {text, label}} or the original
// {question: {stem, choices: [{text, label}]}}.
LabelledQuestion read_labelled_question(const nlohmann::json& record, const std::string& stem_key,
                                        const RecordLocation& where) {
  LabelledQuestion q;
  const nlohmann::json* choices = nullptr;
  if (record.contains("question") && record["question"].is_object()) {
    const auto& question = record["question"];
    q.stem = require_string(question, "stem", where);
    choices = &require_field(question, "choices", where);
  } else {
    q.stem = require_string(record, stem_key, where);
    choices = &require_field(record, "choices", where);
  }
  if (choices->is_object()) {
    q.texts = require_string_list(*choices, "text", where);
    q.labels = require_string_list(*choices, "label", where);
  } else if (choices->is_array()) {
    for (const auto& choice : *choices) {
      if (!choice.is_object()) fail_record(where, "each choice must be an object {text, label}");
      q.texts.push_back(require_string(choice, "text", where));
      q.labels.push_back(require_string(choice, "label", where));
    }
  } else {
    fail_record(where, "field \"choices\" must be {text: [...], label: [...]} or a list of {text, label}");
  }
  if (q.texts.empty()) fail_record(where, "empty list of choices");
  if (q.texts.size() != q.labels.size()) fail_record(where, "choices have different numbers of texts and labels");
  return q;
}

int64_t answer_index(const LabelledQuestion& q, std::string key, const RecordLocation& where) {
  key.erase(0, key.find_first_not_of(" \t\n\r"));  // answerKey.lstrip() as the OpenBookQA task does
  for (size_t i = 0; i < q.labels.size(); ++i) {
    if (q.labels[i] == key) return static_cast<int64_t>(i);
  }
  std::string labels;
  for (const auto& l : q.labels) labels += (labels.empty() ? "" : ",") + l;
  fail_record(where, "answerKey \"" + key + "\" is not one of the choice labels [" + labels + "]");
}

}  // namespace

Task read_arc(const std::string& name, const std::filesystem::path& path) {
  Task task = make_task(name, path, TaskKind::kMultipleChoice, /*report_acc_norm=*/true);
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    LabelledQuestion q = read_labelled_question(record, "question", where);
    const int64_t gold = answer_index(q, require_string(record, "answerKey", where), where);
    task.docs.push_back(make_choice_doc("Question: " + q.stem + "\nAnswer:", q.texts, gold, where.str()));
    task.docs.back().doc_id = where.record;
  });
  return task;
}

Task read_openbookqa(const std::filesystem::path& path) {
  Task task = make_task("openbookqa", path, TaskKind::kMultipleChoice, /*report_acc_norm=*/true);
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    LabelledQuestion q = read_labelled_question(record, "question_stem", where);
    const int64_t gold = answer_index(q, require_string(record, "answerKey", where), where);
    task.docs.push_back(make_choice_doc(q.stem, q.texts, gold, where.str()));
    task.docs.back().doc_id = where.record;
  });
  return task;
}

}  // namespace dirmoe::eval
