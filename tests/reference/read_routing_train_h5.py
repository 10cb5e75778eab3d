"""Independent h5py reader of routing_train.h5 (the training time series).

Input: `paths` (uint8 tensor of newline-separated file names). Returns, under "<i>/" for the i-th
file, the first `rows` (the /train attribute) rows of /train/step, /train/n_tokens and each layer's
load, active_experts and token_simpson, after checking the documented shapes."""
import h5py
import torch

from exchange import load_inputs, save_outputs


def read(path, prefix, out):
    with h5py.File(path, "r") as f:
        L = int(f.attrs["n_layers"])
        E = int(f.attrs["n_experts"])
        t = f["train"]
        n = int(t.attrs["rows"])
        assert t["step"].maxshape == (None,), "step must be extendible"
        assert t["step"].shape[0] >= n and t["n_tokens"].shape[0] >= n
        out[prefix + "step"] = torch.from_numpy(t["step"][:n])
        out[prefix + "n_tokens"] = torch.from_numpy(t["n_tokens"][:n])
        for layer in range(L):
            g = t[f"layer_{layer:02d}"]
            assert g["load"].shape[1] == E and g["load"].shape[0] >= n, f"{path}: layer {layer} load {g['load'].shape}"
            assert g["active_experts"].shape[0] >= n and g["token_simpson"].shape[0] >= n
            for name in ["load", "active_experts", "token_simpson"]:
                out[f"{prefix}{layer}/{name}"] = torch.from_numpy(g[name][:n])


inputs = load_inputs()
paths = bytes(inputs["paths"].tolist()).decode().split("\n")
out = {}
for i, path in enumerate(paths):
    read(path, f"{i}/", out)
save_outputs(out)
