"""A small PyTorch reference of the LLaDA-architecture transformer (DESIGN.md section 4).

Plain torch ops, no Hugging Face dependency, but the same semantics and the same
parameter names as HF `modeling_llada.py`, so `state_dict()` keys are the safetensors names:

    model.transformer.wte.weight                    [V, C]
    model.transformer.blocks.N.attn_norm.weight     [C]
    model.transformer.blocks.N.q_proj.weight        [C, C]
    model.transformer.blocks.N.k_proj.weight        [KV*hd, C]
    model.transformer.blocks.N.v_proj.weight        [KV*hd, C]
    model.transformer.blocks.N.attn_out.weight      [C, C]
    model.transformer.blocks.N.ff_norm.weight       [C]
    model.transformer.blocks.N.ff_proj.weight       [F, C]   (gate)
    model.transformer.blocks.N.up_proj.weight       [F, C]   (up)
    model.transformer.blocks.N.ff_out.weight        [C, F]   (down)
    model.transformer.ln_f.weight                   [C]
    model.transformer.ff_out.weight                 [V, C]   (only when untied)

Symbols: B batch, T sequence length, C dim, V vocab, H heads, KV kv heads, hd = C/H,
F ffn dim. Also the masked-diffusion pretraining loss (DESIGN.md section 5).
Works in float32 or float64 (the `dtype` argument of `LLaDA`).
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class LLaDAConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    max_seq_len: int
    rope_theta: float = 500000.0
    norm_eps: float = 1e-5
    mask_id: int = 0
    tied: bool = False


class RMSNorm(nn.Module):
    """y = x * rsqrt(mean(x^2) + eps) * weight, over the last dim; no bias."""

    def __init__(self, dim, eps, dtype):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    """[x1, x2] -> [-x2, x1], x1/x2 the first/second half of the last dim."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def rope_cos_sin(T, hd, theta, dtype, device):
    """cos, sin [T, hd] for positions 0..T-1 (HF rotate-half layout).

    inv_freq_i = theta^(-2i/hd), i = 0..hd/2-1; angles[t, i] = t * inv_freq_i;
    emb = cat([angles, angles]) -> [T, hd].
    """
    inv_freq = theta ** (-torch.arange(0, hd, 2, dtype=dtype, device=device) / hd)
    angles = torch.arange(T, dtype=dtype, device=device)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


