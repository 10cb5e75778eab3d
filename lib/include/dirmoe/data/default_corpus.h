#pragma once
// The default corpus: text that Debian packages install, one domain per kind of text.
//
//   domain        package(s)                          reader
//   python_docs   python3-doc (python3.X-doc)         reST sources html/_sources/**/*.txt, one doc per file
//   linux_docs    linux-doc (linux-doc-X)             Documentation/**/*.rst[.gz] and *.txt[.gz], one doc per file
//   dictionary    dict-gcide                          gcide.dict.dz entries cut by gcide.index, ~4 KB per doc
//   fortunes      fortunes                            /usr/share/games/fortunes/*, split on "%" lines, one doc each
//   wordnet       wordnet-base                        data.{noun,verb,adj,adv}: "words (pos): gloss", ~4 KB per doc
//   python_code   libpython3.X-stdlib, -minimal       the standard library's *.py, one doc per file
//   c_headers     libc6-dev, linux-libc-dev           /usr/include/**/*.h, one doc per file
//
// A missing package is a DataError that says to run `make setup`.
#include <string>
#include <vector>

#include "dirmoe/data/document_source.h"

namespace dirmoe::data {

/// One domain of the default corpus and the Debian packages it is read from.
struct DefaultDomain {
  std::string domain;
  std::vector<std::string> packages;  // the installed packages whose files are read (resolved names)
};

/// Resolve the packages of every default domain (e.g. python3-doc -> python3.11-doc) and check
/// that they are installed; throws DataError naming the missing package and `make setup`.
std::vector<DefaultDomain> default_corpus_domains();

/// Read the whole default corpus into `out` (deterministic order); records packages and versions
/// in `out.stats().packages`.
void read_default_corpus(DocumentCollector& out);

}  // namespace dirmoe::data
