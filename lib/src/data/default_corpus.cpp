#include "dirmoe/data/default_corpus.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dirmoe/core/error.h"
#include "dirmoe/data/byte_reader.h"

namespace dirmoe::data {
namespace fs = std::filesystem;

namespace {

// Small records (dictionary entries, WordNet synsets) are grouped into documents of about this
// many bytes: whole entries, in their file order, so neighbouring headwords stay together.
constexpr size_t kGroupBytes = 4096;

std::string run_capture(const std::string& cmd, int* rc_out = nullptr) {
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) throw IoError(fmt::format("cannot run `{}`", cmd));
  std::string out;
  std::array<char, 65536> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int rc = ::pclose(pipe);
  if (rc_out != nullptr) *rc_out = rc;
  return out;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

struct PackageRule {
  std::string pattern;       // Debian package name or dpkg-query glob
  std::string setup_name;    // what `make setup` installs that brings it in
};

struct DomainRule {
  std::string domain;
  std::vector<PackageRule> packages;
};

const std::vector<DomainRule>& domain_rules() {
  static const std::vector<DomainRule> rules = {
      {"python_docs", {{"python3.*-doc", "python3-doc"}}},
      {"linux_docs", {{"linux-doc-*", "linux-doc"}}},
      {"dictionary", {{"dict-gcide", "dict-gcide"}}},
      {"fortunes", {{"fortunes", "fortunes"}, {"fortunes-min", "fortunes"}}},
      {"wordnet", {{"wordnet-base", "wordnet-base"}}},
      {"python_code", {{"libpython3.*-stdlib", "python3-venv"}, {"libpython3.*-minimal", "python3-venv"}}},
      {"c_headers", {{"libc6-dev", "build-essential"}, {"linux-libc-dev", "build-essential"}}},
  };
  return rules;
}

// Installed packages matching `pattern`, highest name last (python3.12-doc after python3.11-doc).
std::vector<std::pair<std::string, std::string>> installed_matching(const std::string& pattern) {
  const std::string out = run_capture(
      fmt::format("dpkg-query -W -f='${{Package}}\\t${{db:Status-Status}}\\t${{Version}}\\n' '{}' 2>/dev/null", pattern));
  std::vector<std::pair<std::string, std::string>> found;
  for (const auto& line : split_lines(out)) {
    std::istringstream f(line);
    std::string name, status, version;
    std::getline(f, name, '\t');
    std::getline(f, status, '\t');
    std::getline(f, version, '\t');
    if (status == "installed") found.emplace_back(name, version);
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<fs::path> package_files(const std::string& package) {
  int rc = 0;
  const std::string out = run_capture(fmt::format("dpkg-query -L '{}' 2>/dev/null", package), &rc);
  if (rc != 0) throw DataError(fmt::format("default corpus: cannot list the files of Debian package '{}'; run `make setup`", package));
  std::vector<fs::path> files;
  std::set<std::string> seen;
  for (const auto& line : split_lines(out)) {
    if (line.empty() || !seen.insert(line).second) continue;
    std::error_code ec;
    const fs::path p(line);
    if (fs::is_symlink(fs::symlink_status(p, ec)) || !fs::is_regular_file(p, ec)) continue;
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void one_doc_per_file(const std::vector<fs::path>& files, const std::string& domain, DocumentCollector& out) {
  for (const auto& f : files) {
    if (out.full(domain)) {
      out.stats().capped++;
      continue;
    }
    out.count_file(domain);
    out.add(read_decompressed(f), domain);
  }
}

// dictd index numbers: base64 digits (A-Z a-z 0-9 + /), most significant first.
int64_t dictd_number(const std::string& s, const fs::path& index) {
  int64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= 'A' && c <= 'Z') d = c - 'A';
    else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
    else if (c >= '0' && c <= '9') d = c - '0' + 52;
    else if (c == '+') d = 62;
    else if (c == '/') d = 63;
    else throw DataError(fmt::format("{}: bad dictd number '{}'", index.string(), s));
    v = v * 64 + d;
  }
  return v;
}

void read_gcide(const std::vector<fs::path>& files, const std::string& domain, DocumentCollector& out) {
  fs::path dict, index;
  for (const auto& f : files) {
    if (ends_with(f.string(), "gcide.dict.dz")) dict = f;
    if (ends_with(f.string(), "gcide.index")) index = f;
  }
  if (dict.empty() || index.empty()) {
    throw DataError("default corpus: dict-gcide is installed but gcide.dict.dz/gcide.index are missing; reinstall it (`make setup`)");
  }
  const std::string text = read_decompressed(dict);  // dictzip is gzip with random-access extras
  const std::string idx = read_decompressed(index);
  std::set<std::pair<int64_t, int64_t>> entries;  // (offset, length), sorted by offset, deduplicated
  std::istringstream in(idx);
  std::string line;
  while (std::getline(in, line)) {
    const auto t1 = line.find('\t');
    const auto t2 = line.find('\t', t1 + 1);
    if (t1 == std::string::npos || t2 == std::string::npos) continue;
    if (line.rfind("00-database", 0) == 0 || line.rfind("00database", 0) == 0) continue;  // metadata entries
    const int64_t off = dictd_number(line.substr(t1 + 1, t2 - t1 - 1), index);
    const int64_t len = dictd_number(line.substr(t2 + 1), index);
    if (off < 0 || len <= 0 || off + len > static_cast<int64_t>(text.size())) {
      throw DataError(fmt::format("{}: entry '{}' points outside {}", index.string(), line.substr(0, t1), dict.string()));
    }
    entries.emplace(off, len);
  }
  out.count_file(domain);
  out.count_file(domain);
  std::string doc;
  int64_t covered_to = 0;
  for (const auto& [off, len] : entries) {
    if (off < covered_to) continue;  // an entry nested in one already taken
    if (out.full(domain)) break;
    doc.append(text, static_cast<size_t>(off), static_cast<size_t>(len));
    if (doc.back() != '\n') doc += '\n';
    covered_to = off + len;
    if (doc.size() >= kGroupBytes) {
      out.add(std::move(doc), domain);
      doc.clear();
    }
  }
  if (!doc.empty()) out.add(std::move(doc), domain);
}

void read_fortunes(const std::vector<fs::path>& files, const std::string& domain, DocumentCollector& out) {
  for (const auto& f : files) {
    const std::string s = f.string();
    if (s.find("/games/fortunes/") == std::string::npos || ends_with(s, ".dat") || ends_with(s, ".u8")) continue;
    if (out.full(domain)) break;
    out.count_file(domain);
    std::istringstream in(read_decompressed(f));
    std::string line, doc;
    while (std::getline(in, line)) {
      if (line == "%") {
        out.add(std::move(doc), domain);
        doc.clear();
      } else {
        doc += line;
        doc += '\n';
      }
    }
    out.add(std::move(doc), domain);
  }
}

// WordNet data.* lines (wndb(5WN)): "offset lex_filenum ss_type w_cnt word lex_id [word lex_id...]
// p_cnt [ptr...] [frames...] | gloss". License lines start with two spaces.
void read_wordnet(const std::vector<fs::path>& files, const std::string& domain, DocumentCollector& out) {
  for (const auto& f : files) {
    const std::string name = f.filename().string();
    if (name != "data.noun" && name != "data.verb" && name != "data.adj" && name != "data.adv") continue;
    if (out.full(domain)) break;
    out.count_file(domain);
    const std::string pos = name.substr(5);
    std::istringstream in(read_decompressed(f));
    std::string line, doc;
    while (std::getline(in, line)) {
      if (line.rfind("  ", 0) == 0) continue;
      const auto bar = line.find(" | ");
      if (bar == std::string::npos) continue;
      std::istringstream fields(line.substr(0, bar));
      std::string offset, lexfile, ss_type, wcnt_hex;
      fields >> offset >> lexfile >> ss_type >> wcnt_hex;
      int wcnt = 0;
      try {
        wcnt = std::stoi(wcnt_hex, nullptr, 16);
      } catch (const std::exception&) {
        throw DataError(fmt::format("{}: malformed synset line '{}'", f.string(), line.substr(0, 60)));
      }
      std::string words;
      for (int i = 0; i < wcnt; ++i) {
        std::string w, lex_id;
        fields >> w >> lex_id;
        std::replace(w.begin(), w.end(), '_', ' ');
        if (const auto paren = w.find('('); paren != std::string::npos) w.resize(paren);  // adjective markers
        if (!words.empty()) words += ", ";
        words += w;
      }
      std::string gloss = line.substr(bar + 3);
      while (!gloss.empty() && gloss.back() == ' ') gloss.pop_back();
      doc += fmt::format("{} ({}.): {}\n", words, pos, gloss);
      if (doc.size() >= kGroupBytes) {
        out.add(std::move(doc), domain);
        doc.clear();
      }
    }
    out.add(std::move(doc), domain);
  }
}

std::vector<fs::path> filter(const std::vector<fs::path>& files, const std::function<bool(const std::string&)>& keep) {
  std::vector<fs::path> kept;
  for (const auto& f : files) {
    if (keep(f.string())) kept.push_back(f);
  }
  return kept;
}

}  // namespace

std::vector<DefaultDomain> default_corpus_domains() {
  std::vector<DefaultDomain> domains;
  for (const auto& rule : domain_rules()) {
    DefaultDomain d{rule.domain, {}};
    for (const auto& pkg : rule.packages) {
      const auto found = installed_matching(pkg.pattern);
      if (found.empty()) {
        throw DataError(fmt::format(
            "default corpus: Debian package '{}' is not installed (needed for the '{}' domain); run `make setup` "
            "(it installs {}), or build from your own text with --source PATH",
            pkg.pattern, rule.domain, pkg.setup_name));
      }
      d.packages.push_back(found.back().first);
    }
    domains.push_back(std::move(d));
  }
  return domains;
}

void read_default_corpus(DocumentCollector& out) {
  const auto domains = default_corpus_domains();
  for (const auto& d : domains) {
    std::vector<fs::path> files;
    for (const auto& pkg : d.packages) {
      const auto found = installed_matching(pkg);
      out.stats().packages.emplace_back(pkg, found.empty() ? "" : found.back().second);
      const auto pf = package_files(pkg);
      files.insert(files.end(), pf.begin(), pf.end());
    }
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    const std::string& dom = d.domain;
    if (dom == "python_docs") {
      one_doc_per_file(filter(files, [](const std::string& s) {
                         return s.find("/html/_sources/") != std::string::npos && ends_with(s, ".txt");
                       }), dom, out);
    } else if (dom == "linux_docs") {
      one_doc_per_file(filter(files, [](const std::string& s) {
                         if (s.find("/Documentation/") == std::string::npos) return false;
                         for (const char* ext : {".rst", ".rst.gz", ".txt", ".txt.gz"}) {
                           if (ends_with(s, ext)) return true;
                         }
                         return false;
                       }), dom, out);
    } else if (dom == "dictionary") {
      read_gcide(files, dom, out);
    } else if (dom == "fortunes") {
      read_fortunes(files, dom, out);
    } else if (dom == "wordnet") {
      read_wordnet(files, dom, out);
    } else if (dom == "python_code") {
      one_doc_per_file(filter(files, [](const std::string& s) {
                         return s.rfind("/usr/lib/python3", 0) == 0 && ends_with(s, ".py") &&
                                s.find("-packages/") == std::string::npos;
                       }), dom, out);
    } else if (dom == "c_headers") {
      one_doc_per_file(filter(files, [](const std::string& s) {
                         return s.rfind("/usr/include/", 0) == 0 && ends_with(s, ".h");
                       }), dom, out);
    }
    if (out.stats().domains[dom].documents == 0) {
      throw DataError(fmt::format("default corpus: the '{}' domain yielded no documents from {}; reinstall its "
                                  "packages with `make setup`", dom, fmt::join(d.packages, ", ")));
    }
  }
}

}  // namespace dirmoe::data
