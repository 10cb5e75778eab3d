// routing.h5: written by the C++ writer, read back by h5py (an independent reader) and by our reader;
// foreign and truncated files refused with a message naming the file and the problem.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <H5Cpp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../support/python_reference.h"
#include "dirmoe/core/error.h"
#include "dirmoe/stats/routing_stats_accumulator.h"
#include "dirmoe/stats/routing_stats_file.h"
#include "../support/test_files.h"

using namespace dirmoe;
namespace fs = std::filesystem;

namespace {

std::string string_of(const torch::Tensor& t) {
  auto c = t.to(torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), c.numel());
}
template <typename T>
std::vector<T> vec(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

/// A file from the accumulator over random routing, with a trace.
RoutingStatsFile sample_file(int64_t L, int64_t E, int64_t Dn) {
  auto gen = at::detail::createCPUGenerator(99);
  RoutingStatsOptions o;
  o.n_layers = L;
  o.n_experts = E;
  o.n_domains = Dn;
  o.simpson_bins = 20;
  o.trace_stride = 3;
  RoutingStatsAccumulator acc(o);
  for (int f = 0; f < 2; ++f) {
    const int64_t T = 64;
    auto d = torch::randint(0, Dn, {T}, gen, torch::kInt64);
    acc.set_domains(d, torch::randint(0, 500, {T}, gen, torch::kInt64));
    for (int64_t l = 0; l < L; ++l) {
      // skew: domain d prefers expert d % E
      auto logits = torch::randn({T, E}, gen);
      logits.scatter_add_(1, (d % E).unsqueeze(1), torch::full({T, 1}, 2.0f));
      auto top = std::get<1>(logits.topk(2, 1));
      auto mask = torch::zeros({T, E}, torch::kBool).scatter_(1, top, true);
      auto w = torch::softmax(logits, 1).masked_fill(mask.logical_not(), 0.0f);
      acc.record(l, mask, w);
    }
  }
  RoutingStatsFile file;
  file.attrs.router = "topk";
  file.attrs.k_target = 2;
  file.attrs.step = 1234;
  file.attrs.config_json = R"({"router": {"type": "topk"}})";
  file.attrs.git_rev = "abc123";
  for (int64_t i = 0; i < Dn; ++i) file.domains.push_back("domain_" + std::to_string(i));
  file.stats = acc.snapshot();
  return file;
}

}  // namespace

TEST_CASE("routing.h5 read back by h5py has every dataset of the schema with the written values", "[stats][hdf5]") {
  REQUIRE(testing::python_reference_available());
  const auto dir = dirmoe::testing::fresh_test_dir("routing_h5");
  const auto path = dir / "routing.h5";
  const int64_t L = 3, E = 6, Dn = 4;
  const auto file = sample_file(L, E, Dn);
  write_routing_stats(path, file);
  REQUIRE(fs::exists(path));
  for (const auto& entry : fs::directory_iterator(dir)) CHECK(entry.path().filename() == "routing.h5");

  auto out = testing::run_python_reference("read_routing_h5.py", {{"path", dirmoe::testing::bytes_tensor(path.string())}});
  CHECK(out.at("attr_format_version").item<int64_t>() == kRoutingFormatVersion);
  CHECK(out.at("attr_n_layers").item<int64_t>() == L);
  CHECK(out.at("attr_n_experts").item<int64_t>() == E);
  CHECK(out.at("attr_k_target").item<int64_t>() == 2);
  CHECK(out.at("attr_step").item<int64_t>() == 1234);
  CHECK(string_of(out.at("router")) == "topk");
  CHECK(string_of(out.at("config")) == file.attrs.config_json);
  CHECK(string_of(out.at("domains")) == "domain_0\ndomain_1\ndomain_2\ndomain_3");
  for (int64_t l = 0; l < L; ++l) {
    const auto& s = file.stats.layers[l];
    const std::string p = std::to_string(l) + "/";
    CHECK(out.at(p + "n_tokens").item<int64_t>() == 128);
    CHECK(vec<int64_t>(out.at(p + "tokens_per_expert")) == s.tokens_per_expert);
    CHECK(vec<double>(out.at(p + "weight_per_expert")) == s.weight_per_expert);
    CHECK(vec<int64_t>(out.at(p + "active_experts_hist")) == s.active_experts_hist);
    CHECK(s.active_experts_hist[2] == 128);
    CHECK(vec<double>(out.at(p + "domain_expert_tokens")) == s.domain_expert_tokens);
    CHECK(vec<int64_t>(out.at(p + "expert_coactivation")) == s.expert_coactivation);
    CHECK(vec<int64_t>(out.at(p + "token_simpson")) == s.token_simpson_hist);
    CHECK(out.at(p + "token_simpson_mean").item<double>() == Approx(s.token_simpson_mean()));
    for (const char* name : {"expert_domain_simpson", "expert_domain_simpson_normalized", "domain_expert_simpson"}) {
      CHECK(torch::allclose(out.at(p + name), out.at(p + "ref_" + name), 1e-12, 1e-12, /*equal_nan=*/true));
    }
  }
  REQUIRE(file.stats.trace.has_value());
  const auto& t = *file.stats.trace;
  CHECK(vec<int64_t>(out.at("trace/token_ids")) == t.token_ids);
  CHECK(out.at("trace/expert_ids").sizes() == torch::IntArrayRef({L, t.n_tokens(), t.max_active}));
  CHECK(vec<int64_t>(out.at("trace/expert_ids")) == std::vector<int64_t>(t.expert_ids.begin(), t.expert_ids.end()));
  CHECK(vec<float>(out.at("trace/weights")) == t.weights);
  fs::remove_all(dir);
}

