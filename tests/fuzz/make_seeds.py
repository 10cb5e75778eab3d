"""Writes the seed corpora of the libFuzzer targets under tests/fuzz/corpus/<target>/ from the
repository's fixtures and the formats as documented in the headers (not from the C++ writers), so
that the seeds stay valid inputs the fuzzers mutate from. Deterministic; rerun after a format change.

usage: .venv/bin/python tests/fuzz/make_seeds.py"""
import gzip
import hashlib
import json
import pathlib
import struct
import subprocess
import sys
import zlib

import h5py
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus"
SEP = b"\n--8<--\n"
TASKS = ["arc_easy", "arc_challenge", "boolq", "hellaswag", "lambada_openai", "piqa", "race", "winogrande",
         "openbookqa", "sciq"]  # the order of file_task_specs()


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def configs():
    for name in ["tiny_dirmoe", "tiny_switch", "tiny_remoe", "tiny_sparsemixer"]:
        put("config", name + ".json", (ROOT / "experiments" / "configs" / (name + ".json")).read_bytes())
    put("config", "empty.json", b"{}")
    put("config", "nested.json", json.dumps({"model": {"n_layers": 2, "d_model": 64, "n_heads": 4, "n_kv_heads": 2},
                                              "router": {"type": "dirmoe", "dirmoe": {"selection": "soft"}},
                                              "data": {"domain_weights": {"code": 2.0}}}).encode())
    put("config_set", "basic", b"train.lr=3e-4\nrouter.type=dirmoe\nmodel.n_layers=2\ntrain.device=cpu")
    put("config_set", "map", b"data.domain_weights.code=0.5\neval.tasks=[\"arc_easy\",\"piqa\"]")
    put("config_set", "with_file", b"router.dirmoe.tau_start=1.5\nmodel.n_experts=4" + SEP +
        (ROOT / "experiments" / "configs" / "tiny_dirmoe.json").read_bytes())


def corpus_jsonl():
    lines = (ROOT / "tests" / "data" / "corpus" / "jsonl" / "mixed.jsonl").read_bytes().splitlines(keepends=True)
    small = b"".join(lines[:4])
    put("corpus_jsonl", "plain", b"\x00" + small)
    put("corpus_jsonl", "gzip", b"\x01" + gzip.compress(small, mtime=0))
    zst = subprocess.run(["zstd", "-q", "-c", "-3"], input=small, stdout=subprocess.PIPE, check=True).stdout
    put("corpus_jsonl", "zstd", b"\x02" + zst)
    put("corpus_jsonl", "capped", b"\x03" + small)
    for bad in ["malformed.jsonl", "missing_text.jsonl"]:
        put("corpus_jsonl", bad, b"\x00" + (ROOT / "tests" / "data" / "bad" / bad).read_bytes())
    put("corpus_jsonl", "utf8", b"\x00" + '{"text": "caf\\u00e9 \\ud83d\\ude00", "domain": "x"}\n'.encode() +
        b'{"text": "bad \xff\xfe bytes"}\n{"text": "  \\n "}\n')


def shards():
    # Layout of shard_writer.h: uint16 tokens, a 32-byte index header, offsets, domain ids.
    docs = [([5, 9, 2, 1], 0), ([7, 7, 1], 1), ([], 0), ([3, 4, 8, 6, 1], 1)]
    tokens = [t for d, _ in docs for t in d]
    offsets = [0]
    for d, _ in docs:
        offsets.append(offsets[-1] + len(d))
    idx = b"DMIDX001" + struct.pack("<QQQ", len(docs), len(tokens), 0)
    idx += struct.pack(f"<{len(offsets)}q", *offsets) + struct.pack(f"<{len(docs)}H", *[dom for _, dom in docs])
    binary = struct.pack(f"<{len(tokens)}H", *tokens)
    manifest = {
        "format": "dirmoe-shards", "format_version": 1, "dtype": "uint16", "domains": ["code", "prose"],
        "tokenizer": {"file": "tokenizer.model", "vocab_size": 64, "bos_id": 0, "eos_id": 1},
        "files": {name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                  for name, b in [("train.idx", idx), ("train.bin", binary)]},
        "splits": {"train": {"tokens_file": "train.bin", "index_file": "train.idx", "n_tokens": len(tokens)}},
    }
    put("shards", "valid", json.dumps(manifest, indent=1).encode() + SEP + idx + SEP + binary)
    m32 = dict(manifest, dtype="uint32")
    b32 = struct.pack(f"<{len(tokens)}I", *tokens)
    m32["files"] = {"train.idx": manifest["files"]["train.idx"],
                    "train.bin": {"bytes": len(b32), "sha256": hashlib.sha256(b32).hexdigest()}}
    put("shards", "uint32", json.dumps(m32).encode() + SEP + idx + SEP + b32)
    put("shards", "no_splits", json.dumps(dict(manifest, splits={}, files={})).encode() + SEP + SEP)