class Block(nn.Module):
    """One pre-norm LLaDA ("llama") block:
        h += attn_out(Attn(q_proj n, k_proj n, v_proj n)),  n = RMSNorm(h) * attn_norm
        h += ff_out(silu(ff_proj m) * up_proj m),          m = RMSNorm(h) * ff_norm
    """

    def __init__(self, cfg, dtype):
        super().__init__()
        C, H, KV, Fd = cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim
        assert C % H == 0 and H % KV == 0 and (C // H) % 2 == 0
        self.H, self.KV, self.hd = H, KV, C // H
        kvd = KV * self.hd
        # registration order = parameter order in named_parameters() / state_dict()
        self.attn_norm = RMSNorm(C, cfg.norm_eps, dtype)
        self.q_proj = nn.Linear(C, C, bias=False, dtype=dtype)
        self.k_proj = nn.Linear(C, kvd, bias=False, dtype=dtype)
        self.v_proj = nn.Linear(C, kvd, bias=False, dtype=dtype)
        self.attn_out = nn.Linear(C, C, bias=False, dtype=dtype)
        self.ff_norm = RMSNorm(C, cfg.norm_eps, dtype)
        self.ff_proj = nn.Linear(C, Fd, bias=False, dtype=dtype)
        self.up_proj = nn.Linear(C, Fd, bias=False, dtype=dtype)
        self.ff_out = nn.Linear(Fd, C, bias=False, dtype=dtype)

    def attention(self, n, cos, sin, key_mask):
        """n [B,T,C] -> [B,T,C]: bidirectional GQA attention with RoPE on q and k."""
        B, T, C = n.shape
        H, KV, hd = self.H, self.KV, self.hd
        q = self.q_proj(n).view(B, T, H, hd).transpose(1, 2)   # [B,H,T,hd]
        k = self.k_proj(n).view(B, T, KV, hd).transpose(1, 2)  # [B,KV,T,hd]
        v = self.v_proj(n).view(B, T, KV, hd).transpose(1, 2)  # [B,KV,T,hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # GQA: query head h reads kv head h // (H/KV)
        k = k.repeat_interleave(H // KV, dim=1)                # [B,H,T,hd]
        v = v.repeat_interleave(H // KV, dim=1)
        s = q @ k.transpose(-1, -2) / hd ** 0.5                # [B,H,T,T], no causal mask
        if key_mask is not None:
            s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        y = s.softmax(dim=-1) @ v                              # [B,H,T,hd]
        return self.attn_out(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, h, cos, sin, key_mask):
        h = h + self.attention(self.attn_norm(h), cos, sin, key_mask)
        m = self.ff_norm(h)
        return h + self.ff_out(F.silu(self.ff_proj(m)) * self.up_proj(m))


class LLaDA(nn.Module):
    """LLaDA masked-diffusion transformer; parameter names match HF (see module doc)."""

    def __init__(self, cfg, dtype=torch.float32):
        super().__init__()
        self.cfg = cfg
        tr = nn.ModuleDict()
        tr["wte"] = nn.Embedding(cfg.vocab_size, cfg.dim, dtype=dtype)
        tr["blocks"] = nn.ModuleList(Block(cfg, dtype) for _ in range(cfg.n_layers))
        tr["ln_f"] = RMSNorm(cfg.dim, cfg.norm_eps, dtype)
        if not cfg.tied:
            tr["ff_out"] = nn.Linear(cfg.dim, cfg.vocab_size, bias=False, dtype=dtype)
        self.model = nn.Module()
        self.model.transformer = tr

    def forward(self, tokens, key_mask=None):
        """tokens [B,T] long, key_mask [B,T] bool (True = key may be attended) or None
        -> logits [B,T,V]."""
        tr = self.model.transformer
        T = tokens.shape[1]
        assert T <= self.cfg.max_seq_len
        h = tr["wte"](tokens)                                  # [B,T,C], no scaling
        hd = self.cfg.dim // self.cfg.n_heads
        cos, sin = rope_cos_sin(T, hd, self.cfg.rope_theta, h.dtype, h.device)
        for blk in tr["blocks"]:
            h = blk(h, cos, sin, key_mask)
        h = tr["ln_f"](h)
        head = tr["wte"].weight if self.cfg.tied else tr["ff_out"].weight  # [V,C]
        return h @ head.t()


def draw_mask(p, T, generator=None):
    """mask [B,T] bool: each token masked independently with probability p[b]."""
    u = torch.rand(p.shape[0], T, generator=generator, dtype=p.dtype, device=p.device)
    return u < p[:, None]


def sample_p(B, eps=1e-3, generator=None):
    """Per-sequence masking probability p = (1-eps) t + eps, t ~ U(0,1); [B] float64."""
    t = torch.rand(B, generator=generator, dtype=torch.float64)
    return (1 - eps) * t + eps


def apply_mask(x0, mask, mask_id):
    """Noisy sequence x_t [B,T]: masked positions replaced by mask_id."""
    return torch.where(mask, torch.full_like(x0, mask_id), x0)


def masked_diffusion_loss(logits, x0, mask, p):
    """Pretraining loss (DESIGN.md section 5, LLaDA guideline):

        loss = sum_{b,t masked} CE(logits[b,t], x0[b,t]) / p[b]  /  (B*T)

    logits [B,T,V] of the noisy sequence, x0 [B,T] clean tokens, mask [B,T] bool,
    p [B]. Divides by ALL B*T tokens, not by the masked count.
    """
    B, T, V = logits.shape
    ce = F.cross_entropy(logits.reshape(B * T, V), x0.reshape(B * T), reduction="none")
    w = mask.to(logits.dtype) / p.to(logits.dtype)[:, None]   # [B,T]
    return (ce.view(B, T) * w).sum() / (B * T)
