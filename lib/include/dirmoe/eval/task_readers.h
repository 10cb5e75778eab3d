#pragma once
// Readers for each zero-shot task's native JSONL, rendering prompts exactly as lm-eval-harness's
// task definitions do (zero-shot, default target delimiter " "). Each reader validates every
// record and throws DataError "file:line: ..." for a missing field, an out-of-range label, empty
// choices or malformed JSON.
//
// Accepted layouts (both the dataset's original release and the Hugging Face export):
//   arc_easy / arc_challenge  {question: str, choices: {text: [..], label: [..]}, answerKey}
//                             or {question: {stem, choices: [{text, label}]}, answerKey}
//   boolq                     {passage, question, label: 0|1}  or  {passage, question, answer: bool}
//   hellaswag                 {activity_label, ctx_a, ctx_b, endings: [4], label}
//   lambada_openai            {text}
//   piqa                      {goal, sol1, sol2, label}  (label may instead come from a sibling
//                             "<stem>-labels.lst", the original release's layout)
//   race                      {article, problems: [{question, options: [4], answer: "A".."D"}]}
//                             (problems may be a JSON list or the Python-literal string of the
//                             EleutherAI/race export), or {article, questions, options, answers}
//                             (original per-article files), or one row per question
//                             {article, question, options, answer} grouped by article
//   winogrande                {sentence with one "_", option1, option2, answer: "1"|"2"}
//   openbookqa                {question_stem, choices: {text, label}, answerKey}
//                             or {question: {stem, choices: [{text, label}]}, answerKey}
//   sciq                      {question, distractor1..3, correct_answer, support}
#include <filesystem>
#include <string>
#include <vector>

#include "dirmoe/eval/task.h"

namespace dirmoe::eval {

/// A file-based task: its name, expected file in --task-dir, and prompt identity.
struct TaskSpec {
  std::string name;
  std::string file_name;
  std::string prompt_version;
  std::string prompt_format;
};

/// The tasks read from users' files, in a stable order.
const std::vector<TaskSpec>& file_task_specs();
/// nullptr if `name` is not a file-based task.
const TaskSpec* find_task_spec(const std::string& name);

/// Loads `name` from `task_dir/<file_name>`. A missing file throws IoError naming the expected
/// file; an unknown task name throws ConfigError listing the known ones.
Task load_task_file(const std::string& name, const std::filesystem::path& task_dir);

// Per-task readers (path → Task with name, prompt identity, source and docs filled in).
Task read_arc(const std::string& name, const std::filesystem::path& path);  // arc_easy | arc_challenge
Task read_openbookqa(const std::filesystem::path& path);
Task read_boolq(const std::filesystem::path& path);
Task read_piqa(const std::filesystem::path& path);
Task read_sciq(const std::filesystem::path& path);
Task read_hellaswag(const std::filesystem::path& path);
Task read_lambada(const std::filesystem::path& path);
Task read_race(const std::filesystem::path& path);
Task read_winogrande(const std::filesystem::path& path);

/// HellaSwag's text clean-up (harness utils.preprocess): strip; " [title]" → ". "; drop every
/// "[...]" (shortest match, not across newlines); one pass of "  " → " ".
std::string hellaswag_preprocess(const std::string& text);
/// Python's str.capitalize() for ASCII letters (first upper, rest lower); other bytes unchanged.
std::string python_capitalize(const std::string& text);

/// An empty task named `name` with its spec's prompt identity and `source` filled in.
Task make_task(const std::string& name, const std::filesystem::path& source, TaskKind kind, bool report_acc_norm);

/// Builds a multiple-choice document: context + " " + choice for each choice. Throws DataError at
/// `where` for empty choices or a gold index outside [0, choices).
TaskDoc make_choice_doc(const std::string& context, const std::vector<std::string>& choices, int64_t gold,
                        const std::string& where);

}  // namespace dirmoe::eval
