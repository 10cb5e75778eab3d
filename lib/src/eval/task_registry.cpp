#include <algorithm>

#include "dirmoe/core/error.h"
#include "dirmoe/eval/task_readers.h"

namespace dirmoe::eval {

// prompt_version: "lm-eval-harness-<release>:<task yaml>:<its metadata version>+dirmoe.<our rendering>",
// the release being the one pinned in requirements-eval.txt, whose task definitions these follow
// (tests/cli/test_export_harness.sh runs that release against dirmoe-eval item by item).
const std::vector<TaskSpec>& file_task_specs() {
  static const std::vector<TaskSpec> specs = {
      {"arc_easy", "arc_easy.jsonl", "lm-eval-harness-0.4.13:arc_easy:1.0+dirmoe.1",
       "\"Question: {question}\\nAnswer:\" + \" {choices.text[i]}\""},
      {"arc_challenge", "arc_challenge.jsonl", "lm-eval-harness-0.4.13:arc_challenge:1.0+dirmoe.1",
       "\"Question: {question}\\nAnswer:\" + \" {choices.text[i]}\""},
      {"boolq", "boolq.jsonl", "lm-eval-harness-0.4.13:boolq:2.0+dirmoe.1",
       "\"{passage}\\nQuestion: {question}?\\nAnswer:\" + \" no\"|\" yes\""},
      {"hellaswag", "hellaswag.jsonl", "lm-eval-harness-0.4.13:hellaswag:1.0+dirmoe.1",
       "preprocess(\"{activity_label}: {ctx_a} {ctx_b.capitalize()}\") + \" preprocess({endings[i]})\""},
      {"lambada_openai", "lambada_openai.jsonl", "lm-eval-harness-0.4.13:lambada_openai:1.0+dirmoe.1",
       "\"{text without its last ' '-separated word}\" + \" {last word}\""},
      {"piqa", "piqa.jsonl", "lm-eval-harness-0.4.13:piqa:1.0+dirmoe.1",
       "\"Question: {goal}\\nAnswer:\" + \" {sol1}\"|\" {sol2}\""},
      {"race", "race.jsonl", "lm-eval-harness-0.4.13:race:3.0+dirmoe.2",
       "\"Article: {article}\\n\\n\" + earlier problems (\"Question: {q}\\nAnswer: {a}\\n\", or "
       "q[:-5] + a + \"\\n\" for \"  _  .\" cloze questions) + \"{last question}\" + \" {options[i]}\""},
      {"winogrande", "winogrande.jsonl", "lm-eval-harness-0.4.13:winogrande:1.0+dirmoe.1",
       "partial scoring: \"{sentence[:_]}{option_i}\" + \" {sentence[_+1:].strip()}\""},
      {"openbookqa", "openbookqa.jsonl", "lm-eval-harness-0.4.13:openbookqa:1.0+dirmoe.1",
       "\"{question_stem}\" + \" {choices.text[i]}\""},
      {"sciq", "sciq.jsonl", "lm-eval-harness-0.4.13:sciq:1.0+dirmoe.1",
       "\"{support.lstrip()}\\nQuestion: {question}\\nAnswer:\" + \" {distractor1..3 | correct_answer}\""},
  };
  return specs;
}

const TaskSpec* find_task_spec(const std::string& name) {
  const auto& specs = file_task_specs();
  auto it = std::find_if(specs.begin(), specs.end(), [&](const TaskSpec& s) { return s.name == name; });
  return it == specs.end() ? nullptr : &*it;
}

Task load_task_file(const std::string& name, const std::filesystem::path& task_dir) {
  const TaskSpec* spec = find_task_spec(name);
  if (spec == nullptr) {
    std::string known;
    for (const auto& s : file_task_specs()) known += (known.empty() ? "" : ", ") + s.name;
    throw ConfigError("unknown task \"" + name + "\"; known tasks: " + known + ", heldout_cloze, heldout_choice");
  }
  const std::filesystem::path path = task_dir / spec->file_name;
  if (!std::filesystem::exists(path)) {
    throw IoError("task " + name + ": expected its file at " + path.string() + " (the task's native JSONL, named \"" +
                  spec->file_name + "\"; set --task-dir or eval.task_dir to the folder holding it)");
  }
  if (name == "arc_easy" || name == "arc_challenge") return read_arc(name, path);
  if (name == "openbookqa") return read_openbookqa(path);
  if (name == "boolq") return read_boolq(path);
  if (name == "piqa") return read_piqa(path);
  if (name == "sciq") return read_sciq(path);
  if (name == "hellaswag") return read_hellaswag(path);
  if (name == "lambada_openai") return read_lambada(path);
  if (name == "race") return read_race(path);
  return read_winogrande(path);
}

Task make_task(const std::string& name, const std::filesystem::path& source, TaskKind kind, bool report_acc_norm) {
  const TaskSpec* spec = find_task_spec(name);
  Task task;
  task.name = name;
  task.kind = kind;
  task.report_acc_norm = report_acc_norm;
  if (spec != nullptr) {
    task.prompt_version = spec->prompt_version;
    task.prompt_format = spec->prompt_format;
  }
  task.source = source.string();
  return task;
}

TaskDoc make_choice_doc(const std::string& context, const std::vector<std::string>& choices, int64_t gold,
                        const std::string& where) {
  if (choices.empty()) throw DataError(where + ": empty list of choices");
  if (gold < 0 || gold >= static_cast<int64_t>(choices.size())) {
    throw DataError(where + ": label " + std::to_string(gold) + " is outside the " +
                    std::to_string(choices.size()) + " choices");
  }
  TaskDoc doc;
  doc.gold = gold;
  for (const auto& choice : choices) {
    doc.requests.push_back({context, " " + choice});
    doc.choice_chars.push_back(utf8_length(choice));
  }
  return doc;
}

}  // namespace dirmoe::eval
