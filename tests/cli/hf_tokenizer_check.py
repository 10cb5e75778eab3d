"""AutoTokenizer of an exported checkpoint against dirmoe's own SentencePiece encoding.

The token shards of a data directory hold every document exactly as dirmoe's tokenizer encoded
it (followed by EOS). Each document's text is rebuilt from its ids by concatenating the pieces
("▁" → " ", <0xXX> → that byte), without the tokenizer under test, and encoded again with
AutoTokenizer.from_pretrained(EXPORT_DIR); the ids must be the same.

usage: hf_tokenizer_check.py DATA_DIR EXPORT_DIR [--splits train,validation,heldout] [--max-docs N]
Prints the agreement count; exits 1 on any difference."""
import argparse
import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402


def documents(data_dir, split, dtype):
    """Token ids of each document of a split (EOS removed), from <split>.idx and <split>.bin."""
    with open(os.path.join(data_dir, split + ".idx"), "rb") as f:
        header = f.read(32)
        assert header[:8] == b"DMIDX001", f"{split}.idx: bad magic"
        n_docs = int.from_bytes(header[8:16], "little")
        offsets = np.frombuffer(f.read(8 * (n_docs + 1)), dtype="<i8")
    tokens = np.fromfile(os.path.join(data_dir, split + ".bin"), dtype=dtype)
    for i in range(n_docs):
        yield tokens[offsets[i]:offsets[i + 1] - 1].astype(np.int64).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("export_dir")
    ap.add_argument("--splits", default="train,validation,heldout")
    ap.add_argument("--max-docs", type=int, default=0, help="per split; 0: all")
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.data_dir, "manifest.json")))
    dtype = "<u2" if manifest.get("dtype", manifest.get("token_dtype", "uint16")) == "uint16" else "<u4"
    vocab = json.load(open(os.path.join(args.export_dir, "tokenizer.json"), encoding="utf-8"))["model"]["vocab"]
    piece_of = {i: p for p, i in vocab.items()}
    # NOTE: AutoTokenizer reads config.json first; for the dirmoe layout, whose config names remote
    # code, an explicit trust_remote_code (either value) avoids transformers' interactive question.
    # The tokenizer itself runs no remote code.
    tok = AutoTokenizer.from_pretrained(args.export_dir, trust_remote_code=False)

    def text_of(ids):
        out = bytearray()
        for i in ids:
            p = piece_of[i]
            if len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
                out.append(int(p[3:5], 16))
            else:
                out += p.replace("\u2581", " ").encode("utf-8")
        return out.decode("utf-8")

    total = agree = 0
    for split in args.splits.split(","):
        docs = list(documents(args.data_dir, split, dtype))
        if args.max_docs:
            docs = docs[: args.max_docs]
        texts = [text_of(ids) for ids in docs]
        encoded = tok(texts, add_special_tokens=False)["input_ids"]
        for n, (ids, hf) in enumerate(zip(docs, encoded)):
            total += 1
            if ids == hf:
                agree += 1
            elif total - agree <= 5:
                first = next((k for k, (x, y) in enumerate(zip(ids, hf)) if x != y), min(len(ids), len(hf)))
                print(f"DIFFER {split} doc {n}: at token {first}: sentencepiece {ids[first:first + 6]} "
                      f"({[piece_of[i] for i in ids[first:first + 6]]}) vs AutoTokenizer {hf[first:first + 6]} "
                      f"({[piece_of.get(i) for i in hf[first:first + 6]]})")
    print(f"tokenizer: AutoTokenizer ids equal SentencePiece ids on {agree} of {total} documents ({args.splits})")
    sys.exit(0 if agree == total else 1)


main()
