// RACE (high): one document per article, as the harness collates it. The context is the article
// followed by every earlier question of the article with its answer; the model answers the last
// question.
#include <map>

#include "dirmoe/eval/jsonl.h"
#include "dirmoe/eval/task_readers.h"

namespace dirmoe::eval {
namespace {

struct Problem {
  std::string question;
  std::vector<std::string> options;
  std::string answer;  // "A".."D"
};

// ---- a small reader of Python literals (the EleutherAI/race export stores `problems` as the
// repr() of a list of dicts): dicts, lists, quoted strings with escapes, numbers, True/False/None.
class PyLiteralParser {
 public:
  PyLiteralParser(const std::string& text, const RecordLocation& where) : s_(text), where_(where) {}

  nlohmann::json parse() {
    nlohmann::json value = parse_value();
    skip_ws();
    if (pos_ != s_.size()) error("trailing characters");
    return value;
  }

 private:
  [[noreturn]] void error(const std::string& what) {
    fail_record(where_, "field \"problems\" is not a valid Python literal (" + what + " at offset " +
                            std::to_string(pos_) + ")");
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool consume(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex(size_t n) {
    if (pos_ + n > s_.size()) error("short escape");
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else error("bad hex escape");
    }
    return v;
  }
  std::string parse_string() {
    const char quote = s_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) error("unterminated string");
      const char c = s_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'x': append_utf8(out, hex(2)); break;
        case 'u': append_utf8(out, hex(4)); break;
        case 'U': append_utf8(out, hex(8)); break;
        default: out += '\\'; out += e;  // Python keeps unknown escapes verbatim
      }
    }
    return out;
  }
  nlohmann::json parse_value() {
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end");
    const char c = s_[pos_];
    if (c == '\'' || c == '"') return parse_string();
    if (c == '[' || c == '(') {
      const char close = c == '[' ? ']' : ')';
      ++pos_;
      nlohmann::json list = nlohmann::json::array();
      if (consume(close)) return list;
      do {
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == close) break;  // trailing comma
        list.push_back(parse_value());
      } while (consume(','));
      if (!consume(close)) error("expected closing bracket");
      return list;
    }
    if (c == '{') {
      ++pos_;
      nlohmann::json dict = nlohmann::json::object();
      if (consume('}')) return dict;
      do {
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == '}') break;
        nlohmann::json key = parse_value();
        if (!key.is_string()) error("dict key is not a string");
        if (!consume(':')) error("expected ':'");
        dict[key.get<std::string>()] = parse_value();
      } while (consume(','));
      if (!consume('}')) error("expected '}'");
      return dict;
    }
    for (const auto& [word, value] : std::vector<std::pair<std::string, nlohmann::json>>{
             {"True", true}, {"False", false}, {"None", nullptr}}) {
      if (s_.compare(pos_, word.size(), word) == 0) {
        pos_ += word.size();
        return value;
      }
    }
    size_t end = pos_;
    while (end < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[end])) || s_[end] == '-' ||
                               s_[end] == '.' || s_[end] == 'e' || s_[end] == 'E' || s_[end] == '+')) {
      ++end;
    }
    if (end == pos_) error("unexpected character");
    const std::string number = s_.substr(pos_, end - pos_);
    pos_ = end;
    try {
      return nlohmann::json::parse(number);
    } catch (const nlohmann::json::exception&) {
      error("bad number");
    }
  }

  const std::string& s_;
  const RecordLocation& where_;
  size_t pos_ = 0;
};

Problem read_problem(const nlohmann::json& p, const RecordLocation& where) {
  if (!p.is_object()) fail_record(where, "each problem must be an object {question, options, answer}");
  Problem problem;
  problem.question = require_string(p, "question", where);
  problem.options = require_string_list(p, "options", where);
  problem.answer = require_string(p, "answer", where);
  return problem;
}

