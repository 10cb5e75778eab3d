"""Encodes texts with an exported tokenizer through transformers' AutoTokenizer (tokenizer.json
+ tokenizer_config.json, run by the `tokenizers` library), nothing of dirmoe imported.

Inputs: tokenizer_dir (uint8 bytes of the path), texts (uint8 bytes: UTF-8 texts separated by
NUL bytes). Outputs: ids (total,) int64, the concatenated encodings; lengths (n_texts,) int64."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from exchange import load_inputs, save_outputs  # noqa: E402


def main():
    inputs = load_inputs()
    tok = AutoTokenizer.from_pretrained(bytes(inputs["tokenizer_dir"].tolist()).decode())
    texts = bytes(inputs["texts"].tolist()).decode("utf-8").split("\0")
    encodings = tok(texts)["input_ids"]  # the defaults: whatever a user gets
    save_outputs({"ids": torch.tensor([i for e in encodings for i in e], dtype=torch.int64),
                  "lengths": torch.tensor([len(e) for e in encodings], dtype=torch.int64)})


main()
