// FLOPs per token against a hand count.
#include <catch2/catch.hpp>

#include "dirmoe/model/flops.h"

using namespace dirmoe;

TEST_CASE("FLOPs per token equal a hand count", "[model][flops]") {
  ModelConfig m;
  m.vocab_size = 37;
  m.d_model = 16;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;  // d_head 4: q width 16, k/v width 8
  m.d_ff = 24;
  m.seq_len = 8;
  const FlopsPerToken f = flops_per_token(m, {1.0, 2.5}, router_forward_flops(/*gate 4×16=*/64));
  // per layer: q 2·16·16 = 512, k+v 2·(2·16·8) = 512, o 512
  CHECK(f.attention_projections == 2 * 1536.0);
  // per layer: QKᵀ and AV, 2·16·8 each
  CHECK(f.attention_scores == 2 * 512.0);
  // (1 + 2.5) experts · 3 matrices · 2·16·24
  CHECK(f.experts == 3.5 * 3 * 768.0);
  CHECK(f.router == 2 * 128.0);
  CHECK(f.head == 2 * 16 * 37.0);
  CHECK(f.forward() == 13600.0);
  CHECK(f.training() == 40800.0);
  // An explicit context overrides model.seq_len: only the scores change.
  CHECK(flops_per_token(m, {1.0, 2.5}, 128.0, 16).attention_scores == 2 * 1024.0);
  CHECK_THROWS(flops_per_token(m, {1.0}, 0.0));
}
