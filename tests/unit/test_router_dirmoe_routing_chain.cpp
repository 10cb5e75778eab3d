// DirMoE's routing chain node (dirmoe_routing_chain.h): its outputs and its hand-written gradients
// against the same formulas written as torch operators in this file and differentiated by autograd,
// with the losses' path computed from x.detach() (aux_detach_input) or from x, for the CPU loops and
// for the operators' path the GPU runs. The router's end-to-end check against the Python reference is
// test_router_dirmoe.cpp.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/router_test_util.h"
#include "dirmoe/router/dirmoe_routing_chain.h"

using dirmoe::DirmoeChainConstants;
using dirmoe::DirmoeChainParameters;
using dirmoe::testing::scaled_max_abs_diff;

// a named namespace: the test sources are compiled in unity batches, where anonymous ones merge
namespace routing_chain_test {

constexpr int64_t kTokens = 613, kModel = 6, kExperts = 5, kHidden = 7;

struct Inputs {
  torch::Tensor x_TD, noise_TE, gamma_TE, dgamma_TE;
  std::vector<torch::Tensor> parameters;  // gate W, b, hidden W, b, lo W, b, hi W, b
};

/// `hi_bias` is one α_hi head's bias: beyond softplus's threshold of 20 for most tokens (at 100, exp
/// overflows float32: the threshold is what keeps α^q finite there).
Inputs make_inputs(uint64_t seed, double hi_bias = 30.0) {
  torch::manual_seed(seed);
  const auto f64 = torch::kFloat64;
  Inputs in;
  in.x_TD = torch::randn({kTokens, kModel}, f64);
  in.noise_TE = torch::logit(torch::rand({kTokens, kExperts}, f64) * 0.98 + 0.01);
  in.parameters = {torch::randn({kExperts, kModel}, f64),  torch::randn({kExperts}, f64) - 1.0,
                   torch::randn({kHidden, kModel}, f64),   torch::randn({kHidden}, f64),
                   torch::randn({kExperts, kHidden}, f64), torch::randn({kExperts}, f64),
                   torch::randn({kExperts, kHidden}, f64), torch::randn({kExperts}, f64)};
  in.parameters[7][2] = hi_bias;
  // draws for α^q are made where α^q is known; fixed draws keep both sides on the same γ
  in.gamma_TE = torch::rand({kTokens, kExperts}, f64) * 2.0 + 0.05;
  in.dgamma_TE = torch::rand({kTokens, kExperts}, f64) + 0.1;
  return in;
}

struct Outputs {
  torch::Tensor scores, r_lm, logits, z, alpha_q, r;
};

/// The chain written as operators (dirmoe_router.h's formulas), the losses' path from x.detach()
/// unless the losses reach x. γ's gradient with respect to α^q is dgamma, as the implicit
/// reparameterisation gives it: γ = sg(γ) + dgamma·(α^q − sg(α^q)).
Outputs reference_chain(const torch::Tensor& x_TD, const std::vector<torch::Tensor>& w, const Inputs& in,
                        const DirmoeChainConstants& c) {
  // With alpha_mlp_bf16, W_h·x from bf16 operands into a bf16 product, differentiated by autograd: one
  // product serves both paths, its weight gradient from both paths' gradients summed (to_weight), x's
  // from the LM path's alone unless the losses reach x (to_x; the same value).
  auto bf16_product = [](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::matmul(a.to(torch::kBFloat16), b.to(torch::kBFloat16).t()).to(a.scalar_type());
  };
  torch::Tensor to_weight, to_x;
  if (c.alpha_mlp_bf16) {
    to_weight = bf16_product(x_TD.detach(), w[2]);
    to_x = bf16_product(x_TD, w[2].detach());
  }
  auto path = [&](const torch::Tensor& x, bool lm) {
    Outputs o;
    const torch::Tensor linear = torch::matmul(x, w[0].t());
    o.logits = (c.center_logits ? linear - linear.mean(1, true) : linear) + w[1];
    o.scores = o.logits + in.noise_TE;
    o.z = torch::sigmoid(o.scores / c.tau);
    const torch::Tensor product = !c.alpha_mlp_bf16 ? torch::matmul(x, w[2].t())
                                  : lm                ? to_weight + (to_x - to_x.detach())
                                                      : to_weight;
    const torch::Tensor hidden = torch::silu(product + w[3]);
    const torch::Tensor alpha_lo = torch::softplus(torch::matmul(hidden, w[4].t()) + w[5]) + c.alpha_lo_offset;
    const torch::Tensor alpha_hi = alpha_lo + torch::softplus(torch::matmul(hidden, w[6].t()) + w[7]) + c.alpha_eps;
    o.alpha_q = c.lambda_q * (o.z * alpha_hi + (1.0 - o.z) * alpha_lo);
    const torch::Tensor gamma = in.gamma_TE + in.dgamma_TE * (o.alpha_q - o.alpha_q.detach());
    torch::Tensor theta = gamma / gamma.sum(1, true);
    if (c.theta_mix > 0) theta = (1.0 - c.theta_mix) * theta + c.theta_mix / static_cast<double>(kExperts);
    const torch::Tensor weighted = o.z * theta;
    o.r = weighted / weighted.sum(1, true);
    return o;
  };
  const Outputs lm = path(x_TD, true);
  Outputs out = c.losses_reach_input ? lm : path(x_TD.detach(), false);
  out.r_lm = lm.r;
  return out;
}

/// Which outputs the probe loss reads.
enum class Probed { all, lm_only, losses_only };

/// Σ over the outputs of a fixed random weighting (float64 weights, so that a float32 run and its
/// float64 reference see the same loss): one backward pass sends a gradient into each.
torch::Tensor probe_loss(const Outputs& o, uint64_t seed, Probed probed) {
  torch::manual_seed(seed);
  auto probe = [&](const torch::Tensor& t) {
    return (torch::randn(t.sizes(), torch::kFloat64).to(t.scalar_type()) * t).sum();
  };
  torch::Tensor loss;
  if (probed != Probed::losses_only) loss = probe(o.r_lm);
  if (probed == Probed::lm_only) return loss;
  const torch::Tensor losses = probe(o.logits) + probe(o.z) + probe(o.alpha_q) + probe(o.r);
  return loss.defined() ? loss + losses : losses;
}

/// The node against the operators' reference in float64. With dtype float32 the node runs on the
/// inputs rounded to float32 and is compared with the float64 reference of those inputs at `tolerance`.
void check_chain(const DirmoeChainConstants& c, Probed probed, uint64_t seed,
                 torch::ScalarType dtype = torch::kFloat64, double hi_bias = 30.0, double tolerance = 1e-10) {
  Inputs in = make_inputs(seed, hi_bias);
  if (dtype != torch::kFloat64) {
    for (torch::Tensor* t : {&in.x_TD, &in.noise_TE, &in.gamma_TE, &in.dgamma_TE}) *t = t->to(dtype).to(torch::kFloat64);
    for (auto& p : in.parameters) p = p.to(dtype).to(torch::kFloat64);
  }
  auto leaves = [&](torch::ScalarType type) {
    std::vector<torch::Tensor> leaves;
    leaves.push_back(in.x_TD.to(type).clone().requires_grad_(true));
    for (const auto& p : in.parameters) leaves.push_back(p.to(type).clone().requires_grad_(true));
    return leaves;
  };
  const std::vector<torch::Tensor> ref_leaves = leaves(torch::kFloat64);
  const Outputs ref = reference_chain(ref_leaves[0], {ref_leaves.begin() + 1, ref_leaves.end()}, in, c);
  probe_loss(ref, seed + 100, probed).backward();

  const std::vector<torch::Tensor> node_leaves = leaves(dtype);
  const DirmoeChainParameters p{node_leaves[1], node_leaves[2], node_leaves[3], node_leaves[4],
                                node_leaves[5], node_leaves[6], node_leaves[7], node_leaves[8]};
  bool draw_saw_a_gradient = true;
  const dirmoe::GammaDrawFunction draw = [&](const torch::Tensor& alpha_q_TE) {
    draw_saw_a_gradient = alpha_q_TE.requires_grad() || torch::GradMode::is_enabled();
    return std::make_pair(in.gamma_TE.to(dtype), in.dgamma_TE.to(dtype));
  };
  const dirmoe::DirmoeChainOutput out = dirmoe::dirmoe_routing_chain(node_leaves[0], p, in.noise_TE.to(dtype), draw, c);
  CHECK_FALSE(draw_saw_a_gradient);
  CHECK_FALSE(out.scores_TE.requires_grad());
  const Outputs node{out.scores_TE, out.r_lm_TE, out.logits_TE, out.z_soft_TE, out.alpha_q_TE, out.r_TE};
  probe_loss(node, seed + 100, probed).backward();

  const double value_tolerance = dtype == torch::kFloat64 ? 1e-12 : tolerance;
  for (const auto& [name, a, b] : std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor>>{
           {"scores", node.scores, ref.scores}, {"logits", node.logits, ref.logits}, {"z", node.z, ref.z},
           {"alpha_q", node.alpha_q, ref.alpha_q}, {"r_lm", node.r_lm, ref.r_lm}, {"r", node.r, ref.r}}) {
    INFO("output " << name);
    CHECK(torch::isfinite(a).all().item<bool>());
    CHECK(scaled_max_abs_diff(a, b) < value_tolerance);
  }
  const char* names[] = {"x", "gate.weight", "gate.bias", "hidden.weight", "hidden.bias",
                         "lo.weight", "lo.bias", "hi.weight", "hi.bias"};
  for (size_t i = 0; i < ref_leaves.size(); ++i) {
    INFO("gradient of " << names[i]);
    // the losses' path alone on x detached: x gets no gradient at all (not a tensor of zeros)
    REQUIRE(node_leaves[i].grad().defined() == ref_leaves[i].grad().defined());
    if (!ref_leaves[i].grad().defined()) continue;
    CHECK(scaled_max_abs_diff(node_leaves[i].grad(), ref_leaves[i].grad()) < tolerance);
  }
}

}  // namespace routing_chain_test

