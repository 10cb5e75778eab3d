#include "dirmoe/eval/jsonl.h"

#include <fstream>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"

namespace dirmoe::eval {

void fail_record(const RecordLocation& where, const std::string& message) {
  throw DataError(where.str() + ": " + message);
}

namespace {

// A record of the wrong shape that a reader's field access trips over (a number where a list was
// expected, ...) is reported at its location like every other bad record.
void visit_checked(const std::function<void(const nlohmann::json&, const RecordLocation&)>& visit,
                   const nlohmann::json& record, const RecordLocation& where) {
  try {
    visit(record, where);
  } catch (const nlohmann::json::exception& e) {
    fail_record(where, std::string("unexpected record layout: ") + e.what());
  }
}

}  // namespace

void for_each_json_record(const std::filesystem::path& path,
                          const std::function<void(const nlohmann::json&, const RecordLocation&)>& visit) {
  const std::string text = read_file(path);  // IoError naming the path if missing
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json array;
    try {
      array = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(path.string() + ": malformed JSON array: " + e.what());
    }
    for (size_t i = 0; i < array.size(); ++i) {
      RecordLocation where{path.string(), static_cast<int64_t>(i + 1), static_cast<int64_t>(i)};
      if (!array[i].is_object()) fail_record(where, "record is not a JSON object");
      visit_checked(visit, array[i], where);
    }
    return;
  }
  size_t begin = 0;
  int64_t line_no = 0;
  int64_t record_index = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      if (end == text.size()) break;
      continue;
    }
    RecordLocation where{path.string(), line_no, record_index++};
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail_record(where, std::string("malformed JSON: ") + e.what());
    }
    if (!record.is_object()) fail_record(where, "record is not a JSON object");
    visit_checked(visit, record, where);
    if (end == text.size()) break;
  }
}

const nlohmann::json& require_field(const nlohmann::json& record, const std::string& key,
                                    const RecordLocation& where) {
  auto it = record.find(key);
  if (it == record.end() || it->is_null()) fail_record(where, "missing field \"" + key + "\"");
  return *it;
}

std::string require_string(const nlohmann::json& record, const std::string& key, const RecordLocation& where) {
  const auto& value = require_field(record, key, where);
  if (!value.is_string()) fail_record(where, "field \"" + key + "\" must be a string, got " + value.dump());
  return value.get<std::string>();
}

int64_t require_int(const nlohmann::json& record, const std::string& key, const RecordLocation& where) {
  const auto& value = require_field(record, key, where);
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_string()) {
    const std::string s = value.get<std::string>();
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 10) {
      return std::stoll(s);
    }
  }
  fail_record(where, "field \"" + key + "\" must be an integer label, got " + value.dump());
}

std::vector<std::string> require_string_list(const nlohmann::json& record, const std::string& key,
                                             const RecordLocation& where) {
  const auto& value = require_field(record, key, where);
  if (!value.is_array()) fail_record(where, "field \"" + key + "\" must be a list of strings");
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) fail_record(where, "field \"" + key + "\" must be a list of strings, got " + item.dump());
    out.push_back(item.get<std::string>());
  }
  if (out.empty()) fail_record(where, "field \"" + key + "\" is an empty list of choices");
  return out;
}

}  // namespace dirmoe::eval
