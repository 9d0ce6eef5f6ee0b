#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/*.cc) from the real shared models.

    fuzz/make_seeds.py OUT_DIR [SHARED_DIR]     (SHARED_DIR default: ../shared)

OUT_DIR/<target>/ receives small seeds derived from the real files: the real safetensors
headers (shrunk to tiny valid files, and the real header with its data cut off), the real
config.json files and variants of them, the real tokenizer.json files cut down to their first
few hundred tokens, tiny llama2.c checkpoints with the real header layout plus the real
28-byte stories260K header, the real tok512.bin, model URIs and protobuf-encoded requests of
the shapes the clients send. The models themselves are never copied whole.
(artifact_manifest_fuzz writes its own seed: artifact_manifest_fuzz --write-seed=DIR.)
"""
import json
import os
import struct
import sys


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
    return n, raw, json.loads(raw)


DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1, "I32": 4, "U32": 4, "I64": 8}


def tiny_safetensors(header, keep, meta=True):
    """A valid file with the first `keep` tensors of a real header, each shrunk to <= 6 values."""
    out, off = {}, 0
    if meta and "__metadata__" in header:
        out["__metadata__"] = header["__metadata__"]
    names = [k for k in header if k != "__metadata__"][:keep]
    for name in names:
        t = header[name]
        shape = [min(s, 3) for s in t["shape"]][:2] or [1]
        numel = 1
        for s in shape:
            numel *= s
        nbytes = numel * DTYPE_SIZE[t["dtype"]]
        out[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [off, off + nbytes]}
        off += nbytes
    h = json.dumps(out, separators=(",", ":")).encode()
    data = bytes((i * 37) & 0x7F for i in range(off))  # small finite floats in every dtype
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds(out, models):
    files = [os.path.join(models, "tinystories-656k", "model.safetensors"),
             os.path.join(models, "docs-19m", "model-00001-of-00003.safetensors")]
    for i, path in enumerate(files):
        n, raw, header = read_header(path)
        put(out, "safetensors_fuzz", f"real_header_no_data_{i}", struct.pack("<Q", n) + raw)
        put(out, "safetensors_fuzz", f"tiny_valid_{i}_a", tiny_safetensors(header, 3))
        put(out, "safetensors_fuzz", f"tiny_valid_{i}_b", tiny_safetensors(header, 1, meta=False))


def config_seeds(out, models):
    for m in ("tinystories-656k", "docs-19m"):
        with open(os.path.join(models, m, "config.json")) as f:
            text = f.read()
        put(out, "config_json_fuzz", f"{m}_config.json", text)
        c = json.loads(text)
        for arch, extra in (("Qwen2ForCausalLM", {}), ("Qwen3ForCausalLM", {"head_dim": 16}),
                            ("MistralForCausalLM", {"sliding_window": 64}),
                            ("LlamaForCausalLM", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                                                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                   "original_max_position_embeddings": 512}}),
                            ("LlamaForCausalLM", {"rope_scaling": {"type": "linear", "factor": 2.0},
                                                  "eos_token_id": [2, 1]})):
            v = dict(c, architectures=[arch], **extra)
            put(out, "config_json_fuzz", f"{m}_{arch}_{len(extra)}_{len(json.dumps(extra))}.json", json.dumps(v))


def shrink_tokenizer(tok, keep):
    """tokenizer.json with only the tokens of id < keep and the merges among them."""
    t = json.loads(json.dumps(tok))
    vocab = {k: v for k, v in t["model"]["vocab"].items() if v < keep}
    t["model"]["vocab"] = vocab
    merges = []
    for m in t["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append(m)
    t["model"]["merges"] = merges
    t["added_tokens"] = [a for a in t.get("added_tokens", []) if a["id"] < keep]
    return t


def tokenizer_seeds(out, models):
    for m, keep in (("tinystories-656k", 400), ("docs-19m", 400)):
        with open(os.path.join(models, m, "tokenizer.json")) as f:
            tok = json.load(f)
        small = json.dumps(shrink_tokenizer(tok, keep), ensure_ascii=False).encode()
        put(out, "tokenizer_json_fuzz", f"{m}_small", small)
        put(out, "tokenizer_json_fuzz", f"{m}_small_text", small + b"\xffOnce upon a time, caf\xc3\xa9 \xe2\x82\xac!\n\t  ok")


def llama2c_checkpoint(dim, hidden, layers, heads, kv, vocab, seq, shared):
    hd = dim // heads
    floats = (vocab * dim * (1 if shared else 2) + layers * dim * 2 +
              layers * dim * (heads * hd + 2 * kv * hd) + layers * heads * hd * dim +
              layers * hidden * dim * 3 + dim + seq * hd)
    head = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq)
    return head + struct.pack(f"<{floats}f", *[((i % 13) - 6) / 32.0 for i in range(floats)])


def llama2c_seeds(out, models):
    with open(os.path.join(models, "stories260k", "stories260K.bin"), "rb") as f:
        real = f.read(28)
    put(out, "llama2c_fuzz", "stories260k_header_only", real)
    dim, hidden, layers, heads, kv, vocab, seq = struct.unpack("<7i", real)
    # The real header's proportions (GQA 2:1, shared classifier), scaled down.
    put(out, "llama2c_fuzz", "tiny_shared", llama2c_checkpoint(8, 16, 1, 2, 1, 16, 4, True))
    put(out, "llama2c_fuzz", "tiny_unshared", llama2c_checkpoint(8, 12, 2, heads // 4, kv // 4, 8, 2, False))
    with open(os.path.join(models, "stories260k", "tok512.bin"), "rb") as f:
        tok = f.read()
    put(out, "llama2c_tokenizer_fuzz", "tok512", struct.pack("<H", 511) + tok)  # vocab 512
    # The first 40 entries of the real file (max_token_length, then score/len/bytes records).
    pos, n = 4, 0
    while n < 40:
        (length,) = struct.unpack_from("<i", tok, pos + 4)
        pos += 8 + length
        n += 1
    put(out, "llama2c_tokenizer_fuzz", "tok512_first40", struct.pack("<H", 39) + tok[:pos])


def uri_seeds(out):
    for i, u in enumerate(("file:///work/shared/models/tinystories-656k", "file:///models/../etc",
                           "hf://karpathy/tinyllamas@main", "hf://org/name@refs/pr/1", "hf://org/name",
                           "https://example.com/models/docs-19m/", "http://host/x", "HF://Org/Name@v1.0",
                           "file://relative", "s3://bucket/key")):
        put(out, "model_uri_fuzz", f"uri_{i}", u)


# --- protobuf wire format (enough for the request seeds) ----------------------------------
def varint(n):
    n &= (1 << 64) - 1
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        if n:
            b.append(x | 0x80)
        else:
            b.append(x)
            return bytes(b)


def f_varint(field, v):
    return varint(field << 3) + varint(v)


def f_bytes(field, v):
    if isinstance(v, str):
        v = v.encode()
    return varint(field << 3 | 2) + varint(len(v)) + v


def f_double(field, v):
    return varint(field << 3 | 1) + struct.pack("<d", v)


def request_seeds(out):
    spec = (f_bytes(1, "file:///work/shared/models/tinystories-656k") + f_bytes(2, f_double(1, 0.99)) +
            f_bytes(3, "4-8") + f_varint(4, 128) + f_bytes(5, "tinystories") + f_varint(7, 1))
    reqs = {
        0: [f_bytes(1, spec) + f_bytes(2, "key-1"), f_bytes(1, f_bytes(1, "hf://org/name") + f_bytes(2, f_double(2, 0.01)))],
        1: [f_bytes(1, "job-0123456789abcdef")],
        2: [f_varint(1, 10) + f_varint(3, 3), f_varint(1, 10) + f_bytes(2, "abc")],
        3: [f_bytes(1, "job-0123456789abcdef")],
        4: [f_varint(1, 5) + f_bytes(2, "5")],
        5: [f_bytes(1, "0" * 64)],
        6: [f_bytes(1, "w1") + f_varint(2, 1) + f_bytes(3, "cpu")],
        7: [f_bytes(1, "worker-0011") + f_bytes(2, "fetch") + f_varint(3, 0)],
        8: [f_bytes(1, "worker-0011") + f_bytes(2, "task-1") + f_double(3, 0.5) + f_bytes(4, "profiling") + f_varint(5, 2)],
        9: [f_bytes(1, "worker-0011") + f_bytes(2, "task-1") + f_bytes(3, "{}"),
            f_bytes(1, "worker-0011") + f_bytes(2, "task-1") + f_bytes(4, "INVALID_ARGUMENT: x")],
        10: [f_bytes(1, "stories260k") + f_bytes(2, "Once upon a time") +
             f_bytes(4, f_double(1, 0.8) + f_varint(2, 40) + f_double(3, 0.9) + f_double(4, 1.1) + f_varint(5, 7)) +
             f_varint(5, 32) + f_bytes(6, "\n") + f_varint(7, 1),
             f_bytes(1, "m") + f_bytes(3, f_bytes(1, varint(1) + varint(2) + varint(300))) + f_varint(5, 4)],
        11: [f_bytes(1, "base") + f_bytes(4, "file:///work/shared/models/stories260k/stories260K.bin"),
             f_bytes(2, "0" * 64) + f_bytes(5, "base")],
    }
    for kind, msgs in reqs.items():
        for i, m in enumerate(msgs):
            put(out, "grpc_request_fuzz", f"rpc{kind}_{i}", bytes([kind]) + m)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    models = os.path.join(shared, "models")
    safetensors_seeds(out, models)
    config_seeds(out, models)
    tokenizer_seeds(out, models)
    llama2c_seeds(out, models)
    uri_seeds(out)
    request_seeds(out)


if __name__ == "__main__":
    main()