using routing_chain_test::check_chain;
using routing_chain_test::Probed;
using routing_chain_test::Inputs;
using routing_chain_test::make_inputs;

TEST_CASE("dirmoe routing chain: outputs and gradients equal autograd through the operators", "[router][dirmoe]") {
  DirmoeChainConstants c = dirmoe::testing::nondefault_chain_constants();
  c.element_loops = GENERATE(true, false);
  INFO("per-token loops: " << c.element_loops);
  SECTION("losses on x detached, centred logits") {
    c.losses_reach_input = false;
    check_chain(c, Probed::all, 1);
  }
  SECTION("losses reaching x, logits not centred, no uniform mix") {
    c.losses_reach_input = true;
    c.center_logits = false;
    c.theta_mix = 0.0;
    check_chain(c, Probed::all, 2);
  }
  SECTION("losses on x detached, logits not centred") {
    c.losses_reach_input = false;
    c.center_logits = false;
    check_chain(c, Probed::all, 6);
  }
  SECTION("a gradient on the LM path's r alone, losses on x detached and attached") {
    c.losses_reach_input = false;
    check_chain(c, Probed::lm_only, 3);
    c.losses_reach_input = true;
    check_chain(c, Probed::lm_only, 7);
  }
  SECTION("a gradient on the losses' outputs alone, losses on x detached and attached") {
    c.losses_reach_input = false;
    check_chain(c, Probed::losses_only, 8);
    c.losses_reach_input = true;
    check_chain(c, Probed::losses_only, 9);
  }
  SECTION("float32, one α_hi pre-activation at 100 (exp overflows float32 without softplus's threshold)") {
    c.losses_reach_input = false;
    check_chain(c, Probed::all, 10, torch::kFloat32, 100.0, 2e-4);
  }
  SECTION("the α MLP's hidden layer in bf16: every probe, losses on x detached and attached") {
    c.alpha_mlp_bf16 = true;
    uint64_t seed = 11;
    for (const bool reach : {false, true}) {
      c.losses_reach_input = reach;
      for (const Probed probed : {Probed::all, Probed::lm_only, Probed::losses_only}) {
        INFO("losses reach x: " << reach << ", probe " << static_cast<int>(probed));
        check_chain(c, probed, seed++);
      }
    }
  }
}

