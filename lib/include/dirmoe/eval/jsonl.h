#pragma once
// Line-oriented reading of task files (JSONL; a file whose first character is '[' is read as one
// JSON array). Every error is a DataError that names the file and the 1-based line (or the array
// element), so a user can open the file at the offending record.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace dirmoe::eval {

/// Where a record came from, for error messages: "path:line".
struct RecordLocation {
  std::string file;
  int64_t line = 0;  // 1-based line (JSONL) or element index + 1 (JSON array)
  /// 0-based index of the record among the file's records (blank lines skipped): the row number
  /// a dataset loader gives it, lm-eval-harness's doc_id.
  int64_t record = 0;
  std::string str() const { return file + ":" + std::to_string(line); }
};

/// Calls `visit(record, location)` for every non-blank line of `path`. Missing file → IoError;
/// malformed JSON or a non-object line → DataError "path:line: ...".
void for_each_json_record(const std::filesystem::path& path,
                          const std::function<void(const nlohmann::json&, const RecordLocation&)>& visit);

/// Throws DataError "file:line: <message>".
[[noreturn]] void fail_record(const RecordLocation& where, const std::string& message);

/// Field accessors that throw DataError naming the file, line and field.
const nlohmann::json& require_field(const nlohmann::json& record, const std::string& key,
                                    const RecordLocation& where);
std::string require_string(const nlohmann::json& record, const std::string& key, const RecordLocation& where);
/// An integer label given as a JSON number or a string of digits ("1").
int64_t require_int(const nlohmann::json& record, const std::string& key, const RecordLocation& where);
std::vector<std::string> require_string_list(const nlohmann::json& record, const std::string& key,
                                             const RecordLocation& where);

}  // namespace dirmoe::eval