TEST_CASE("routing.h5 round trip through our reader", "[stats][hdf5]") {
  const auto dir = dirmoe::testing::fresh_test_dir("routing_rt");
  const auto path = dir / "routing.h5";
  const auto file = sample_file(2, 4, 3);
  write_routing_stats(path, file);
  const auto back = read_routing_stats(path);
  CHECK(back.attrs.router == "topk");
  CHECK(back.attrs.git_rev == "abc123");
  CHECK(back.attrs.config_json == file.attrs.config_json);
  CHECK(back.domains == file.domains);
  REQUIRE(back.stats.layers.size() == 2);
  CHECK(back.stats.simpson_bins == 20);
  for (size_t l = 0; l < 2; ++l) {
    const auto& a = back.stats.layers[l];
    const auto& b = file.stats.layers[l];
    CHECK(a.n_tokens == b.n_tokens);
    CHECK(a.tokens_per_expert == b.tokens_per_expert);
    CHECK(a.domain_expert_tokens == b.domain_expert_tokens);
    CHECK(a.expert_coactivation == b.expert_coactivation);
    CHECK(a.token_simpson_hist == b.token_simpson_hist);
    CHECK(a.token_simpson_mean() == Approx(b.token_simpson_mean()));
  }
  REQUIRE(back.stats.trace.has_value());
  CHECK(back.stats.trace->expert_ids == file.stats.trace->expert_ids);
  fs::remove_all(dir);
}

TEST_CASE("foreign, truncated and incomplete files are refused naming the file and the problem", "[stats][hdf5]") {
  const auto dir = dirmoe::testing::fresh_test_dir("routing_bad");
  auto message_of = [](const fs::path& p) -> std::string {
    try {
      read_routing_stats(p);
    } catch (const IoError& e) {
      return e.what();
    }
    return "";
  };
  // not HDF5 at all
  {
    std::ofstream(dir / "text.h5") << "hello";
    const auto msg = message_of(dir / "text.h5");
    CHECK_THAT(msg, Catch::Contains("text.h5") && Catch::Contains("not an HDF5 file"));
  }
  // HDF5, but not ours
  {
    H5::H5File f((dir / "foreign.h5").string(), H5F_ACC_TRUNC);
    H5::DataSpace s;
    f.createGroup("data");
    f.close();
    const auto msg = message_of(dir / "foreign.h5");
    CHECK_THAT(msg, Catch::Contains("foreign.h5") && Catch::Contains("format_version"));
  }
  // truncated
  {
    write_routing_stats(dir / "full.h5", sample_file(2, 4, 3));
    const auto size = fs::file_size(dir / "full.h5");
    fs::copy_file(dir / "full.h5", dir / "cut.h5");
    fs::resize_file(dir / "cut.h5", size / 2);
    const auto msg = message_of(dir / "cut.h5");
    CHECK_THAT(msg, Catch::Contains("cut.h5") && Catch::Contains("truncated"));
  }
  // a layer missing a dataset
  {
    write_routing_stats(dir / "hole.h5", sample_file(2, 4, 3));
    H5::H5File f((dir / "hole.h5").string(), H5F_ACC_RDWR);
    f.unlink("layer_01/expert_coactivation");
    f.close();
    const auto msg = message_of(dir / "hole.h5");
    CHECK_THAT(msg, Catch::Contains("hole.h5") && Catch::Contains("missing dataset /layer_01/expert_coactivation"));
  }
  CHECK_THAT(message_of(dir / "absent.h5"), Catch::Contains("absent.h5") && Catch::Contains("no such file"));
  fs::remove_all(dir);
}
