# Configuration of a dirmoe decoder exported by `dirmoe-eval export` (docs/export.md), for
# transformers' AutoConfig with trust_remote_code=True. Written by dirmoe beside config.json;
# the model itself is in modeling_dirmoe.py.
#
# The fields mirror dirmoe's ModelConfig (lib/include/dirmoe/config/config.h) under Hugging Face
# names, plus `router_type` and `router_eval`: the constants of the router's eval-time rule as
# the exported checkpoint computes it (for DirMoE the schedule values τ_z and a_lo in force, which
# depend on the step the checkpoint was loaded at, not only on the config).
from transformers import PretrainedConfig


class DirmoeConfig(PretrainedConfig):
    """LLaMA-style decoder with a MoE feed-forward in every layer (DESIGN.md "Model").

    router_type: "topk" | "remoe" | "sparsemixer" | "dirmoe".
    router_eval (dict), by router:
      topk        {"renormalize": bool}
      remoe       {}
      sparsemixer {"jitter_eps": float}
      dirmoe      {"selection": "hard"|"soft", "tau": float, "a_lo": float, "alpha_eps": float,
                   "lambda_q": float, "theta_mix": float, "alpha_hidden": int}
    capacity_factor: 0 is dropless; > 0 keeps each expert's first ceil(cf·N·k/E) of the N tokens
    of a forward call (batch × positions, padding included), as dirmoe's MoE layer does.
    """

    model_type = "dirmoe"

    def __init__(
        self,
        vocab_size=0,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        num_local_experts=8,
        num_experts_per_tok=1,
        capacity_factor=0.0,
        router_type="dirmoe",
        router_eval=None,
        initializer_range=0.01,
        tie_word_embeddings=False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = hidden_size // num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.num_local_experts = num_local_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.capacity_factor = capacity_factor
        self.router_type = router_type
        self.router_eval = dict(router_eval or {})
        self.initializer_range = initializer_range
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
