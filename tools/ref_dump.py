"""Write tests/data/ref_core.bin: a tiny LLaDA model, fixed inputs and masks, and the
reference logits, masked-diffusion loss and all parameter gradients (llm.c-style dump).

Everything is computed in float64 and stored as float32. Run with Debian's python:
    /usr/bin/python3 tools/ref_dump.py

File format (little-endian):
    8 bytes magic "D1REF001", u32 record count, then per record:
    u32 name_len, name bytes (no NUL), u32 dtype (0 = f32, 1 = i32), u32 ndim,
    u32 dims[ndim], prod(dims) elements of 4 bytes, row-major.
Records: config i32[9] = [V, C, L, H, KV, F, max_seq_len, mask_id, tied], rope_theta f32[1],
norm_eps f32[1], tokens i32[B,T], mask i32[B,T] (1 = masked), p f32[B], noisy i32[B,T],
key_mask i32[B,T] (1 = attend), every parameter under its HF name (model order),
logits f32[B,T,V], logits_keymask f32[B,T,V], loss f32[1], then "grad." + HF name for
every parameter in the same order.
"""

import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_torch import LLaDA, LLaDAConfig, apply_mask, draw_mask, masked_diffusion_loss  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "ref_core.bin")

CFG = LLaDAConfig(vocab_size=48, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                  max_seq_len=16, rope_theta=10000.0, norm_eps=1e-5, mask_id=47, tied=False)
B, T = 2, 8
P = [0.35, 0.7]
SEED = 1234
WTE_STD = 1.0   # embeddings are RMS-normalised before use; std 1 keeps the residual O(1)
MAT_STD = 0.2   # projections: with C = 32, std 0.2 gives outputs and logits of spread ~1


def build_inputs(g):
    """Model with seeded weights and the fixed batch. Weights and p are rounded to float32
    first (then held in float64), so the float64 references are exact for the stored data."""
    model = LLaDA(CFG, dtype=torch.float64)
    with torch.no_grad():
        for name, w in model.named_parameters():
            z = torch.randn(w.shape, generator=g, dtype=torch.float64)
            if w.dim() == 1:                          # RMSNorm weights: 1 + 0.1 N(0,1)
                z = 1 + 0.1 * z
            else:
                z = z * (WTE_STD if name.endswith("wte.weight") else MAT_STD)
            w.copy_(z.float())
    tokens = torch.randint(0, CFG.mask_id, (B, T), generator=g)   # clean tokens in [0, 46]
    p = torch.tensor(P, dtype=torch.float32).double()
    mask = draw_mask(p, T, generator=g)
    for b in range(B):                                # at least one masked position per row
        if not mask[b].any():
            mask[b, torch.randint(0, T, (1,), generator=g)] = True
    key_mask = torch.ones(B, T, dtype=torch.bool)
    key_mask[1, 6:] = False                           # sequence 1 attends keys 0..5 only
    return model, tokens, mask, p, key_mask


def loss_of(model, tokens, mask, p):
    logits = model(apply_mask(tokens, mask, CFG.mask_id))
    return masked_diffusion_loss(logits, tokens, mask, p), logits


def check_finite_differences(model, tokens, mask, p, g, n_entries=4, h=1e-5):
    """Central differences (float64) vs autograd on a few entries of a few parameters."""
    model.zero_grad()
    loss_of(model, tokens, mask, p)[0].backward()
    params = dict(model.named_parameters())
    worst = 0.0
    for name in ["model.transformer.wte.weight",
                 "model.transformer.blocks.0.attn_norm.weight",
                 "model.transformer.blocks.0.k_proj.weight",
                 "model.transformer.blocks.1.ff_proj.weight",
                 "model.transformer.ff_out.weight"]:
        w = params[name]
        flat = w.data.view(-1)
        # wte: probe rows of tokens the input actually uses (other rows have zero grad)
        if name.endswith("wte.weight"):
            rows = apply_mask(tokens, mask, CFG.mask_id).view(-1)
            idx = rows[:n_entries] * CFG.dim + torch.arange(n_entries)
        else:
            idx = torch.randint(0, flat.numel(), (n_entries,), generator=g)
        for i in idx.tolist():
            orig = flat[i].item()
            with torch.no_grad():
                flat[i] = orig + h
                lp = loss_of(model, tokens, mask, p)[0].item()
                flat[i] = orig - h
                lm = loss_of(model, tokens, mask, p)[0].item()
                flat[i] = orig
            fd = (lp - lm) / (2 * h)
            an = w.grad.view(-1)[i].item()
            worst = max(worst, abs(fd - an) / max(1e-6, abs(fd) + abs(an)))
    print(f"finite differences vs autograd (float64): max rel err {worst:.2e}")
    assert worst < 1e-6, worst