int64_t answer_letter_index(const Problem& p, const RecordLocation& where) {
  if (p.answer.size() != 1 || p.answer[0] < 'A' || p.answer[0] > 'D') {
    fail_record(where, "answer \"" + p.answer + "\" is not one of A, B, C, D");
  }
  const int64_t index = p.answer[0] - 'A';
  if (index >= static_cast<int64_t>(p.options.size())) {
    fail_record(where, "answer \"" + p.answer + "\" is outside the " + std::to_string(p.options.size()) + " options");
  }
  return index;
}

TaskDoc race_doc(const std::string& article, const std::vector<Problem>& problems, const RecordLocation& where) {
  if (problems.empty()) fail_record(where, "article has no problems");
  std::string text = "Article: " + article + "\n\n";
  for (size_t i = 0; i + 1 < problems.size(); ++i) {
    const Problem& p = problems[i];
    const std::string answer = p.options[answer_letter_index(p, where)];
    const std::string& q = p.question;
    // A cloze question ending in "  _  ." is filled in place: q[:-5] (the question up to the blank
    // and one space) + the answer, as the harness's RACE v3.0 does (v2.0 appended q[-5:]).
    if (q.size() >= 6 && q.compare(q.size() - 6, 6, "  _  .") == 0) {
      text += q.substr(0, q.size() - 5) + answer + "\n";
    } else {
      text += "Question: " + q + "\n" + "Answer: " + answer + "\n";
    }
  }
  const Problem& last = problems.back();
  if (last.options.size() < 4) fail_record(where, "the last problem has fewer than 4 options");
  text += last.question;
  std::vector<std::string> choices(last.options.begin(), last.options.begin() + 4);
  TaskDoc doc = make_choice_doc(text, choices, answer_letter_index(last, where), where.str());
  doc.doc_id = where.record;
  return doc;
}

}  // namespace

Task read_race(const std::filesystem::path& path) {
  Task task = make_task("race", path, TaskKind::kMultipleChoice, /*report_acc_norm=*/false);
  // Per-question rows are collated by article in order of first appearance.
  std::vector<std::string> row_articles;
  std::map<std::string, std::pair<std::vector<Problem>, RecordLocation>> rows_by_article;
  std::map<std::string, int64_t> first_record;  // an article's doc_id is its first row's
  for_each_json_record(path, [&](const nlohmann::json& record, const RecordLocation& where) {
    const std::string article = require_string(record, "article", where);
    std::vector<Problem> problems;
    if (record.contains("problems")) {
      nlohmann::json list = record["problems"];
      if (list.is_string()) list = PyLiteralParser(list.get<std::string>(), where).parse();
      if (!list.is_array()) fail_record(where, "field \"problems\" must be a list");
      for (const auto& p : list) problems.push_back(read_problem(p, where));
    } else if (record.contains("questions")) {
      const auto& questions = require_field(record, "questions", where);
      const auto& options = require_field(record, "options", where);
      const auto& answers = require_field(record, "answers", where);
      if (!questions.is_array() || !options.is_array() || !answers.is_array() ||
          questions.size() != options.size() || questions.size() != answers.size()) {
        fail_record(where, "\"questions\", \"options\" and \"answers\" must be lists of equal length");
      }
      for (size_t i = 0; i < questions.size(); ++i) {
        problems.push_back(read_problem({{"question", questions[i]}, {"options", options[i]}, {"answer", answers[i]}},
                                        where));
      }
    } else {
      Problem p = read_problem(record, where);
      auto [it, inserted] = rows_by_article.try_emplace(article, std::vector<Problem>{}, where);
      if (inserted) {
        row_articles.push_back(article);
        first_record[article] = where.record;
      }
      it->second.first.push_back(std::move(p));
      it->second.second = where;
      return;
    }
    task.docs.push_back(race_doc(article, problems, where));
  });
  for (const auto& article : row_articles) {
    const auto& [problems, where] = rows_by_article.at(article);
    task.docs.push_back(race_doc(article, problems, where));
    task.docs.back().doc_id = first_record.at(article);
  }
  return task;
}

}  // namespace dirmoe::eval
