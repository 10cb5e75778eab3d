// safetensors written by dirmoe read back by the `safetensors` Python package (independent
// reader) and by our own reader.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "../support/python_reference.h"
#include "dirmoe/core/error.h"
#include "dirmoe/eval/safetensors.h"
#include "../support/test_files.h"

namespace fs = std::filesystem;
using namespace dirmoe::eval;

namespace {
}  // namespace

TEST_CASE("safetensors round trip through the Python safetensors package", "[eval]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  torch::manual_seed(3);
  NamedTensors tensors = {{"a.weight", torch::randn({3, 5})},
                          {"b", torch::arange(7, torch::kInt64)},
                          {"c.half", torch::randn({2, 2}).to(torch::kBFloat16)},
                          {"d.scalar", torch::tensor(2.5, torch::kFloat64)},
                          {"e.view", torch::randn({4, 6}).t()}};  // non-contiguous
  const fs::path path = fs::temp_directory_path() / "dirmoe_eval_test.safetensors";
  write_safetensors(path, tensors, {{"dirmoe_test", "yes"}});
  auto out = dirmoe::testing::run_python_reference("safetensors_reference.py", {{"path", dirmoe::testing::bytes_tensor(path.string())}});
  CHECK(out.at("n_metadata").item<int64_t>() == 1);
  CHECK(out.at("meta_ok").item<bool>());
  std::map<std::string, std::string> meta;
  auto ours = read_safetensors(path, &meta);
  CHECK(meta.at("dirmoe_test") == "yes");
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const auto& py = out.at("t." + name);
    CHECK(py.dtype() == t.dtype());
    CHECK(py.sizes() == t.sizes());
    CHECK(torch::equal(py, t.contiguous()));
    CHECK(torch::equal(ours.at(name), t.contiguous()));
  }
  // the header length is a multiple of 8 and the file is exactly header + data
  {
    std::ifstream in(path, std::ios::binary);
    uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    CHECK(n % 8 == 0);
    int64_t data_bytes = 0;
    for (const auto& [name, t] : tensors) data_bytes += t.numel() * t.element_size();
    CHECK(fs::file_size(path) == 8 + n + static_cast<uint64_t>(data_bytes));
  }
  CHECK_THROWS_AS(write_safetensors(path, {{"x", torch::zeros({1})}, {"x", torch::zeros({1})}}), dirmoe::IoError);
}
