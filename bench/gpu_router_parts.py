"""What the pieces of DirMoE's router cost on a CUDA device at the 185M recipe's shapes, one layer's
forward+backward each, timed with CUDA events (median of --repeats): the float32 GEMM that the gate
and the α MLP's first layer share (and the same GEMM in TF32 and bf16, for what a lower precision
would save), the reconstruction decoder with its loss over [T, D], and one element-wise kernel
on a [T, E] tensor (the router's many small operations; multiply by their count from
`bench_suite profile --layer` and bench/profile_summary.py). Python's torch computes each piece
from scratch, independently of the toolkit; the figures say where the toolkit's DirMoE-over-Switch
step time can go, not what it is.

    python3 bench/gpu_router_parts.py [--tokens 32768] [--d-model 768] [--hidden 256] [--experts 8]

Prints one JSON object: milliseconds per layer and per step (× --layers) for each piece.
"""
import argparse
import json
import statistics

import torch


def time_ms(fn, repeats, warmup=3):
    """Median CUDA-event time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=32768, help="tokens per layer forward (batch × sequence)")
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--hidden", type=int, default=256, help="the α MLP's hidden units")
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_router_parts: no CUDA device")
    dev = torch.device("cuda")
    T, D, H, E = args.tokens, args.d_model, args.hidden, args.experts
    gen = torch.Generator(device=dev).manual_seed(0)
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "tokens": T, "d_model": D, "hidden": H, "experts": E, "layers": args.layers, "ms_per_layer": {}}

    def gate_and_alpha_gemm(dtype, tf32):
        x = torch.randn(T, D, device=dev, generator=gen, dtype=dtype, requires_grad=True)
        w = (0.02 * torch.randn(E + H, D, device=dev, generator=gen)).to(dtype).requires_grad_(True)
        g = torch.randn(T, E + H, device=dev, generator=gen, dtype=dtype)

        def run():
            torch.backends.cuda.matmul.allow_tf32 = tf32
            x.grad = None
            w.grad = None
            (x @ w.t()).backward(g)
        return run

    for name, dtype, tf32 in (("gate_alpha_gemm_fp32", torch.float32, False),
                              ("gate_alpha_gemm_tf32", torch.float32, True),
                              ("gate_alpha_gemm_bf16", torch.bfloat16, False)):
        out["ms_per_layer"][name] = time_ms(gate_and_alpha_gemm(dtype, tf32), args.repeats)
    torch.backends.cuda.matmul.allow_tf32 = False

    # decoder E → D and the mean squared reconstruction error against x (float32), forward+backward
    x32 = torch.randn(T, D, device=dev, generator=gen)
    r = torch.rand(T, E, device=dev, generator=gen, requires_grad=True)
    dec_w = (0.02 * torch.randn(D, E, device=dev, generator=gen)).requires_grad_(True)
    dec_b = torch.zeros(D, device=dev, requires_grad=True)

    def reconstruction():
        r.grad = dec_w.grad = dec_b.grad = None
        ((torch.addmm(dec_b, r, dec_w.t()) - x32).square().mean()).backward()
    out["ms_per_layer"]["reconstruction_fp32"] = time_ms(reconstruction, args.repeats)

    # the router input brought to float32 and its gradient back to bf16 ([T, D] each way)
    xb = torch.randn(T, D, device=dev, generator=gen, dtype=torch.bfloat16)
    out["ms_per_layer"]["input_cast_both_ways"] = time_ms(lambda: xb.float().to(torch.bfloat16), args.repeats)

    # one small element-wise kernel on [T, E] float32: a chain of 100, divided by 100
    a = torch.rand(T, E, device=dev, generator=gen)

    def chain():
        y = a
        for _ in range(100):
            y = y * 1.0001
        return y
    out["ms_per_layer"]["one_small_elementwise_kernel"] = time_ms(chain, args.repeats) / 100
    out["ms_per_step"] = {k: v * args.layers for k, v in out["ms_per_layer"].items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
