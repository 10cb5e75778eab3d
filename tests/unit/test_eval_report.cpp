// Eval JSON and markdown tables, and the export name mapping.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/eval/eval_report.h"
#include "dirmoe/eval/model_export.h"

using namespace dirmoe::eval;

TEST_CASE("report JSON and tables carry metrics, stderr, n and prompt version", "[eval]") {
  TaskResult r;
  r.name = "arc_easy";
  r.prompt_version = "lm-eval-harness-0.4.13:arc_easy:1.0+dirmoe.1";
  r.n = 4;
  r.metrics["acc"] = {0.5, 0.28867513};
  r.metrics["acc_norm"] = {0.75, 0.25};
  nlohmann::json a;
  a["tasks"]["arc_easy"] = task_result_json(r);
  CHECK(a["tasks"]["arc_easy"]["metrics"]["acc"]["stderr"].get<double>() == Approx(0.28867513));
  CHECK(a["tasks"]["arc_easy"]["prompt_version"] == r.prompt_version);
  const std::string md = report_markdown(a);
  CHECK(md.find("| arc_easy | 4 | acc | 0.5000 ± 0.2887 |") != std::string::npos);
  nlohmann::json b = a;
  b["tasks"]["arc_easy"]["metrics"]["acc"]["value"] = 0.25;
  b["tasks"]["boolq"] = task_result_json(r);
  const std::string side = side_by_side_markdown({{"switch", a}, {"dirmoe", b}});
  CHECK(side.find("| task | metric | switch | dirmoe |") != std::string::npos);
  CHECK(side.find("| arc_easy | acc | 0.5000 ± 0.2887 | 0.2500 ± 0.2887 |") != std::string::npos);
  CHECK(side.find("| boolq | acc | – | 0.5000 ± 0.2887 |") != std::string::npos);
}

TEST_CASE("export layout follows the router", "[eval]") {
  dirmoe::Config c;
  c.router.type = "topk";
  c.router.topk.renormalize = true;
  CHECK(export_layout(c) == "mixtral");
  c.router.topk.renormalize = false;
  CHECK(export_layout(c) == "dirmoe");
  c.model.n_experts = 1;
  CHECK(export_layout(c) == "llama");
  c.router.type = "dirmoe";
  CHECK(export_layout(c) == "dirmoe");
}

TEST_CASE("mixtral export transposes experts into (out, in) Linear weights", "[eval]") {
  dirmoe::Config c;
  c.model.n_layers = 1;
  c.model.n_experts = 2;
  c.model.d_model = 4;
  c.model.d_ff = 3;
  std::map<std::string, torch::Tensor> named;
  for (const char* n : {"tok_embedding", "head", "final_norm.weight", "layers.0.attn_norm.weight",
                        "layers.0.ffn_norm.weight", "layers.0.attention.wq", "layers.0.attention.wk",
                        "layers.0.attention.wv", "layers.0.attention.wo", "layers.0.moe.router.weight"}) {
    named[n] = torch::randn({2});
  }
  named["layers.0.moe.experts.w_gate"] = torch::randn({2, 4, 3});
  named["layers.0.moe.experts.w_up"] = torch::randn({2, 4, 3});
  named["layers.0.moe.experts.w_down"] = torch::randn({2, 3, 4});
  auto out = export_tensors(named, c, "mixtral");
  std::map<std::string, torch::Tensor> m(out.begin(), out.end());
  CHECK(torch::equal(m.at("model.layers.0.block_sparse_moe.experts.1.w1.weight"),
                     named["layers.0.moe.experts.w_gate"][1].t()));
  CHECK(torch::equal(m.at("model.layers.0.block_sparse_moe.experts.0.w2.weight"),
                     named["layers.0.moe.experts.w_down"][0].t()));
  CHECK(torch::equal(m.at("model.layers.0.block_sparse_moe.experts.1.w3.weight"),
                     named["layers.0.moe.experts.w_up"][1].t()));
  CHECK(m.count("lm_head.weight") == 1);
  CHECK(out.size() == 1 + 6 + 1 + 2 * 3 + 2);
  named.erase("head");
  CHECK_THROWS_WITH(export_tensors(named, c, "mixtral"), Catch::Contains("\"head\""));
  auto cfg = export_config_json(c, "mixtral");
  CHECK(cfg["model_type"] == "mixtral");
  CHECK(cfg["num_local_experts"] == 2);
}
