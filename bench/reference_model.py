"""The benchmark's model and training step in plain PyTorch (eager, or under torch.compile with
--compile), for `make bench`'s figure 1.

Written from DESIGN.md ("Model", "Routers: Top-k / Switch", the trainer's step), not from the C++
sources: a LLaMA-style decoder (RMSNorm, RoPE rotate-half, grouped-query causal attention through
F.scaled_dot_product_attention, untied head, no biases, N(0, init_std²) init) whose feed-forward is
a Switch/top-k MoE with SwiGLU experts (tokens sorted by expert, one matmul chain per expert,
weighted index_add), the Switch balance loss α·E·Σ f_e·P_e and the z-loss mean(lse²)·c_z averaged
over layers, cross-entropy, backward, clip_grad_norm_ and torch.optim.AdamW with weight decay on
matrices only. E = 1 gives the dense model. The batch is random tokens (speed does not depend on
the text).

    python bench/reference_model.py --d-model 512 --layers 4 ... --steps 6 --json out.json
    python bench/reference_model.py ... --compile --warmup 4      (compiled: more warm-up steps)

Under --compile the model's forward is compiled (the loss, backward and optimiser step stay as a
user would write them); the MoE's per-expert split sizes change every step and would recompile,
so the dispatch and the expert loop stay in eager (torch.compiler.disable) and everything else
compiles once; the warm-up steps absorb the compilation.

Prints one JSON object: median step seconds, tokens/s, peak RSS, threads, device, warm-up seconds.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn.functional as F


class Rms(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def normal(shape, std):
    return torch.nn.Parameter(torch.randn(shape) * std)


class Block(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        d, h, g, f, e = a.d_model, a.heads, a.kv_heads, a.d_ff, a.experts
        self.h, self.g, self.dh, self.k, self.e = h, g, d // h, a.k, e
        self.attn_norm, self.ffn_norm = Rms(d, 1e-5), Rms(d, 1e-5)
        s = a.init_std
        self.wq, self.wk = normal((h * self.dh, d), s), normal((g * self.dh, d), s)
        self.wv, self.wo = normal((g * self.dh, d), s), normal((d, h * self.dh), s)
        self.router = normal((e, d), s)
        self.w_gate, self.w_up, self.w_down = normal((e, d, f), s), normal((e, d, f), s), normal((e, f, d), s)

    def attention(self, x, cos, sin):
        b, t, _ = x.shape
        q = F.linear(x, self.wq).view(b, t, self.h, self.dh).transpose(1, 2)
        k = F.linear(x, self.wk).view(b, t, self.g, self.dh).transpose(1, 2)
        v = F.linear(x, self.wv).view(b, t, self.g, self.dh).transpose(1, 2)

        def rope(z):
            z1, z2 = z.chunk(2, dim=-1)
            return z * cos + torch.cat((-z2, z1), dim=-1) * sin

        o = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True, enable_gqa=self.g != self.h)
        return F.linear(o.transpose(1, 2).reshape(b, t, self.h * self.dh), self.wo)

    def moe(self, x):
        n = x.shape[0]
        logits = x @ self.router.t()
        probs = logits.softmax(-1)
        top_p, top_i = probs.topk(self.k, dim=-1)
        # Switch balance loss and z-loss (DESIGN.md): α·E·Σ f_e·P_e, mean(logsumexp²)
        mask = torch.zeros_like(probs).scatter(1, top_i, 1.0)
        f_e = mask.sum(0) / (n * self.k)
        balance = 1e-2 * self.e * (f_e * probs.mean(0)).sum()
        z = 1e-3 * torch.logsumexp(logits, -1).pow(2).mean()
        return self.experts(x, top_p, top_i), balance, z

    # NOTE: torch.compile cannot trace the data-dependent split sizes (bincount → tolist): it
    # breaks the graph there and recompiles the rest for every new set of sizes. Left in eager
    # (a no-op without --compile), the dispatch stays as written and every other part of the block
    # compiles once.
    @torch.compiler.disable
    def experts(self, x, top_p, top_i):
        # dispatch: (token, choice) pairs sorted by expert
        flat_e = top_i.reshape(-1)
        order = torch.argsort(flat_e, stable=True)
        token = order // self.k
        counts = torch.bincount(flat_e, minlength=self.e).tolist()
        xs = x.index_select(0, token).split(counts)
        ys = []
        for e, xe in enumerate(xs):
            if xe.shape[0] == 0:
                continue
            ys.append((F.silu(xe @ self.w_gate[e]) * (xe @ self.w_up[e])) @ self.w_down[e])
        y = torch.cat(ys) * top_p.reshape(-1)[order].unsqueeze(1)
        # under bf16 autocast y is bf16 and x float32; index_add wants one dtype
        return torch.zeros_like(x).index_add(0, token, y.to(x.dtype))

    def forward(self, x, cos, sin):
        x = x + self.attention(self.attn_norm(x), cos, sin)
        b, t, d = x.shape
        y, balance, z = self.moe(self.ffn_norm(x).reshape(b * t, d))
        return x + y.view(b, t, d), balance, z


class Decoder(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embedding = normal((a.vocab, a.d_model), a.init_std)
        self.blocks = torch.nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = Rms(a.d_model, 1e-5)
        self.head = normal((a.vocab, a.d_model), a.init_std)
        dh = a.d_model // a.heads
        inv = 10000.0 ** (-2.0 * torch.arange(dh // 2, dtype=torch.float64) / dh)
        ang = torch.arange(a.seq_len, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), -1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.embedding[tokens]
        aux = 0.0
        for block in self.blocks:
            x, balance, z = block(x, self.cos[:t], self.sin[:t])
            aux = aux + balance + z
        return F.linear(self.norm(x), self.head), aux / len(self.blocks)


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    p = argparse.ArgumentParser()
    for name, default in (("d-model", 512), ("layers", 4), ("heads", 8), ("kv-heads", 4), ("d-ff", 1024),
                          ("experts", 8), ("k", 1), ("vocab", 8192), ("seq-len", 256), ("batch", 8),
                          ("threads", 0), ("steps", 6), ("warmup", 2)):
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--init-std", type=float, default=0.02)
    p.add_argument("--compile", action="store_true",
                   help="run the model under torch.compile (default backend, inductor); the warm-up steps "
                        "then include the compilation")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default="")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    model = Decoder(a).to(device)
    forward = torch.compile(model) if a.compile else model
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
    bf16 = device.type == "cuda"

    def step():
        batch = torch.randint(a.vocab, (a.batch, a.seq_len + 1)).to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, aux = forward(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, a.vocab), batch[:, 1:].reshape(-1)) + aux.float()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    warmup_seconds = 0.0
    for i in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
        else:
            warmup_seconds += time.perf_counter() - t0
    step_s = statistics.median(times)
    out = {
        "step_seconds": step_s,
        "step_seconds_all": times,
        "tokens_per_s": a.batch * a.seq_len / step_s,
        "peak_rss_bytes": peak_rss_bytes(),
        "cuda_max_allocated_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
        "parameters": sum(q.numel() for q in model.parameters()),
        "compiled": a.compile,
        "warmup_seconds": warmup_seconds,
    }
    text = json.dumps(out)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