TEST_CASE("dirmoe routing chain, α MLP in bf16: x without a gradient and a frozen hidden layer", "[router][dirmoe]") {
  // The gradients wanted are computed and the others left undefined; those computed equal the ones
  // of a run that wants every gradient.
  const Inputs in = make_inputs(21);
  DirmoeChainConstants c;
  c.alpha_mlp_bf16 = true;
  const dirmoe::GammaDrawFunction draw = [&](const torch::Tensor&) { return std::make_pair(in.gamma_TE, in.dgamma_TE); };
  auto run = [&](bool x_grad, bool hidden_grad) {
    std::vector<torch::Tensor> w;
    for (size_t i = 0; i < in.parameters.size(); ++i) {
      w.push_back(in.parameters[i].clone().requires_grad_(i != 2 || hidden_grad));
    }
    const torch::Tensor x = in.x_TD.clone().requires_grad_(x_grad);
    const DirmoeChainParameters p{w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]};
    const dirmoe::DirmoeChainOutput out = dirmoe::dirmoe_routing_chain(x, p, in.noise_TE, draw, c);
    (out.r_lm_TE.square().sum() + out.alpha_q_TE.sum() + out.r_TE.sum()).backward();
    w.push_back(x);
    return w;
  };
  const std::vector<torch::Tensor> all = run(true, true), frozen = run(false, false);
  CHECK_FALSE(frozen[8].grad().defined());  // x
  CHECK_FALSE(frozen[2].grad().defined());  // the hidden layer's weight
  for (const size_t i : {0, 1, 3, 4, 5, 6, 7}) {
    INFO("parameter " << i);
    REQUIRE(frozen[i].grad().defined());
    CHECK(torch::equal(frozen[i].grad(), all[i].grad()));
  }
}

