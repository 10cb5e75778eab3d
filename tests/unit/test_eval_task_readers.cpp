// Every task reader renders its fixture (tests/data/tasks/, the task's native layout) into the
// exact prompt strings of lm-eval-harness's task definitions; bad files are named with their line.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "dirmoe/core/error.h"
#include "dirmoe/eval/task_readers.h"
#include "../support/test_paths.h"

namespace fs = std::filesystem;
using namespace dirmoe::eval;

namespace {

const fs::path kTaskDir = fs::path(dirmoe::testing::test_data_dir()) / "tasks";

void check_choices(const TaskDoc& doc, const std::string& context, const std::vector<std::string>& continuations,
                   int64_t gold) {
  REQUIRE(doc.requests.size() == continuations.size());
  for (size_t i = 0; i < continuations.size(); ++i) {
    CHECK(doc.requests[i].context == context);
    CHECK(doc.requests[i].continuation == continuations[i]);
  }
  CHECK(doc.gold == gold);
}

fs::path write_temp(const std::string& name, const std::string& contents) {
  const fs::path dir = fs::temp_directory_path() / "dirmoe_eval_bad_tasks";
  fs::create_directories(dir);
  const fs::path path = dir / name;
  std::ofstream(path) << contents;
  return path;
}

}  // namespace

TEST_CASE("arc readers: HF and original layouts, letter and digit answer keys", "[eval]") {
  Task easy = load_task_file("arc_easy", kTaskDir);
  REQUIRE(easy.docs.size() == 2);
  check_choices(easy.docs[0], "Question: Which factor will most likely cause a person to develop a fever?\nAnswer:",
                {" a leg muscle relaxing after exercise", " a bacterial population in the bloodstream",
                 " several viral particles on the skin", " carbohydrates being digested in the stomach"},
                1);
  check_choices(easy.docs[1], "Question: Which object is the best conductor of electricity?\nAnswer:",
                {" a wax crayon", " a plastic spoon", " a rubber eraser", " an iron nail"}, 3);
  CHECK(easy.docs[1].choice_chars == std::vector<int64_t>{12, 15, 15, 12});
  CHECK(easy.report_acc_norm);
  CHECK(easy.prompt_version == "lm-eval-harness-0.4.13:arc_easy:1.0+dirmoe.1");
  CHECK(easy.docs[1].doc_id == 1);

  Task challenge = load_task_file("arc_challenge", kTaskDir);
  REQUIRE(challenge.docs.size() == 1);
  check_choices(challenge.docs[0],
                "Question: George wants to warm his hands quickly by rubbing them. Which skin surface will produce "
                "the most heat?\nAnswer:",
                {" dry palms", " wet palms", " palms covered with oil", " palms covered with lotion"}, 0);
}

TEST_CASE("boolq reader: passage, question? and no/yes", "[eval]") {
  Task t = load_task_file("boolq", kTaskDir);
  REQUIRE(t.docs.size() == 2);
  check_choices(t.docs[0],
                "Ethanol fuel -- All biomass goes through at least some of these steps.\nQuestion: does ethanol "
                "take more energy make that produces?\nAnswer:",
                {" no", " yes"}, 0);
  check_choices(t.docs[1],
                "Property tax or 'house tax' is a local tax on buildings.\nQuestion: is house tax and property tax "
                "are same?\nAnswer:",
                {" no", " yes"}, 1);
  CHECK_FALSE(t.report_acc_norm);
}

TEST_CASE("hellaswag reader: the harness's preprocessing", "[eval]") {
  Task t = load_task_file("hellaswag", kTaskDir);
  REQUIRE(t.docs.size() == 2);
  check_choices(t.docs[0], "Roof shingle removal: A man is sitting on a roof. He",
                {" is using wrap to wrap a pair of skis.", " is ripping level tiles off.",
                 " is holding a rubik's cube.", " starts pulling up roofing on a roof."},
                3);
  // " [title]" → ". ", brackets dropped, double spaces collapsed once, ctx_b.capitalize() lowers the rest
  check_choices(t.docs[1], "Finance and Business: How to make a budget. Write down your INCOME. Then list your bills",
                {"  Add them up. Done.", " Spend it all.", " Save bit [b", " Nothing \n here"}, 0);
  CHECK(t.docs[1].choice_chars == std::vector<int64_t>{19, 13, 11, 14});
  CHECK(hellaswag_preprocess("a   b") == "a  b");  // one pass of "  " → " ", as str.replace
  CHECK(python_capitalize("hELLO World") == "Hello world");
}

