// Every router's export loads in transformers and computes dirmoe's function: a tiny Decoder of
// each router is exported (layout "dirmoe" with configuration_dirmoe.py / modeling_dirmoe.py and
// auto_map), Python loads it with AutoModelForCausalLM(trust_remote_code=True) and runs the same
// batch; the logits agree with Decoder::forward's in eval mode to 1e-4 (max abs). This is the test
// that says when the remote code no longer follows a router's eval-time rule in C++.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../support/python_reference.h"
#include "dirmoe/eval/model_export.h"
#include "dirmoe/model/decoder.h"
#include "../support/test_files.h"

namespace fs = std::filesystem;
using namespace dirmoe;
using namespace dirmoe::eval;

namespace {

struct RouterCase {
  std::string label;
  Config config;
  int64_t step = 0;  // set_step() before export: DirMoE's τ_z and a_lo in force
};

Config tiny(const std::string& router, int64_t k) {
  Config c;
  c.router.type = router;
  c.model.vocab_size = 41;
  c.model.d_model = 32;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.d_ff = 24;
  c.model.seq_len = 16;
  c.model.n_experts = 4;
  c.model.n_experts_active = k;
  c.model.init_std = 0.25;  // routes far from ties, experts that differ
  c.router.dirmoe.alpha_hidden = 16;
  return c;
}

std::vector<RouterCase> router_cases() {
  std::vector<RouterCase> cases;
  cases.push_back({"topk k=2, not renormalised", tiny("topk", 2)});
  {
    RouterCase c{"switch with capacity factor 1 (tokens dropped)", tiny("topk", 1)};
    c.config.model.capacity_factor = 1.0;
    cases.push_back(c);
  }
  cases.push_back({"remoe", tiny("remoe", 1)});
  cases.push_back({"sparsemixer k=2", tiny("sparsemixer", 2)});
  cases.push_back({"dirmoe hard selection, step 700", tiny("dirmoe", 1), 700});
  {
    RouterCase c{"dirmoe soft selection", tiny("dirmoe", 2)};
    c.config.router.dirmoe.selection = "soft";
    cases.push_back(c);
  }
  for (const std::string weights : {"all", "dispatched"}) {
    for (const bool center : {false, true}) {
      RouterCase c{"dirmoe weights " + weights + (center ? ", centred logits" : "") + ", step 300",
                   tiny("dirmoe", 1), 300};
      c.config.router.dirmoe.weights = weights;
      c.config.router.dirmoe.center_logits = center;
      cases.push_back(c);
    }
  }
  {
    RouterCase c{"dirmoe top-k dispatch, k=2, centred logits", tiny("dirmoe", 2), 300};
    c.config.router.dirmoe.selection = "topk";
    c.config.router.dirmoe.center_logits = true;
    cases.push_back(c);
  }
  return cases;
}

}  // namespace

TEST_CASE("transformers loads every router's export and computes dirmoe's logits", "[eval][reference][export]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  const auto cases = router_cases();
  torch::manual_seed(21);
  const torch::Tensor tokens_BT = torch::randint(41, {3, 12}, torch::kInt64);
  std::vector<torch::Tensor> ours;
  std::vector<fs::path> export_dirs;
  std::string dirs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const RouterCase& rc = cases[i];
    torch::manual_seed(100 + static_cast<int64_t>(i));
    Decoder model(rc.config);
    if (rc.config.router.type == "dirmoe") {
      // a gate bias near 0 instead of τ_0·logit(k/E): tokens select none, one or several experts
      torch::NoGradGuard no_grad;
      for (auto& p : model->named_parameters()) {
        if (p.key().find("router.gate.bias") != std::string::npos) p.value().normal_(0.0, 0.5);
      }
    }
    model->set_step(rc.step);
    model->eval();
    const fs::path dir =
        fs::temp_directory_path() / ("dirmoe_export_hf_" + std::to_string(::getpid()) + "_" + std::to_string(i));
    fs::remove_all(dir);
    const ExportSummary summary = export_model(*model, rc.config, dir);
    REQUIRE(summary.layout == "dirmoe");
    REQUIRE(fs::exists(dir / "modeling_dirmoe.py"));
    REQUIRE(fs::exists(dir / "configuration_dirmoe.py"));
    const auto cfg = nlohmann::json::parse(std::ifstream(dir / "config.json"));
    CHECK(cfg.at("auto_map").at("AutoModelForCausalLM") == "modeling_dirmoe.DirmoeForCausalLM");
    CHECK(cfg.at("router_type") == rc.config.router.type);
    {
      torch::NoGradGuard no_grad;
      ours.push_back(model->forward(tokens_BT).logits_BTV.to(torch::kFloat32));
    }
    dirs += (i ? "\n" : "") + dir.string();
    export_dirs.push_back(dir);
  }
  const auto py = dirmoe::testing::run_python_reference("hf_export_logits.py",
                                                        {{"export_dirs", dirmoe::testing::bytes_tensor(dirs)}, {"tokens", tokens_BT}});
  for (size_t i = 0; i < cases.size(); ++i) {
    const torch::Tensor theirs = py.at("logits_" + std::to_string(i));
    REQUIRE(theirs.sizes() == ours[i].sizes());
    const double max_abs = (theirs - ours[i]).abs().max().item<double>();
    INFO(cases[i].label << ": max |logit difference| = " << max_abs);
    CHECK(max_abs < 1e-4);
    // the figure for docs/export.md
    std::printf("export_hf: %-48s max |dlogit| = %.3g\n", cases[i].label.c_str(), max_abs);
  }
  for (const auto& d : export_dirs) fs::remove_all(d);
}
