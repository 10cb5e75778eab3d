// WinoGrande with partial scoring (Trinh & Le 2018, as the harness does): the option fills the
// blank in the context, and the model scores the shared rest of the sentence after the blank.
#include "dirmoe/eval/jsonl.h"
#include "dirmoe/eval/task_readers.h"

namespace dirmoe::eval {

Task read_winogrande(const std::filesystem::path& path) {
  Task task = make_task("winogrande", path, TaskKind::kMultipleChoice, /*report_acc_norm=*/false);
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    const std::string sentence = require_string(record, "sentence", where);
    const std::string option1 = require_string(record, "option1", where);
    const std::string option2 = require_string(record, "option2", where);
    const std::string answer = require_string(record, "answer", where);
    if (answer != "1" && answer != "2") fail_record(where, "field \"answer\" must be \"1\" or \"2\", got \"" + answer + "\"");
    const size_t blank = sentence.find('_');
    if (blank == std::string::npos) fail_record(where, "field \"sentence\" has no \"_\" blank");
    std::string target = sentence.substr(blank + 1);
    const char* ws = " \t\n\r\v\f";
    const size_t first = target.find_first_not_of(ws);
    target = first == std::string::npos ? std::string() : target.substr(first, target.find_last_not_of(ws) - first + 1);
    TaskDoc doc;
    doc.gold = answer == "1" ? 0 : 1;
    doc.doc_id = where.record;
    for (const std::string& option : {option1, option2}) {
      const std::string context = sentence.substr(0, blank) + option;
      doc.requests.push_back({context, " " + target});
      doc.choice_chars.push_back(utf8_length(context));  // doc_to_choice is the partial context
    }
    task.docs.push_back(std::move(doc));
  });
  return task;
}

}  // namespace dirmoe::eval
