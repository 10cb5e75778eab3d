// Built-in held-out tasks: well-formed LAMBADA-style and 4-way examples, reproducible from a seed.
#include <catch2/catch.hpp>

#include "dirmoe/core/error.h"
#include "dirmoe/eval/heldout_tasks.h"

using namespace dirmoe::eval;

namespace {

std::vector<HeldoutDocument> make_docs() {
  std::vector<HeldoutDocument> docs;
  const char* words[] = {"alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "apple", "tiger", "lemon"};
  for (int d = 0; d < 6; ++d) {
    std::string text;
    for (int w = 0; w < 120; ++w) {
      text += std::string(w ? (w % 17 == 0 ? "\n" : " ") : "") + words[(d * 7 + w * 3) % 10] + (d % 2 ? std::to_string(w) : std::string());
      if (w % 5 == 4) text += ",";
    }
    docs.push_back({text, d % 3});
  }
  return docs;
}

}  // namespace

TEST_CASE("heldout_cloze: context + ' ' + last word is a span of a document", "[eval]") {
  const auto docs = make_docs();
  HeldoutTaskOptions o;
  o.n_examples = 20;
  o.seed = 5;
  o.context_words = 16;
  Task t = build_heldout_cloze(docs, o);
  REQUIRE(t.docs.size() == 20);
  CHECK(t.kind == TaskKind::kLogLikelihood);
  for (const auto& d : t.docs) {
    REQUIRE(d.requests.size() == 1);
    const auto& r = d.requests[0];
    REQUIRE(r.continuation.size() >= 4);
    CHECK(r.continuation[0] == ' ');
    CHECK(r.continuation.find_first_of(" \n", 1) == std::string::npos);
    CHECK(!r.context.empty());
    CHECK(r.context.back() != ' ');
    bool found = false;
    for (const auto& doc : docs) found = found || doc.text.find(r.context + r.continuation) != std::string::npos;
    CHECK(found);
  }
  // same seed, same task; another seed, another task
  Task again = build_heldout_cloze(docs, o);
  for (size_t i = 0; i < t.docs.size(); ++i) CHECK(again.docs[i].requests[0].context == t.docs[i].requests[0].context);
  o.seed = 6;
  Task other = build_heldout_cloze(docs, o);
  int same = 0;
  for (size_t i = 0; i < t.docs.size(); ++i) same += other.docs[i].requests[0].context == t.docs[i].requests[0].context;
  CHECK(same < 5);
}

TEST_CASE("heldout_choice: true continuation among distractors of the same domain", "[eval]") {
  const auto docs = make_docs();
  HeldoutTaskOptions o;
  o.n_examples = 30;
  o.seed = 9;
  o.context_words = 20;
  o.continuation_words = 6;
  Task t = build_heldout_choice(docs, o);
  REQUIRE(t.docs.size() == 30);
  std::vector<int> gold_counts(4, 0);
  for (const auto& d : t.docs) {
    REQUIRE(d.requests.size() == 4);
    ++gold_counts[d.gold];
    const std::string& ctx = d.requests[0].context;
    // the gold continuation follows the context in its document; all four come from one domain
    int64_t domain = -1;
    for (const auto& doc : docs) {
      if (doc.text.find(ctx + d.requests[d.gold].continuation) != std::string::npos) domain = doc.domain;
    }
    REQUIRE(domain >= 0);
    for (size_t i = 0; i < 4; ++i) {
      CHECK(d.requests[i].context == ctx);
      CHECK(d.requests[i].continuation[0] == ' ');
      CHECK(d.choice_chars[i] == static_cast<int64_t>(d.requests[i].continuation.size()) - 1);
      bool in_domain = false;
      for (const auto& doc : docs) {
        in_domain = in_domain || (doc.domain == domain && doc.text.find(d.requests[i].continuation.substr(1)) !=
                                                              std::string::npos);
      }
      CHECK(in_domain);
    }
  }
  for (int c : gold_counts) CHECK(c > 0);  // the gold position is shuffled
}

TEST_CASE("held-out tasks fail clearly on unusable documents", "[eval]") {
  std::vector<HeldoutDocument> docs = {{"too short", 0}};
  CHECK_THROWS_AS(build_heldout_cloze(docs, {}), dirmoe::DataError);
  CHECK_THROWS_AS(build_heldout_choice(docs, {}), dirmoe::DataError);
}

TEST_CASE("heldout_choice: no choice is longer than max_continuation_chars", "[eval]") {
  auto docs = make_docs();
  // a document of long "words" (like a table or a hex dump) must not give spans that overflow
  std::string wide;
  for (int w = 0; w < 120; ++w) wide += (w ? " " : "") + std::string(40, static_cast<char>('a' + w % 26));
  docs.push_back({wide, 0});
  docs.push_back({wide + " tail", 0});
  HeldoutTaskOptions o;
  o.n_examples = 60;
  o.context_words = 20;
  o.continuation_words = 6;
  o.max_continuation_chars = 60;
  Task t = build_heldout_choice(docs, o);
  REQUIRE(!t.docs.empty());
  for (const auto& d : t.docs) {
    for (const auto& r : d.requests) CHECK(r.continuation.size() <= 61);  // + the leading space
  }
}
