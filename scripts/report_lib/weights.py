"""Reads the quantizable linear weights of a model (numpy) to predict the gamma-squared factor.

HF safetensors (F32/BF16/F16, single or sharded) and llama2.c checkpoints. Only the linear
layers inside the transformer blocks (attention and MLP projections; not embeddings, norms or
the LM head), as the engine quantizes by default.
"""
import glob
import json
import os
import struct

import numpy as np


def _safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            yield name, info, path, base


def _load(path, info, base):
    a, b = info["data_offsets"]
    with open(path, "rb") as f:
        f.seek(base + a)
        raw = f.read(b - a)
    dt = info["dtype"]
    if dt == "F32":
        x = np.frombuffer(raw, dtype="<f4")
    elif dt == "F16":
        x = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dt == "BF16":
        x = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise ValueError(f"dtype {dt}")
    return x.reshape(info["shape"])


def hf_linears(folder):
    out = []
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        for name, info, path, base in _safetensors(f):
            if ".layers." in name and name.endswith("proj.weight") and len(info["shape"]) == 2:
                out.append(_load(path, info, base))
    return out


def llama2c_linears(path):
    with open(path, "rb") as f:
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq = struct.unpack("<7i", f.read(28))
        w = np.frombuffer(f.read(), dtype="<f4")
    vocab = abs(vocab)
    head = dim // n_heads
    kv = n_kv * head
    off = vocab * dim + n_layers * dim  # token embedding, rms_att

    def take(rows, cols):
        nonlocal off
        mats = []
        for _ in range(n_layers):
            mats.append(w[off:off + rows * cols].reshape(rows, cols))
            off += rows * cols
        return mats
    out = take(dim, dim) + take(kv, dim) + take(kv, dim) + take(dim, dim)  # wq wk wv wo
    off += n_layers * dim  # rms_ffn
    out += take(hidden, dim) + take(dim, hidden) + take(hidden, dim)  # w1 w2 w3
    return out


def linears(model_path):
    return hf_linears(model_path) if os.path.isdir(model_path) else llama2c_linears(model_path)


def predicted_noise_ratio(mats, bits, group=128):
    """sum over groups of step_sym^2 / sum of step_asym^2 (rounding noise ~ step^2 / 12)."""
    num = den = 0.0
    for w in mats:
        cols = w.shape[1]
        g = group if 0 < group <= cols and cols % group == 0 else cols
        x = w.reshape(-1, g).astype(np.float64)
        mx, mn = x.max(axis=1), x.min(axis=1)
        amax = np.abs(x).max(axis=1)
        s_sym = amax / (2 ** (bits - 1) - 1)
        s_asym = (mx - mn) / (2 ** bits - 1)
        num += float((s_sym ** 2).sum()) * g
        den += float((s_asym ** 2).sum()) * g
    return num / den if den > 0 else float("nan")


def gamma_stats(mats, group=128):
    gs = []
    for w in mats:
        cols = w.shape[1]
        g = group if 0 < group <= cols and cols % group == 0 else cols
        x = w.reshape(-1, g).astype(np.float64)
        rng = x.max(axis=1) - x.min(axis=1)
        gs.append(2 * np.abs(x).max(axis=1) / np.where(rng > 0, rng, 1))
    g = np.concatenate(gs)
    return {"mean_gamma": float(g.mean()), "mean_gamma2": float((g ** 2).mean()),
            "median_gamma": float(np.median(g))}
