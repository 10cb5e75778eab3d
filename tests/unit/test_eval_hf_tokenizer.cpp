// tokenizer.json (eval/hf_tokenizer.h) against dirmoe's SentencePiece encoding, on the cases where
// a Hugging Face conversion usually goes wrong: leading and repeated spaces, newlines and tabs,
// characters outside the vocabulary (byte fallback), control-token spellings in the text, and the
// fixture corpus itself. Python loads the files with transformers' AutoTokenizer and its defaults.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"
#include "dirmoe/data/document_source.h"
#include "dirmoe/data/tokenizer.h"
#include "dirmoe/eval/hf_tokenizer.h"
#include "../support/test_files.h"
#include "../support/test_paths.h"

using namespace dirmoe;
namespace fs = std::filesystem;

namespace {

}  // namespace

TEST_CASE("tokenizer.json encodes as the SentencePiece model does", "[eval][reference][tokenizer]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_hf_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::vector<std::string> corpus;
  data::read_source(std::string(dirmoe::testing::test_data_dir()) + "/corpus/tree", {},
                    [&](data::Document&& d) { corpus.push_back(d.text); });
  data::TokenizerTrainOptions opt;
  opt.vocab_size = 600;
  opt.threads = 1;
  data::train_tokenizer(corpus, (dir / "t.model").string(), opt);
  const data::Tokenizer tok((dir / "t.model").string());

  const nlohmann::json j = eval::hf_tokenizer_json(tok);
  CHECK(j.at("pre_tokenizer").is_null());
  CHECK(j.at("post_processor").is_null());
  CHECK(j.at("model").at("byte_fallback") == true);
  CHECK(j.at("model").at("vocab").size() == 600);
  CHECK(j.at("added_tokens").size() == 3);  // <unk> <s> </s>
  const nlohmann::json cfg = eval::hf_tokenizer_config_json(tok, 128);
  CHECK(cfg.at("bos_token").is_null());  // dirmoe never feeds <s>
  CHECK(cfg.at("eos_token") == "</s>");
  CHECK(cfg.at("split_special_tokens") == true);
  std::ofstream(dir / "tokenizer.json") << j.dump();
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump();

  std::vector<std::string> texts = {
      "the", " the", "  the", "\tthe\n", "a  b   c    d", "line one\nline two\n\n  indented\n",
      "def f(x):\n    return x  # two spaces\n", "   ", "\n", "caf\xc3\xa9 na\xc3\xafve \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x99\x82",
      "<s> </s> <unk> literally", "12345 67.89", "trailing space ", "\xe2\x96\x81 the escaped-space glyph itself"};
  texts.insert(texts.end(), corpus.begin(), corpus.end());
  std::string joined;
  for (size_t i = 0; i < texts.size(); ++i) joined += (i ? std::string(1, '\0') : "") + texts[i];
  const auto py = dirmoe::testing::run_python_reference(
      "hf_tokenizer_encode.py", {{"tokenizer_dir", dirmoe::testing::bytes_tensor(dir.string())},
                                 {"texts", dirmoe::testing::bytes_tensor(joined)}});
  const torch::Tensor ids = py.at("ids");
  const torch::Tensor lengths = py.at("lengths");
  REQUIRE(lengths.size(0) == static_cast<int64_t>(texts.size()));
  int64_t offset = 0, agree = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const int64_t n = lengths[i].item<int64_t>();
    std::vector<int64_t> theirs(ids.data_ptr<int64_t>() + offset, ids.data_ptr<int64_t>() + offset + n);
    offset += n;
    const std::vector<int> ours_int = tok.encode(texts[i]);
    const std::vector<int64_t> ours(ours_int.begin(), ours_int.end());
    INFO("text " << i << ": " << texts[i].substr(0, 60));
    CHECK(theirs == ours);
    agree += theirs == ours;
  }
  std::printf("hf_tokenizer: %lld of %zu texts encode identically\n", static_cast<long long>(agree), texts.size());
  fs::remove_all(dir);
}