def tasks():
    for i, name in enumerate(TASKS):
        put("tasks", name, bytes([i]) + (ROOT / "tests" / "data" / "tasks" / (name + ".jsonl")).read_bytes())
    put("tasks", "race_literal", bytes([TASKS.index("race")]) + json.dumps(
        {"article": "A b.", "problems": "[{'question': 'Q?', 'options': ['a', 'b', 'c', 'd'], 'answer': 'B'}]"}).encode())
    put("tasks", "array", bytes([TASKS.index("boolq")]) + b'[{"passage": "p", "question": "q", "answer": true}]')


def routing_h5(path, router, E, L, D, trace):
    rng = np.random.default_rng(7)
    str_t = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        for key, value in [("format_version", 1), ("n_layers", L), ("n_experts", E), ("k_target", 1), ("step", 12)]:
            f.attrs[key] = np.int64(value)
        f.attrs.create("router", router, dtype=str_t)
        f.attrs.create("config", json.dumps({"router": {"type": router}, "model": {"n_experts": E, "n_layers": L}}),
                       dtype=str_t)
        f.attrs.create("git_rev", "seed", dtype=str_t)
        f.create_dataset("domains", data=[f"d{i}" for i in range(D)], dtype=str_t)
        for l in range(L):
            g = f.create_group(f"layer_{l:02d}")
            tpe = rng.integers(0, 20, E).astype(np.int64)
            g.attrs["n_tokens"] = np.int64(tpe.sum())
            g["tokens_per_expert"] = tpe
            g["weight_per_expert"] = rng.random(E)
            g["active_experts_hist"] = rng.integers(0, 5, E + 1).astype(np.int64)
            g["domain_expert_tokens"] = rng.random((D, E))
            g["expert_coactivation"] = rng.integers(0, 5, (E, E)).astype(np.int64)
            ts = g.create_dataset("token_simpson", data=rng.integers(0, 5, 4).astype(np.int64))
            ts.attrs["mean"] = 0.5
            ts.attrs["count"] = np.int64(ts[()].sum())
            ts.attrs["range_min"] = 0.0
            ts.attrs["range_max"] = 1.0
            for name, n in [("expert_domain_simpson", E), ("expert_domain_simpson_normalized", E),
                            ("domain_expert_simpson", D)]:
                g[name] = rng.random(n)
        if trace:
            N, K = 6, 2
            t = f.create_group("trace")
            t["token_ids"] = rng.integers(0, 50, N).astype(np.int64)
            t["domain_ids"] = rng.integers(0, D, N).astype(np.int32)
            t["expert_ids"] = rng.integers(-1, E, (L, N, K)).astype(np.int16)
            t["weights"] = rng.random((L, N, K)).astype(np.float32)


def routing():
    d = OUT / "routing_h5_raw"
    d.mkdir(parents=True, exist_ok=True)
    routing_h5(d / "topk", "topk", E=4, L=1, D=2, trace=False)
    routing_h5(d / "dirmoe_trace", "dirmoe", E=3, L=2, D=2, trace=True)


def checkpoint():
    # Container of checkpoint_file.h; the first byte is the harness's "fix the CRC" flag.
    def container(meta, payload, version=1):
        m = json.dumps(meta).encode()
        body = b"DMOECKPT" + struct.pack("<IQ", version, len(m)) + m + struct.pack("<Q", len(payload)) + payload
        return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    meta = {"format_version": 1, "step": 40, "tokens": 5120, "git_revision": "seed", "world_size": 1,
            "config": {"model": {"n_layers": 2, "d_model": 64, "n_heads": 4, "n_kv_heads": 2, "d_ff": 128,
                                 "n_experts": 4, "seq_len": 32, "vocab_size": 64},
                       "router": {"type": "dirmoe"}}}
    good = container(meta, b"PK\x03\x04 not a real archive")
    put("checkpoint", "valid", b"\x00" + good)
    put("checkpoint", "valid_fixcrc", b"\x01" + good)
    put("checkpoint", "no_step", b"\x01" + container({"config": {}}, b""))


if __name__ == "__main__":
    configs()
    corpus_jsonl()
    shards()
    tasks()
    routing()
    checkpoint()
    print(f"seeds written under {OUT.relative_to(ROOT)}", file=sys.stderr)