TEST_CASE("dirmoe routing chain: the CPU loops give the same values and gradients at 1 and 3 threads",
          "[router][dirmoe]") {
  // T = 613 tokens: three blocks of the loops' 256-row grain, so 3 threads split them
  const Inputs in = make_inputs(4);
  DirmoeChainConstants c;
  const dirmoe::GammaDrawFunction draw = [&](const torch::Tensor&) { return std::make_pair(in.gamma_TE, in.dgamma_TE); };
  const int before = at::get_num_threads();
  std::vector<torch::Tensor> r, grad_x, grad_hidden;
  for (const int threads : {1, 3}) {
    at::set_num_threads(threads);
    std::vector<torch::Tensor> w;
    for (const auto& p : in.parameters) w.push_back(p.clone().requires_grad_(true));
    const torch::Tensor x = in.x_TD.clone().requires_grad_(true);
    const dirmoe::DirmoeChainOutput out = dirmoe::dirmoe_routing_chain(
        x, DirmoeChainParameters{w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]}, in.noise_TE, draw, c);
    (out.r_lm_TE.square().sum() + out.alpha_q_TE.sum() + out.r_TE.log().sum()).backward();
    r.push_back(out.r_lm_TE);
    grad_x.push_back(x.grad());
    grad_hidden.push_back(w[2].grad());
  }
  at::set_num_threads(before);
  CHECK(torch::equal(r[0], r[1]));
  // the loops are per token; the GEMMs and reductions around them may add in another order
  CHECK(scaled_max_abs_diff(grad_x[1], grad_x[0]) < 1e-12);
  CHECK(scaled_max_abs_diff(grad_hidden[1], grad_hidden[0]) < 1e-12);
}

TEST_CASE("dirmoe routing chain: bad shapes and dtypes are refused with their names", "[router][dirmoe]") {
  const Inputs in = make_inputs(5);
  const DirmoeChainParameters p{in.parameters[0], in.parameters[1], in.parameters[2], in.parameters[3],
                                in.parameters[4], in.parameters[5], in.parameters[6], in.parameters[7]};
  const dirmoe::GammaDrawFunction draw = [&](const torch::Tensor&) { return std::make_pair(in.gamma_TE, in.dgamma_TE); };
  CHECK_THROWS_WITH(dirmoe::dirmoe_routing_chain(in.x_TD, p, in.noise_TE.narrow(0, 0, 3), draw, {}),
                    Catch::Contains("noise has shape"));
  CHECK_THROWS_WITH(dirmoe::dirmoe_routing_chain(in.x_TD.to(torch::kBFloat16), p, in.noise_TE, draw, {}),
                    Catch::Contains("float32 or float64"));
  CHECK_THROWS_WITH(dirmoe::dirmoe_routing_chain(in.x_TD.to(torch::kFloat32), p, in.noise_TE, draw, {}),
                    Catch::Contains("x's dtype"));
}
