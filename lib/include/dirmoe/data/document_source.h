#pragma once
// Turning corpus sources into labelled documents: plain-text trees, JSONL exports (plain, .gz,
// .zst) and the default Debian corpus. Every document carries a domain label; text is cleaned to
// valid UTF-8 and empty documents are dropped, both counted.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dirmoe::data {

/// One document: its text and its domain label.
struct Document {
  std::string text;
  std::string domain;
};

/// Counts for one domain of one source.
struct DomainCounts {
  int64_t files = 0;      // input files that contributed documents
  int64_t documents = 0;  // documents kept
  int64_t bytes = 0;      // UTF-8 bytes kept
};

/// What reading one source produced and skipped; goes into the manifest.
struct SourceStats {
  std::string spec;                               // as given on the command line
  std::string kind;                               // "default", "text-tree", "text-file", "jsonl"
  std::vector<std::pair<std::string, std::string>> packages;  // Debian package, version (default corpus)
  std::map<std::string, DomainCounts> domains;
  int64_t empty_skipped = 0;          // documents with no non-whitespace text
  int64_t invalid_utf8_documents = 0; // documents in which bytes were replaced by U+FFFD
  int64_t replaced_sequences = 0;     // ill-formed UTF-8 sequences (and NULs) replaced
  int64_t capped = 0;                 // documents left out by max_docs_per_domain
  nlohmann::json to_json() const;
};

/// Options shared by every source.
struct SourceOptions {
  int64_t max_docs_per_domain = 0;  // 0: no cap; otherwise the first N documents of each domain
};

/// Receives the cleaned documents of a source in a deterministic order.
using DocumentSink = std::function<void(Document&&)>;

/// Cleans, counts and caps documents before they reach the sink. Readers call `add`.
class DocumentCollector {
 public:
  DocumentCollector(const SourceOptions& options, SourceStats& stats, DocumentSink sink);
  /// True once `domain` has reached its cap (readers may skip its remaining files).
  bool full(const std::string& domain) const;
  /// Clean `text` (UTF-8 replacement), drop it if empty, count it, pass it on.
  void add(std::string text, const std::string& domain);
  /// Count a file as contributing to `domain`.
  void count_file(const std::string& domain);
  /// Warnings printed once per file with replaced bytes are limited; this many were printed.
  SourceStats& stats() { return stats_; }

 private:
  SourceOptions options_;
  SourceStats& stats_;
  DocumentSink sink_;
  std::map<std::string, int64_t> kept_;
};

/// Read one source spec and pass its documents to `sink`:
///   "default"       the Debian default corpus (see default_corpus.h)
///   [NAME=]DIR      a plain-text tree: every regular file (plain, .gz or .zst) is one document;
///                   its domain is NAME if given, else the top-level folder below DIR it lies in
///                   (files directly in DIR take DIR's own name)
///   [NAME=]FILE.jsonl[.gz|.zst]  one JSON object per line with "text" (string) and an optional
///                   "domain" (string); documents without "domain" take NAME or the file's stem
///   [NAME=]FILE     any other file: one document, domain NAME or the file's stem
/// Throws IoError for missing/unreadable paths and DataError for malformed JSONL, both naming the
/// file (and line).
SourceStats read_source(const std::string& spec, const SourceOptions& options, const DocumentSink& sink);

/// True if `path` names a JSONL file (.jsonl, .jsonl.gz, .jsonl.zst, .json.gz ...).
bool is_jsonl_path(const std::string& path);

}  // namespace dirmoe::data
