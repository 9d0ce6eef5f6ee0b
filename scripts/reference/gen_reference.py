#!/usr/bin/env python3
"""Generates the Hugging Face reference data the parity tests compare against.

Runs where the real `transformers` and `tokenizers` libraries are (the GPU machine), on CPU in
fp32 with eager attention, and writes into OUT_DIR:
  tokenizer_<name>.json  [{"text", "ids" (add_special_tokens=True), "decoded" (skip specials)}]
  <name>.logits.json     {"model", "input_ids", "vocab_size", "full_rows", "cols", "argmax",
                          "logsumexp", "greedy": {"prompt_ids", "output_ids"}}
  <name>.logits.bin      float32 LE: full_rows*V full logits, then T*len(cols) logits at `cols`
Usage: gen_reference.py MODELS_DIR DATA_DIR OUT_DIR
"""
import json
import random
import struct
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

MODELS = ["tinystories-656k", "docs-19m"]
EDGE_CASES = [
    "", " ", "  ", "\n", "\r\n", "\t", "a", "Hello world", " Hello  world ", "Hello\nworld\n\n",
    "Once upon a time, there was a little girl named Lily.",
    "don't won't I'm you're they've we'll he'd",
    "1234567890 3.14159 1,000,000 2026-11-23",
    "café naïve résumé Ærøskøbing", "日本語のテキスト", "中文字符测试", "Привет, мир!",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇩🇪", "math ∑∫√∞ ≤ ≥ ≠", "tabs\tand   spaces\t\t end",
    "<s> inside text </s>", "<|start_story|>Hi<|end_story|>", "$ apt-get install -y gcc\n",
    "def f(x):\n    return x ** 2  # square\n", "    leading spaces", "trailing spaces    ",
    "x" * 300, "a b " * 50, "\u00a0nbsp\u2003emspace", "zero\u200bwidth", "🙂" * 5,
]


def texts_from_data(data_dir):
    out = []
    wiki = open(f"{data_dir}/wikitext-2-raw-test.txt", encoding="utf-8", newline="").read()
    lines = [l for l in wiki.split("\n") if l.strip()]
    out += lines[:120]
    out.append("\n".join(lines[200:230]))
    stories = open(f"{data_dir}/tinystories-valid-part1.txt", encoding="utf-8").read()
    paras = [p for p in stories.split("\n") if p.strip()]
    out += paras[:40]
    docs = open(f"{data_dir}/debian-docs-val-part1.txt", encoding="utf-8").read().split("\x1e")
    out += [d[:1500] for d in docs[:40] if d.strip()]
    return out


def tokenizer_refs(models_dir, data_dir, out_dir):
    texts = EDGE_CASES + texts_from_data(data_dir)
    for name in MODELS:
        tok = Tokenizer.from_file(f"{models_dir}/{name}/tokenizer.json")
        rows = []
        for t in texts:
            ids = tok.encode(t, add_special_tokens=True).ids
            rows.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
        with open(f"{out_dir}/tokenizer_{name}.json", "w", encoding="utf-8") as f:
            json.dump(rows, f, ensure_ascii=False)
        print(f"tokenizer_{name}: {len(rows)} texts, {sum(len(r['ids']) for r in rows)} ids")


def eval_text(name, data_dir):
    if name == "docs-19m":
        docs = open(f"{data_dir}/debian-docs-val-part1.txt", encoding="utf-8").read().split("\x1e")
        return docs[3]
    return open(f"{data_dir}/tinystories-valid-part1.txt", encoding="utf-8").read()


def logit_refs(models_dir, data_dir, out_dir, n_tokens=320, full_rows=24, n_cols=256):
    torch.manual_seed(0)
    for name in MODELS:
        path = f"{models_dir}/{name}"
        tok = Tokenizer.from_file(f"{path}/tokenizer.json")
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                         attn_implementation="eager")
        except TypeError:
            model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                         attn_implementation="eager")
        model.eval()
        ids = tok.encode(eval_text(name, data_dir), add_special_tokens=True).ids[:n_tokens]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()  # [T, V]
        vocab = logits.shape[1]
        rng = random.Random(1234)
        cols = sorted(rng.sample(range(vocab), min(n_cols, vocab)))
        prompt = ids[:16]
        seq = list(prompt)
        with torch.no_grad():
            for _ in range(48):
                nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
                seq.append(nxt)
        meta = {
            "model": name, "input_ids": ids, "vocab_size": vocab, "full_rows": full_rows,
            "cols": cols, "argmax": logits.argmax(-1).tolist(),
            "logsumexp": torch.logsumexp(logits.double(), -1).tolist(),
            "greedy": {"prompt_ids": prompt, "output_ids": seq[len(prompt):]},
            "generator": "transformers fp32 eager attention, CPU",
        }
        with open(f"{out_dir}/{name}.logits.json", "w") as f:
            json.dump(meta, f)
        with open(f"{out_dir}/{name}.logits.bin", "wb") as f:
            f.write(logits[:full_rows].contiguous().numpy().astype("<f4").tobytes())
            f.write(logits[:, cols].contiguous().numpy().astype("<f4").tobytes())
        print(f"{name}: T={len(ids)} V={vocab} max|logit|={float(logits.abs().max()):.3f} "
              f"greedy={meta['greedy']['output_ids'][:8]}...")


def main():
    models_dir, data_dir, out_dir = sys.argv[1:4]
    import tokenizers
    import transformers
    print("transformers", transformers.__version__, "tokenizers", tokenizers.__version__,
          "torch", torch.__version__)
    tokenizer_refs(models_dir, data_dir, out_dir)
    logit_refs(models_dir, data_dir, out_dir)


if __name__ == "__main__":
    main()
