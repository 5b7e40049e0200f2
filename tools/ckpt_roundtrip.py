"""Checkpoints between d1.h and PyTorch, both ways, with a tiny pure-Python
safetensors reader and writer (json + struct + numpy; no safetensors package).

    /usr/bin/python3 tools/ckpt_roundtrip.py write DIR --dtype f32|bf16 [--shards N] [--seed S]
        A seeded tiny LLaDA (tools/llada_torch.py) saved as a Hugging Face checkpoint:
        DIR/config.json + DIR/model.safetensors, or with --shards N an index
        (model.safetensors.index.json) and N shard files; plus DIR/ref_logits.bin, the
        logits of fixed tokens computed in float64 from the weights AS STORED (bf16-rounded
        for bf16). tests/test_checkpoint.c loads DIR and compares its logits.

    /usr/bin/python3 tools/ckpt_roundtrip.py load DIR [--tol 1e-5]
        Loads a d1.h checkpoint (written by `D1_CKPT_EXPORT=... build/test_checkpoint`)
        into the torch model (strict: every name and shape must match), runs the tokens of
        DIR/d1_logits.bin and compares with d1.h's logits there; writes DIR/torch_logits.bin.
        Exits 1 when the relative error max|a-b|/max|b| exceeds --tol.

ref_logits.bin / d1_logits.bin / torch_logits.bin: "D1RL", int32 B, T, V,
tokens int32[B*T], logits float32[B*T*V], little-endian.

The fixtures in tests/data were made with
    tools/ckpt_roundtrip.py write tests/data/ckpt_torch_f32 --dtype f32
    tools/ckpt_roundtrip.py write tests/data/ckpt_torch_bf16 --dtype bf16
    tools/ckpt_roundtrip.py write tests/data/ckpt_torch_sharded --dtype f32 --shards 3
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_torch import LLaDA, LLaDAConfig  # noqa: E402

# the fixtures' model: V 48, C 32, L 2, H 4, KV 2 (GQA), F 64, untied
CFG = LLaDAConfig(vocab_size=48, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                  max_seq_len=16, rope_theta=10000.0, norm_eps=1e-5, mask_id=47, tied=False)
B, T = 2, 12

# ---- safetensors, the format of DESIGN.md section 9 ---------------------------------
DTYPE_SIZE = {"F32": 4, "BF16": 2, "F16": 2}
MAX_HEADER = 100_000_000


def encode(t, dtype):
    """float tensor -> little-endian bytes of dtype."""
    t = t.detach().contiguous().cpu()
    if dtype == "F32":
        return t.float().numpy().astype("<f4").tobytes()
    if dtype == "BF16":
        return t.float().to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    if dtype == "F16":
        return t.float().numpy().astype("<f2").tobytes()
    raise ValueError(dtype)


def decode(b, dtype, shape):
    """little-endian bytes of dtype -> float32 tensor."""
    if dtype == "F32":
        a = np.frombuffer(b, dtype="<f4").astype(np.float32)
    elif dtype == "BF16":
        a = (np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F16":
        a = np.frombuffer(b, dtype="<f2").astype(np.float32)
    else:
        raise ValueError("unsupported dtype %r" % dtype)
    return torch.from_numpy(a.copy()).reshape(shape)


def st_write(path, tensors, dtype):
    """tensors: list of (name, tensor), written in order, contiguous."""
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, t in tensors:
        b = encode(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    """-> ({name: float32 tensor}, {name: dtype}, metadata), checking the layout as d1.h does."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) >= 8, "truncated"
    (n,) = struct.unpack("<Q", data[:8])
    assert 0 < n <= MAX_HEADER and 8 + n <= len(data), "bad header length %d" % n
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in meta.values()), "metadata must be strings"
    body = data[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    at = 0
    for b0, e0, k in spans:
        assert b0 == at, "gap or overlap at %s" % k
        at = e0
    assert at == len(body), "data not covered exactly (%d of %d)" % (at, len(body))
    out, dtypes = {}, {}
    for k, v in header.items():
        b0, e0 = v["data_offsets"]
        numel = int(np.prod(v["shape"])) if v["shape"] else 1
        assert e0 - b0 == numel * DTYPE_SIZE[v["dtype"]], "size of %s" % k
        out[k] = decode(body[b0:e0], v["dtype"], v["shape"])
        dtypes[k] = v["dtype"]
    return out, dtypes, meta


# ---- checkpoints --------------------------------------------------------------------

def config_json(cfg):
    """LLaDA's config.json keys (DESIGN.md section 4), as d1.h writes them."""
    return {
        "d_model": cfg.dim, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
        "n_kv_heads": cfg.n_kv_heads, "mlp_hidden_size": cfg.ffn_dim,
        "vocab_size": cfg.vocab_size, "embedding_size": cfg.vocab_size,
        "rope_theta": float(cfg.rope_theta), "rms_norm_eps": float(cfg.norm_eps),
        "max_sequence_length": cfg.max_seq_len, "weight_tying": bool(cfg.tied),
        "mask_token_id": cfg.mask_id, "eos_token_id": cfg.vocab_size - 2,
        "pad_token_id": cfg.vocab_size - 3, "model_type": "llada",
        "architectures": ["LLaDAModelLM"], "activation_type": "silu", "block_type": "llama",
        "layer_norm_type": "rms", "include_bias": False, "rope": True, "attention_dropout": 0.0,
        "residual_dropout": 0.0, "embedding_dropout": 0.0,
    }


# The real config class's defaults (LLaDA's ModelConfig, as Fast-dLLM vendors it in
# llada/model/configuration_llada.py) for every key that changes the arithmetic: a key
# absent from config.json takes these values there, so it does here.
LLADA_DEFAULTS = {
    "n_kv_heads": None, "mlp_ratio": 4, "mlp_hidden_size": None, "activation_type": "swiglu",
    "block_type": "sequential", "alibi": False, "rope": False, "attention_dropout": 0.1,
    "multi_query_attention": None, "attention_layer_norm": False, "residual_dropout": 0.1,
    "embedding_dropout": 0.1, "input_emb_norm": False, "layer_norm_type": "default",
    "layer_norm_with_affine": True, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "include_qkv_bias": False, "include_bias": False, "bias_for_layer_norm": None,
    "scale_logits": False, "embedding_size": 50304, "weight_tying": True,
}


def config_from_json(j):
    """config.json -> LLaDAConfig with the real class's semantics: absent keys take its
    defaults, and a value that asks for arithmetic this reference (and d1.h) does not do
    fails, as the real model fails or computes something else (its forward asserts rope)."""
    c = dict(LLADA_DEFAULTS)
    c.update(j)
    need = {"rope": True, "alibi": False, "block_type": "llama", "activation_type": "silu",
            "layer_norm_type": "rms", "layer_norm_with_affine": True, "include_bias": False,
            "include_qkv_bias": False, "scale_logits": False, "input_emb_norm": False,
            "attention_layer_norm": False}
    for k, v in need.items():
        if c[k] != v:
            raise ValueError("config.json: %s is %r (absent: %r), this reference computes %s = %r"
                             % (k, c[k], LLADA_DEFAULTS.get(k), k, v))
    if c["bias_for_layer_norm"] not in (None, False):
        raise ValueError("config.json: bias_for_layer_norm %r" % c["bias_for_layer_norm"])
    for k in ("attention_dropout", "residual_dropout", "embedding_dropout"):
        if c[k] != 0:  # d1's trainer runs the policy in training mode: dropout would be on
            raise ValueError("config.json: %s is %r (absent: 0.1), the reference has no dropout" % (k, c[k]))
    if c.get("clip_qkv") is not None or c.get("rope_scaling") is not None:
        raise ValueError("config.json: clip_qkv / rope_scaling set")
    n_kv = c["n_kv_heads"] if c["n_kv_heads"] is not None else (1 if c["multi_query_attention"] else c["n_heads"])
    ffn = c["mlp_hidden_size"] if c["mlp_hidden_size"] is not None else c["mlp_ratio"] * c["d_model"]
    if c["embedding_size"] not in (None, c["vocab_size"]):
        raise ValueError("config.json: embedding_size %r != vocab_size %r (padded embeddings)"
                         % (c["embedding_size"], c["vocab_size"]))
    return LLaDAConfig(vocab_size=c["vocab_size"], dim=c["d_model"], n_layers=c["n_layers"],
                       n_heads=c["n_heads"], n_kv_heads=n_kv, ffn_dim=ffn,
                       max_seq_len=c["max_sequence_length"], rope_theta=float(c["rope_theta"]),
                       norm_eps=float(c["rms_norm_eps"]), mask_id=c["mask_token_id"],
                       tied=bool(c["weight_tying"]))


def load_checkpoint(d):
    """DIR -> (cfg, {name: float32 tensor}, {name: dtype}); single file or index + shards."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = config_from_json(json.load(f))
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        w, dt, _ = st_read(single)
        return cfg, w, dt
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        wmap = json.load(f)["weight_map"]
    w, dt = {}, {}
    for shard in sorted(set(wmap.values())):
        sw, sdt, _ = st_read(os.path.join(d, shard))
        assert set(sw) == {k for k, v in wmap.items() if v == shard}, "shard %s" % shard
        w.update(sw)
        dt.update(sdt)
    return cfg, w, dt


def model_from(cfg, weights):
    """A float64 LLaDA holding `weights` (strict: the same names and shapes)."""
    m = LLaDA(cfg, dtype=torch.float64)
    m.load_state_dict({k: v.double() for k, v in weights.items()}, strict=True)
    return m.eval()


def fixed_tokens(V):
    return torch.tensor([[(7 * b + 3 * t + 1) % (V - 1) for t in range(T)] for b in range(B)])


def write_logits(path, tokens, logits):
    Bn, Tn, V = logits.shape
    with open(path, "wb") as f:
        f.write(b"D1RL" + struct.pack("<3i", Bn, Tn, V))
        f.write(tokens.to(torch.int32).numpy().astype("<i4").tobytes())
        f.write(logits.float().numpy().astype("<f4").tobytes())


def read_logits(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"D1RL"
    Bn, Tn, V = struct.unpack("<3i", data[4:16])
    tok = np.frombuffer(data[16:16 + 4 * Bn * Tn], dtype="<i4").reshape(Bn, Tn)
    lg = np.frombuffer(data[16 + 4 * Bn * Tn:], dtype="<f4").reshape(Bn, Tn, V)
    return torch.from_numpy(tok.astype(np.int64)), torch.from_numpy(lg.astype(np.float64))


def cmd_write(args):
    dtype = {"f32": "F32", "bf16": "BF16", "f16": "F16"}[args.dtype]
    torch.manual_seed(args.seed)
    m = LLaDA(CFG, dtype=torch.float32)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:                      # norms: around 1
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("wte.weight"):     # RMS-normalised before use
                p.copy_(torch.randn_like(p))
            else:                                 # spread ~1 at every layer
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    tensors = list(m.state_dict().items())
    os.makedirs(args.dir, exist_ok=True)
    for f in os.listdir(args.dir):
        if f.endswith(".safetensors") or f.endswith(".json") or f.endswith(".bin"):
            os.remove(os.path.join(args.dir, f))
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump(config_json(CFG), f, indent=2)
        f.write("\n")
    if args.shards <= 1:
        st_write(os.path.join(args.dir, "model.safetensors"), tensors, dtype)
    else:
        n, wmap, total = args.shards, {}, 0
        groups = [tensors[i * len(tensors) // n:(i + 1) * len(tensors) // n] for i in range(n)]
        for i, g in enumerate(groups):
            fname = "model-%05d-of-%05d.safetensors" % (i + 1, n)
            st_write(os.path.join(args.dir, fname), g, dtype)
            for k, t in g:
                wmap[k] = fname
                total += t.numel() * DTYPE_SIZE[dtype]
        with open(os.path.join(args.dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
            f.write("\n")
    # the reference: what a loader gets back from the files, in float64
    cfg, w, _ = load_checkpoint(args.dir)
    tok = fixed_tokens(cfg.vocab_size)
    with torch.no_grad():
        logits = model_from(cfg, w)(tok)
    write_logits(os.path.join(args.dir, "ref_logits.bin"), tok, logits)
    print("wrote %s (%s, %d shard(s)), logits %s" % (args.dir, dtype, max(1, args.shards),
                                                    tuple(logits.shape)))


def cmd_load(args):
    cfg, w, dt = load_checkpoint(args.dir)
    tok, d1_logits = read_logits(os.path.join(args.dir, "d1_logits.bin"))
    with torch.no_grad():
        logits = model_from(cfg, w)(tok)
    write_logits(os.path.join(args.dir, "torch_logits.bin"), tok, logits)
    err = ((logits - d1_logits).abs().max() / d1_logits.abs().max()).item()
    ok = err <= args.tol
    print("%s %s: %d tensors (%s), torch logits vs d1.h rel err %.2g (tol %.0g)"
          % ("ok  " if ok else "FAIL", args.dir, len(w), ",".join(sorted(set(dt.values()))), err,
             args.tol))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    w.add_argument("--shards", type=int, default=1)
    w.add_argument("--seed", type=int, default=1234)
    lo = sub.add_parser("load")
    lo.add_argument("dir")
    lo.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    return cmd_write(args) if args.cmd == "write" else cmd_load(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