TEST_CASE("lambada reader: context without the last word, target ' ' + last word", "[eval]") {
  Task t = load_task_file("lambada_openai", kTaskDir);
  REQUIRE(t.docs.size() == 2);
  CHECK(t.kind == TaskKind::kLogLikelihood);
  REQUIRE(t.docs[1].requests.size() == 1);
  CHECK(t.docs[1].requests[0].context == "Give me a minute to change and I'll meet you at the");
  CHECK(t.docs[1].requests[0].continuation == " docks");
  CHECK(t.docs[0].requests[0].continuation == " signs");
  const std::string& c0 = t.docs[0].requests[0].context;
  CHECK(c0.substr(c0.size() - 18) == "I don't care about");
  CHECK(c0.rfind("In my palm is a clear stone,", 0) == 0);
}

TEST_CASE("piqa reader: goal question and two solutions", "[eval]") {
  Task t = load_task_file("piqa", kTaskDir);
  REQUIRE(t.docs.size() == 2);
  check_choices(t.docs[0], "Question: When boiling butter, when it's ready, you can\nAnswer:",
                {" Pour it onto a plate", " Pour it into a jar"}, 1);
  check_choices(t.docs[1], "Question: To permanently attach metal legs to a chair, you can\nAnswer:",
                {" Weld the metal together to get it to stay firmly in place",
                 " Nail the metal together to get it to stay firmly in place"},
                0);
}

TEST_CASE("piqa reader takes labels from the original release's -labels.lst", "[eval]") {
  const fs::path path = write_temp("valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n");
  write_temp("valid-labels.lst", "1\n");
  Task t = read_piqa(path);
  REQUIRE(t.docs.size() == 1);
  CHECK(t.docs[0].gold == 1);
}

TEST_CASE("winogrande reader: partial scoring, option in the context", "[eval]") {
  Task t = load_task_file("winogrande", kTaskDir);
  REQUIRE(t.docs.size() == 2);
  const TaskDoc& d = t.docs[1];
  REQUIRE(d.requests.size() == 2);
  CHECK(d.requests[0].context == "Sarah was a much better surgeon than Maria so Sarah");
  CHECK(d.requests[1].context == "Sarah was a much better surgeon than Maria so Maria");
  CHECK(d.requests[0].continuation == " always got the easier cases.");
  CHECK(d.requests[1].continuation == " always got the easier cases.");
  CHECK(d.gold == 1);
  CHECK(t.docs[0].gold == 0);
  CHECK_FALSE(t.report_acc_norm);
}

TEST_CASE("openbookqa reader: question stem alone, answerKey stripped", "[eval]") {
  Task t = load_task_file("openbookqa", kTaskDir);
  REQUIRE(t.docs.size() == 2);
  check_choices(t.docs[0], "The sun is responsible for",
                {" puppies learning new tricks", " children growing up and getting old", " flowers wilting in a vase",
                 " plants sprouting, blooming and wilting"},
                3);
  check_choices(t.docs[1], "When food is reduced in the stomach",
                {" the mind needs time to digest", " take a second to digest what I said",
                 " nutrients are being deconstructed", " reader's digest is a body of works"},
                2);
}

TEST_CASE("sciq reader: support.lstrip(), question, correct answer last", "[eval]") {
  Task t = load_task_file("sciq", kTaskDir);
  REQUIRE(t.docs.size() == 2);
  check_choices(t.docs[0],
                "Mesophiles grow best in moderate temperature.\nQuestion: What type of organism is commonly used in "
                "preparation of foods such as cheese and yogurt?\nAnswer:",
                {" protozoa", " gymnosperms", " viruses", " mesophilic organisms"}, 3);
  check_choices(t.docs[1], "\nQuestion: What is the least dangerous radioactive decay?\nAnswer:",
                {" beta decay", " gamma decay", " zeta decay", " alpha decay"}, 3);
}

