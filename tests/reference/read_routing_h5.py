"""Independent reader of routing.h5 (DESIGN.md "Routing statistics (HDF5)") with h5py.

Input: `path` (uint8 tensor holding the file name). Checks the schema (attributes, dataset names,
shapes, dtypes) and returns every dataset as a tensor, plus the Simpson figures recomputed here from
the raw counts. Failures raise, which fails the C++ test with this script's message."""
import h5py
import numpy as np
import torch

from exchange import load_inputs, save_outputs

inputs = load_inputs()
path = bytes(inputs["path"].tolist()).decode()

out = {}
with h5py.File(path, "r") as f:
    for attr in ["format_version", "router", "n_layers", "n_experts", "k_target", "step", "config", "git_rev"]:
        assert attr in f.attrs, f"missing root attribute {attr}"
    assert int(f.attrs["format_version"]) == 1
    L = int(f.attrs["n_layers"])
    E = int(f.attrs["n_experts"])
    for name in ["format_version", "n_layers", "n_experts", "k_target", "step"]:
        out["attr_" + name] = torch.tensor(int(f.attrs[name]))
    out["router_len"] = torch.tensor(len(f.attrs["router"]))
    out["router"] = torch.tensor(list(f.attrs["router"].encode()), dtype=torch.uint8)
    out["config"] = torch.tensor(list(f.attrs["config"].encode()), dtype=torch.uint8)
    domains = [d.decode() if isinstance(d, bytes) else d for d in f["domains"][...]]
    Dn = len(domains)
    out["domains"] = torch.tensor(list("\n".join(domains).encode()), dtype=torch.uint8)

    expected = {
        "tokens_per_expert": ((E,), np.int64),
        "weight_per_expert": ((E,), np.float64),
        "active_experts_hist": ((E + 1,), np.int64),
        "domain_expert_tokens": ((Dn, E), np.float64),
        "expert_coactivation": ((E, E), np.int64),
        "expert_domain_simpson": ((E,), np.float64),
        "expert_domain_simpson_normalized": ((E,), np.float64),
        "domain_expert_simpson": ((Dn,), np.float64),
    }
    for layer in range(L):
        g = f[f"layer_{layer:02d}"]
        for name, (shape, dtype) in expected.items():
            ds = g[name]
            assert ds.shape == shape, f"layer {layer} {name}: shape {ds.shape}, expected {shape}"
            assert ds.dtype == dtype, f"layer {layer} {name}: dtype {ds.dtype}, expected {dtype}"
            out[f"{layer}/{name}"] = torch.from_numpy(ds[...].copy())
        ts = g["token_simpson"]
        assert ts.ndim == 1 and ts.dtype == np.int64
        out[f"{layer}/token_simpson"] = torch.from_numpy(ts[...].copy())
        out[f"{layer}/token_simpson_mean"] = torch.tensor(float(ts.attrs["mean"]), dtype=torch.float64)
        out[f"{layer}/n_tokens"] = torch.tensor(int(g.attrs["n_tokens"]))
        # recomputed from the raw matrix, from the definitions
        M = g["domain_expert_tokens"][...]
        col = M.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_d_given_e = M / col[None, :]
            s_e = (p_d_given_e ** 2).sum(axis=0)
            s_e_norm = (s_e - 1.0 / Dn) / (1.0 - 1.0 / Dn)
            p_e_given_d = M / M.sum(axis=1, keepdims=True)
            s_d = (p_e_given_d ** 2).sum(axis=1)
        out[f"{layer}/ref_expert_domain_simpson"] = torch.from_numpy(s_e)
        out[f"{layer}/ref_expert_domain_simpson_normalized"] = torch.from_numpy(s_e_norm)
        out[f"{layer}/ref_domain_expert_simpson"] = torch.from_numpy(s_d)
    if "trace" in f:
        t = f["trace"]
        for name, dtype in [("token_ids", np.int64), ("domain_ids", np.int32), ("expert_ids", np.int16),
                            ("weights", np.float32)]:
            ds = t[name]
            assert ds.dtype == dtype, f"trace {name}: dtype {ds.dtype}"
            assert ds.chunks is not None and ds.compression == "gzip", f"trace {name} is not chunked + gzip"
            out["trace/" + name] = torch.from_numpy(ds[...].astype(np.int64 if dtype != np.float32 else np.float32))
        assert t["expert_ids"].shape[0] == L and t["expert_ids"].shape[1] == t["token_ids"].shape[0]

save_outputs(out)
