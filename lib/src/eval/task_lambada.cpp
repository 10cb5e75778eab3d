// LAMBADA (OpenAI's detokenised test set): predict the last word of a passage.
#include "dirmoe/eval/jsonl.h"
#include "dirmoe/eval/task_readers.h"

namespace dirmoe::eval {

Task read_lambada(const std::filesystem::path& path) {
  Task task = make_task("lambada_openai", path, TaskKind::kLogLikelihood, /*report_acc_norm=*/false);
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    const std::string text = require_string(record, "text", where);
    if (text.empty()) fail_record(where, "field \"text\" is empty");
    // text.split(' '): the context is every piece but the last joined by ' ', the target " " + last.
    const size_t last_space = text.rfind(' ');
    TaskDoc doc;
    if (last_space == std::string::npos) {
      doc.requests.push_back({"", " " + text});
    } else {
      doc.requests.push_back({text.substr(0, last_space), " " + text.substr(last_space + 1)});
    }
    doc.choice_chars.push_back(utf8_length(doc.requests[0].continuation));
    doc.gold = 0;
    doc.doc_id = where.record;
    task.docs.push_back(std::move(doc));
  });
  return task;
}

}  // namespace dirmoe::eval