TEST_CASE("race reader: one document per article, earlier problems in the context", "[eval]") {
  Task t = load_task_file("race", kTaskDir);
  REQUIRE(t.docs.size() == 3);
  // EleutherAI/race export: problems as a Python literal; the "  _  ." cloze question is filled
  // in place, q[:-5] + answer, as the harness's RACE v3.0 does.
  check_choices(t.docs[0],
                "Article: Last week I talked with some of my students about what they wanted to do.\n\n"
                "The writer talked with his students\nQuestion: What did they want?\nAnswer: to work\n"
                "How many students are there?",
                {" one", " two", " three", " four"}, 3);
  CHECK(t.prompt_version == "lm-eval-harness-0.4.13:race:3.0+dirmoe.2");
  // original per-article layout
  check_choices(t.docs[1], "Article: The sea is big.\n\nWhat is big?", {" the sea", " the cup", " the ant", " the pin"},
                0);
  // per-question rows collated by article
  check_choices(t.docs[2], "Article: Tom has a cat.\n\nQuestion: Who has a cat?\nAnswer: Tom\nTom has a  _  .",
                {" dog", " cat", " cow", " pig"}, 1);
  // doc_id: the record's 0-based index in the file (the harness's row number); collated rows take
  // their article's first row
  CHECK(t.docs[0].doc_id == 0);
  CHECK(t.docs[1].doc_id == 1);
  CHECK(t.docs[2].doc_id == 2);
}

TEST_CASE("bad task files name the file and the line", "[eval]") {
  auto expect_error = [](const fs::path& path, const std::string& name, const std::string& needle) {
    try {
      if (name == "arc_easy") read_arc(name, path);
      else if (name == "hellaswag") read_hellaswag(path);
      else if (name == "boolq") read_boolq(path);
      else if (name == "winogrande") read_winogrande(path);
      else if (name == "race") read_race(path);
      FAIL("no error for " << path);
    } catch (const dirmoe::DataError& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find(path.string()) != std::string::npos);
      CHECK(what.find(needle) != std::string::npos);
    }
  };
  const std::string good_arc =
      R"({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"})";
  // missing field on line 3 (a blank line 2 still counts)
  expect_error(write_temp("arc_missing.jsonl", good_arc + "\n\n" + R"({"choices": {"text": ["a"], "label": ["A"]}, "answerKey": "A"})" + "\n"),
               "arc_easy", ":3: missing field \"question\"");
  // answer key not among the labels
  expect_error(write_temp("arc_key.jsonl", R"({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"})"),
               "arc_easy", ":1: answerKey \"E\"");
  // empty choices
  expect_error(write_temp("arc_empty.jsonl", good_arc + "\n" + R"({"question": "q", "choices": {"text": [], "label": []}, "answerKey": "A"})"),
               "arc_easy", ":2: field \"text\" is an empty list of choices");
  // wrong label index
  expect_error(write_temp("hs_label.jsonl", R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"], "label": 4})"),
               "hellaswag", ":1: label 4 is outside the 2 choices");
  expect_error(write_temp("boolq_label.jsonl", R"({"passage": "p", "question": "q", "label": 2})"), "boolq",
               ":1: label 2 is outside the 2 choices");
  // malformed JSON
  expect_error(write_temp("wg_json.jsonl", R"({"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "1"})"
                                          "\n{\"sentence\": \"a _ b\", \"option1\": \n"),
               "winogrande", ":2: malformed JSON");
  expect_error(write_temp("wg_answer.jsonl", R"({"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "3"})"),
               "winogrande", ":1: field \"answer\" must be \"1\" or \"2\"");
  expect_error(write_temp("race_answer.jsonl", R"({"article": "a", "problems": [{"question": "q", "options": ["a","b","c","d"], "answer": "F"}]})"),
               "race", ":1: answer \"F\"");
}

TEST_CASE("a task missing from the task dir names the expected file", "[eval]") {
  try {
    load_task_file("piqa", fs::temp_directory_path() / "dirmoe_no_such_dir");
    FAIL("no error");
  } catch (const dirmoe::IoError& e) {
    CHECK(std::string(e.what()).find("piqa.jsonl") != std::string::npos);
  }
  CHECK_THROWS_AS(load_task_file("no_such_task", kTaskDir), dirmoe::ConfigError);
}
