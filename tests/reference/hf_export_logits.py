"""Logits of exported checkpoints as transformers computes them (dirmoe-eval export, layout dirmoe).

Loads each export directory with AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)
(the configuration_dirmoe.py / modeling_dirmoe.py written beside the weights, nothing of dirmoe
imported) and runs the same token batch through it.

Inputs: export_dirs (uint8 bytes: directories separated by '\\n'), tokens (B, T) int64.
Outputs: logits_<i> (B, T, V) float32 for the i-th directory."""
import os
import tempfile

# No hub access, and the remote code is copied into a fresh module cache (not ~/.cache).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="dirmoe_hf_home_")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from exchange import load_inputs, save_outputs  # noqa: E402


def main():
    inputs = load_inputs()
    dirs = bytes(inputs["export_dirs"].tolist()).decode().split("\n")
    tokens = inputs["tokens"]
    out = {}
    for i, d in enumerate(dirs):
        model = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=True)
        model.eval()
        with torch.no_grad():
            out[f"logits_{i}"] = model(tokens).logits.float()
    save_outputs(out)


main()
