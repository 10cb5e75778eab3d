#include "dirmoe/data/document_source.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "dirmoe/core/error.h"
#include "dirmoe/data/byte_reader.h"
#include "dirmoe/data/default_corpus.h"
#include "dirmoe/data/utf8.h"

namespace dirmoe::data {
namespace fs = std::filesystem;

nlohmann::json SourceStats::to_json() const {
  nlohmann::json j;
  j["spec"] = spec;
  j["kind"] = kind;
  if (!packages.empty()) {
    nlohmann::json pk = nlohmann::json::array();
    for (const auto& [name, version] : packages) pk.push_back({{"package", name}, {"version", version}});
    j["packages"] = pk;
  }
  nlohmann::json d = nlohmann::json::object();
  for (const auto& [name, c] : domains) {
    d[name] = {{"files", c.files}, {"documents", c.documents}, {"bytes", c.bytes}};
  }
  j["domains"] = d;
  j["empty_documents_skipped"] = empty_skipped;
  j["invalid_utf8_documents"] = invalid_utf8_documents;
  j["invalid_utf8_sequences_replaced"] = replaced_sequences;
  j["documents_capped"] = capped;
  return j;
}

DocumentCollector::DocumentCollector(const SourceOptions& options, SourceStats& stats, DocumentSink sink)
    : options_(options), stats_(stats), sink_(std::move(sink)) {}

bool DocumentCollector::full(const std::string& domain) const {
  if (options_.max_docs_per_domain <= 0) return false;
  auto it = kept_.find(domain);
  return it != kept_.end() && it->second >= options_.max_docs_per_domain;
}

void DocumentCollector::count_file(const std::string& domain) { stats_.domains[domain].files++; }

void DocumentCollector::add(std::string text, const std::string& domain) {
  if (domain.empty()) throw DataError(fmt::format("{}: a document has an empty domain label", stats_.spec));
  const bool blank = std::all_of(text.begin(), text.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
  if (blank) {
    stats_.empty_skipped++;
    return;
  }
  if (full(domain)) {
    stats_.capped++;
    return;
  }
  const int64_t replaced = sanitize_utf8(text);
  if (replaced > 0) {
    stats_.invalid_utf8_documents++;
    stats_.replaced_sequences += replaced;
  }
  auto& c = stats_.domains[domain];
  c.documents++;
  c.bytes += static_cast<int64_t>(text.size());
  kept_[domain]++;
  sink_(Document{std::move(text), domain});
}

bool is_jsonl_path(const std::string& path) {
  auto ends = [&](const std::string& s) { return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0; };
  for (const char* base : {".jsonl", ".json", ".ndjson"}) {
    for (const char* comp : {"", ".gz", ".zst", ".zstd"}) {
      if (ends(std::string(base) + comp)) return true;
    }
  }
  return false;
}

namespace {

std::string stem_of(const fs::path& p) {
  std::string name = p.filename().string();
  const auto dot = name.find('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

void read_jsonl(const fs::path& path, const std::string& default_domain, DocumentCollector& out) {
  ByteReader reader(path);
  std::string line;
  int64_t line_no = 0;
  std::set<std::string> seen_domains;
  while (reader.read_line(line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (std::all_of(line.begin(), line.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) continue;
    // NOTE: clean the raw line first: the JSON parser rejects ill-formed UTF-8 outright, while a
    // stray byte in a web export is something to replace and count, not a reason to stop.
    std::string cleaned = line;
    const int64_t replaced = sanitize_utf8(cleaned);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(cleaned);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(fmt::format("{}:{}: malformed JSON ({})", path.string(), line_no, e.what()));
    }
    if (!j.is_object()) throw DataError(fmt::format("{}:{}: expected a JSON object per line", path.string(), line_no));
    auto t = j.find("text");
    if (t == j.end() || !t->is_string()) {
      throw DataError(fmt::format("{}:{}: missing string field \"text\"", path.string(), line_no));
    }
    std::string domain = default_domain;
    auto d = j.find("domain");
    if (d != j.end() && !d->is_null()) {
      if (!d->is_string() || d->get_ref<const std::string&>().empty()) {
        throw DataError(fmt::format("{}:{}: field \"domain\" must be a non-empty string", path.string(), line_no));
      }
      domain = d->get<std::string>();
    }
    if (out.full(domain)) {
      out.stats().capped++;
      continue;
    }
    if (seen_domains.insert(domain).second) out.count_file(domain);
    std::string text = t->get<std::string>();
    if (replaced > 0) {
      out.stats().invalid_utf8_documents++;
      out.stats().replaced_sequences += replaced;
    }
    out.add(std::move(text), domain);
  }
}

void read_text_file(const fs::path& path, const std::string& domain, DocumentCollector& out) {
  if (out.full(domain)) {
    out.stats().capped++;
    return;
  }
  out.count_file(domain);
  out.add(read_decompressed(path), domain);
}

void read_text_tree(const fs::path& root, const std::string& name, DocumentCollector& out) {
  std::vector<fs::path> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) throw IoError(fmt::format("{}: cannot list directory ({})", root.string(), ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) throw IoError(fmt::format("{}: cannot list directory ({})", root.string(), ec.message()));
    const auto& p = it->path();
    if (p.filename().string().rfind('.', 0) == 0) {  // hidden files and folders
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(p);
  }
  // Sorted, so the document order (and with it every id) does not depend on the file system.
  std::sort(files.begin(), files.end());
  std::string root_name = fs::absolute(root).lexically_normal().filename().string();
  if (root_name.empty()) root_name = fs::absolute(root).lexically_normal().parent_path().filename().string();
  for (const auto& f : files) {
    std::string domain = name;
    if (domain.empty()) {
      const auto rel = f.lexically_relative(root);
      domain = std::distance(rel.begin(), rel.end()) > 1 ? rel.begin()->string() : root_name;
    }
    if (is_jsonl_path(f.string())) {
      read_jsonl(f, domain, out);
    } else {
      read_text_file(f, domain, out);
    }
  }
}

}  // namespace

SourceStats read_source(const std::string& spec, const SourceOptions& options, const DocumentSink& sink) {
  SourceStats stats;
  stats.spec = spec;
  DocumentCollector out(options, stats, sink);
  if (spec == "default") {
    stats.kind = "default";
    read_default_corpus(out);
    return stats;
  }
  std::string name, path = spec;
  const auto eq = spec.find('=');
  if (eq != std::string::npos && eq > 0 && spec.find('/') > eq) {
    name = spec.substr(0, eq);
    path = spec.substr(eq + 1);
  }
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    throw IoError(fmt::format("{}: source not found (give `default`, a directory of text files or a JSONL file)", path));
  }
  if (fs::is_directory(status)) {
    stats.kind = "text-tree";
    read_text_tree(path, name, out);
  } else if (is_jsonl_path(path)) {
    stats.kind = "jsonl";
    read_jsonl(path, name.empty() ? stem_of(path) : name, out);
  } else {
    stats.kind = "text-file";
    read_text_file(path, name.empty() ? stem_of(path) : name, out);
  }
  return stats;
}

}  // namespace dirmoe::data
