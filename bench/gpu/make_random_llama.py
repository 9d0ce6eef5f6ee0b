#!/usr/bin/env python3
"""Writes a Llama-shaped HF model folder with random weights (benchmarks of an 8B-shaped model).

  python3 bench/gpu/make_random_llama.py OUT --tokenizer-from DIR [--layers 32 --hidden 4096
      --intermediate 14336 --heads 32 --kv-heads 8 --head-dim 128] [--dtype bfloat16]

Shapes default to Llama-3-8B's transformer blocks; the vocabulary is the tokenizer's (its
tokenizer.json and config files are copied), so real text can be tokenized. Linears are
N(0, 0.02) (HF's initializer_range), norms 1. Sharded safetensors of <= 4 GiB with an index,
written with the safetensors package (PyTorch and transformers are on the GPU machine).
"""
import argparse
import json
import os
import shutil
import time

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--intermediate", type=int, default=14336)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.time()
    src = json.load(open(os.path.join(a.tokenizer_from, "config.json")))
    vocab = src["vocab_size"]
    dt = getattr(torch, a.dtype)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    h, f, qd, kvd = a.hidden, a.intermediate, a.heads * a.head_dim, a.kv_heads * a.head_dim

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, device=dev, dtype=torch.float32) * 0.02).to(dt).cpu()

    tensors = [("model.embed_tokens.weight", lambda: rnd(vocab, h))]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", lambda: torch.ones(h, dtype=dt)),
            (p + "post_attention_layernorm.weight", lambda: torch.ones(h, dtype=dt)),
            (p + "self_attn.q_proj.weight", lambda: rnd(qd, h)),
            (p + "self_attn.k_proj.weight", lambda: rnd(kvd, h)),
            (p + "self_attn.v_proj.weight", lambda: rnd(kvd, h)),
            (p + "self_attn.o_proj.weight", lambda: rnd(h, qd)),
            (p + "mlp.gate_proj.weight", lambda: rnd(f, h)),
            (p + "mlp.up_proj.weight", lambda: rnd(f, h)),
            (p + "mlp.down_proj.weight", lambda: rnd(h, f)),
        ]
    tensors += [("model.norm.weight", lambda: torch.ones(h, dtype=dt)), ("lm_head.weight", lambda: rnd(vocab, h))]
    limit = 4 << 30
    shards, cur, size = [], {}, 0
    params = 0
    for name, make in tensors:
        t = make()
        params += t.numel()
        nbytes = t.numel() * t.element_size()
        if cur and size + nbytes > limit:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = t
        size += nbytes
    shards.append(cur)
    index = {"metadata": {"total_size": params * (2)}, "weight_map": {}}
    for k, sh in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(sh, os.path.join(a.out, fn), metadata={"format": "pt"})
        for name in sh:
            index["weight_map"][name] = fn
    json.dump(index, open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)
    cfg = dict(src)
    cfg.update({"hidden_size": h, "intermediate_size": f, "num_hidden_layers": a.layers,
                "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
                "tie_word_embeddings": False, "torch_dtype": a.dtype, "dtype": a.dtype,
                "max_position_embeddings": max(src.get("max_position_embeddings", 2048), 2048)})
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if os.path.exists(os.path.join(a.tokenizer_from, fn)):
            shutil.copy(os.path.join(a.tokenizer_from, fn), os.path.join(a.out, fn))
    print(f"{a.out}: {params / 1e9:.3f}B params ({a.dtype}), {len(shards)} shards, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
