// HellaSwag with the harness's clean-up of WikiHow artefacts.
#include <cctype>

#include "dirmoe/eval/jsonl.h"
#include "dirmoe/eval/task_readers.h"

namespace dirmoe::eval {
namespace {

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t hit = text.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(text, pos, hit - pos);
    out += to;
    pos = hit + from.size();  // non-overlapping, left to right (Python's str.replace)
  }
  out.append(text, pos, std::string::npos);
  return out;
}

}  // namespace

std::string python_capitalize(const std::string& text) {
  std::string out = text;
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    if (c >= 0x80) continue;  // NOTE: non-ASCII letters are left as they are
    out[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return out;
}

std::string hellaswag_preprocess(const std::string& text) {
  const char* ws = " \t\n\r\v\f";
  const size_t first = text.find_first_not_of(ws);
  std::string s = first == std::string::npos ? std::string() : text.substr(first, text.find_last_not_of(ws) - first + 1);
  s = replace_all(s, " [title]", ". ");
  // Remove "[...]": at each '[' the shortest run up to the next ']' without a newline in between.
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '[') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != ']' && s[j] != '\n') ++j;
      if (j < s.size() && s[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return replace_all(out, "  ", " ");
}

Task read_hellaswag(const std::filesystem::path& path) {
  Task task = make_task("hellaswag", path, TaskKind::kMultipleChoice, /*report_acc_norm=*/true);
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    const std::string ctx = require_string(record, "ctx_a", where) + " " +
                            python_capitalize(require_string(record, "ctx_b", where));
    const std::string query = hellaswag_preprocess(require_string(record, "activity_label", where) + ": " + ctx);
    std::vector<std::string> endings = require_string_list(record, "endings", where);
    for (auto& ending : endings) ending = hellaswag_preprocess(ending);
    const int64_t gold = require_int(record, "label", where);
    task.docs.push_back(make_choice_doc(query, endings, gold, where.str()));
    task.docs.back().doc_id = where.record;
  });
  return task;
}

}  // namespace dirmoe::eval