def check_float32(model, tokens, mask, p, logits64, loss64):
    """The same weights in float32 must agree with float64 to float32 precision."""
    m32 = LLaDA(CFG, dtype=torch.float32)
    m32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    with torch.no_grad():
        loss32, logits32 = loss_of(m32, tokens, mask, p)
    dl = (logits32.double() - logits64).abs().max().item()
    dloss = abs(loss32.item() - loss64)
    print(f"float32 vs float64: max |d logits| {dl:.2e}, |d loss| {dloss:.2e}")
    assert dl < 1e-4 and dloss < 1e-5, (dl, dloss)


def check_key_mask(model, noisy, key_mask, logits_km):
    """Sequence 1 with keys 6,7 masked: its positions 0..5 must equal running its first
    six tokens alone (RoPE positions are the same 0..5)."""
    with torch.no_grad():
        alone = model(noisy[1:2, :6])[0]
    d = (alone - logits_km[1, :6]).abs().max().item()
    print(f"key mask vs truncated sequence: max |d logits| {d:.2e}")
    assert d < 1e-12, d


def read_records(path):
    """Ordered list of (name, numpy array) from a D1REF001 file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"D1REF001", "bad magic"
    (count,) = struct.unpack_from("<I", data, 8)
    off, out = 12, []
    for _ in range(count):
        (nl,) = struct.unpack_from("<I", data, off)
        off += 4
        name = data[off:off + nl].decode()
        off += nl
        dtype, ndim = struct.unpack_from("<II", data, off)
        off += 8
        dims = struct.unpack_from(f"<{ndim}I", data, off)
        off += 4 * ndim
        n = int(np.prod(dims)) if ndim else 1
        arr = np.frombuffer(data, dtype="<f4" if dtype == 0 else "<i4", count=n, offset=off)
        off += 4 * n
        out.append((name, arr.reshape(dims).copy()))
    assert off == len(data), "trailing bytes"
    return out


class Writer:
    def __init__(self):
        self.records = []

    def add(self, name, t):
        """Append tensor t as f32 (floating) or i32 (integer / bool)."""
        t = t.detach().cpu()
        if t.is_floating_point():
            arr, dtype = t.numpy().astype("<f4"), 0
        else:
            arr, dtype = t.numpy().astype("<i4"), 1
        nb = name.encode()
        head = struct.pack("<I", len(nb)) + nb + struct.pack("<II", dtype, arr.ndim)
        head += struct.pack(f"<{arr.ndim}I", *arr.shape)
        self.records.append(head + np.ascontiguousarray(arr).tobytes())

    def write(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"D1REF001" + struct.pack("<I", len(self.records)))
            for r in self.records:
                f.write(r)


def main():
    g = torch.Generator().manual_seed(SEED)
    model, tokens, mask, p, key_mask = build_inputs(g)
    noisy = apply_mask(tokens, mask, CFG.mask_id)

    model.zero_grad()
    loss, logits = loss_of(model, tokens, mask, p)
    loss.backward()
    with torch.no_grad():
        logits_km = model(noisy, key_mask)
    params = list(model.named_parameters())
    grads = [(n, w.grad.clone()) for n, w in params]

    check_finite_differences(model, tokens, mask, p, g)
    check_float32(model, tokens, mask, p, logits, loss.item())
    check_key_mask(model, noisy, key_mask, logits_km)

    w = Writer()
    c = CFG
    w.add("config", torch.tensor([c.vocab_size, c.dim, c.n_layers, c.n_heads, c.n_kv_heads,
                                  c.ffn_dim, c.max_seq_len, c.mask_id, int(c.tied)]))
    w.add("rope_theta", torch.tensor([c.rope_theta]))
    w.add("norm_eps", torch.tensor([c.norm_eps]))
    w.add("tokens", tokens)
    w.add("mask", mask)
    w.add("p", p)
    w.add("noisy", noisy)
    w.add("key_mask", key_mask)
    for n, t in params:
        w.add(n, t)
    w.add("logits", logits)
    w.add("logits_keymask", logits_km)
    w.add("loss", loss.reshape(1))
    for n, gr in grads:
        w.add("grad." + n, gr)
    w.write(OUT)

    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(w.records)} records, "
          f"{os.path.getsize(OUT)} bytes")
    print(f"tokens   {tokens.tolist()}")
    print(f"mask     {mask.int().tolist()}  (masked per row: {mask.sum(1).tolist()})")
    print(f"p        {[round(x, 6) for x in p.tolist()]}  (float32-rounded)")
    print(f"loss     {loss.item():.9f}")
    print(f"logits   norm {logits.norm().item():.6f}, std {logits.std().item():.4f}, "
          f"keymask norm {logits_km.norm().item():.6f}")
    gmax = max(gr.abs().max().item() for _, gr in grads)
    gname = max(grads, key=lambda ng: ng[1].abs().max().item())[0]
    print(f"max|grad| {gmax:.6e} ({gname})")


if __name__ == "__main__":
    main()
