"""Reads a safetensors file written by dirmoe with the `safetensors` package and returns every
tensor (as float64 for float dtypes) plus its metadata key count, so the C++ test can compare
against the tensors it wrote. Input: path (uint8 bytes of the file path)."""
import torch
from safetensors import safe_open

from exchange import load_inputs, save_outputs

inputs = load_inputs()
path = bytes(inputs["path"].tolist()).decode()
out = {}
with safe_open(path, framework="pt") as f:
    meta = f.metadata() or {}
    for name in f.keys():
        out["t." + name] = f.get_tensor(name)
out["n_metadata"] = torch.tensor(len(meta))
out["meta_ok"] = torch.tensor(meta.get("dirmoe_test") == "yes")
save_outputs(out)
