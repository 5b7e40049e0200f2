"""Write tests/data/ref_recipe.bin: references for the d1 recipe losses (DESIGN.md sections
5 and 7) on the tiny model of tests/data/ref_core.bin: masked SFT, diffu-GRPO with the
one-step log-prob estimator, and wd1 (ratio-free weighted likelihood).

Run with Debian's python (after tools/ref_dump.py has written ref_core.bin):
    /usr/bin/python3 tools/ref_recipe_dump.py

The model is rebuilt in float64 from the float32 weights stored in ref_core.bin (V=48,
C=32, L=2, H=4, KV=2, F=64, max_seq_len 16, rope_theta 1e4, eps 1e-5, mask id 47,
untied). Everything is computed in float64 with autograd and stored as float32; every
float input (p, advantages, old/ref log-probs, eps, beta) is rounded to float32 first and
the float64 computation uses the rounded values, so the references are exact for the
stored data.

File format: as ref_core.bin ("D1REF001", u32 count, records of u32 name_len, name,
u32 dtype 0 f32 / 1 i32, u32 ndim, u32 dims, data). Records:

Part 1, masked SFT (B=2, T=12, eos 46, prompt never masked; LLaDA SFT guideline):
    sft.tokens i32 [B,T]   clean tokens; the last 3 of each row are EOS (46) padding
    sft.prompt_lens i32 [B]
    sft.p f32 [B]          per-sequence mask probability
    sft.mask i32 [B,T]     1 = masked (response positions only, >= 1 per row)
    sft.loss f32 [1]       (1/B) sum_b [sum_{i masked} CE(logits[b,i], x0[b,i]) / p_b]
                                         / (T - prompt_lens[b])
    sft.grad.<HF name>     every parameter, ref_core.bin order
  Model input: tokens with masked positions replaced by 47.

Part 2, diffu-GRPO (B=4 = 2 prompts x G=2, rows 2g and 2g+1 share prompt g; P=5, Lc=6):
    grpo.tokens i32 [B,T]            prompt ++ completion, T = P + Lc = 11
    grpo.P i32 [1]
    grpo.prompt_mask i32 [B,P]       1 = prompt token replaced by 47
    grpo.completion_mask i32 [B,Lc]  1 up to and including the first EOS (46)
    grpo.adv f32 [B]
    grpo.old f32 [B,Lc]              old-policy log-probs
    grpo.ref f32 [B,Lc]              reference-policy log-probs
    grpo.eps_beta f32 [2]            [eps, beta] = [0.2, 0.04]
    grpo.logp f32 [B,Lc]             log_softmax(logits[b, P+k])[tokens[b, P+k]]
    grpo.loss f32 [1]                sum(tok*cm)/sum(cm), tok = -min(rho A, clip(rho) A) + beta kl
    grpo.clip_frac f32 [1]           sum(cm * (rho A > clip(rho) A)) / sum(cm)
    grpo.kl f32 [1]                  sum(kl*cm)/sum(cm), kl = exp(ref-logp) - (ref-logp) - 1
    grpo.grad.<HF name>              every parameter
  Model input: prompt positions with prompt_mask 1 -> 47, every completion position -> 47;
  no attention mask; rho = exp(logp - old).

Part 4, ESPO's sequence-level ELBO objective (the tokens of part 2; ML-GSAI/ESPO
espo/espo_trainer.py, forward_process / _get_elbo / _get_elbo_mc / compute_loss,
re-derived here from that code's formulas, independently of d1.h):
    espo.mask i32 [MC,B,Lc]   draw d's pass-1 mask: x_b = round(k_d + b (Lc+1)/B) mod (Lc+1)
                              positions of row b (stratified counts), chosen by randperm
    espo.k i32 [MC]           each draw's k
    espo.elbo f32 [B]         ELBO_b = mean over draws of -(1/2) [sum_{masked} CE / p_b
                              + sum_{unmasked} CE' / (Lc/(Lc+1) - p_b)], p_b = x_b/(Lc+1);
                              CE' from the complement pass (pass-1's unmasked positions
                              masked); the prompt never masked, every completion position
                              counts (no completion mask)
    espo.adv f32 [B]  espo.old f32 [B]  espo.ref f32 [B]  espo.eps_beta f32 [2] = [0.2, 0.01]
    espo.loss f32 [1]         -sum_b min(rho A, clip(rho) A) / B + beta sum_b k2_b / (B Lc),
                              rho = exp((ELBO - old) / Lc), k2 = (ELBO - ref)^2 / 2
    espo.kl f32 [1]           sum_b k2_b / (B Lc)
    espo.clip_frac f32 [1]    share of sequences whose clipped branch is selected
    espo.grad.<HF name>       every parameter
    espo_onpolicy.loss, espo_onpolicy.grad.<HF name>: the same with old = ELBO (detached:
                              rho = 1, ESPO's num_iterations == 1)

Part 5, d2 StepMerge (kuleshov-group/d2 diffu-grpo/diffu_grpo_trainer.py: generate's
segments and trajectory, _get_per_token_logps, compute_loss; the tokens, completion mask,
prompt mask and advantages of part 2):
    d2.rev i32 [B,Lc]         the sampler step (0..S-1) that revealed each completion token
    d2.meta i32 [3]           [S steps, N segments, inner iteration it]
    d2.old f32 [B,Lc]  d2.ref f32 [B,Lc]
    d2.loss f32 [1]           segments = [int(j * (S / N)) for j in 1..N-1]; trajectory[k] = the
                              canvas after step segments[k-1] (trajectory[0]: all masked);
                              row r scores segment k_r = (r + it) mod N from prompt (part 2's
                              mask) ++ trajectory[k_r]'s completion; loss = sum(tok * mask) * N /
                              sum(cm), mask = (revealed in segment k_r) & cm, tok as in part 2
    d2.grad.<HF name>         every parameter

Part 6, SPG (facebookresearch/SPG spg/spg_trainer.py: forward_process "block_random",
_get_per_seq_logps, compute_loss; the tokens, completion mask and advantages of part 2,
block length 3, num_t 2 draws, min_t 0, max_t 1, p_mask_prompt 0.15):
    spg.mask i32 [NT,B,T]     each draw's input mask (1 = [MASK]), from SPG's forward_process
    spg_<kind>.meta f32 [2]   [eubo_beta, mix_weight]; kind "mix" (1.0, 0.5) and "eubo" (2.0, 1.0)
    spg_<kind>.loss f32 [1]   sum_b (-A_b S_b) n_b / sum_b n_b, n_b = |completion|, S_b the ELBO
                              (mean over draws of the mean log-prob of masked completion tokens)
                              for A_b > 0, else mix EUBO_b + (1-mix) ELBO_b with
                              EUBO_b = sum_{k: a_k > 0} log a_k / |{k: a_k > 0}| / beta,
                              a_k = mean over draws of p^beta masked_k / t (t: share masked)
    spg_<kind>.grad.<HF name> every parameter

Part 3, wd1 (same inputs as part 2): per group, w+ = softmax(A), w- = softmax(-A) over the
group's rows, omega_b = w+_b - w-_b; tok = -omega_b logp + beta kl; loss = sum(tok*cm)/sum(cm).
    wd1.loss f32 [1]
    wd1.grad.<HF name>               every parameter

Part 7, dual-clip PPO (Ye et al. 2020; verl/trainer/ppo/core_algos.py at b178a3c,
compute_policy_loss_vanilla, lines 1229-1235): for A < 0 the surrogate -min(rho A, clip(rho) A)
is capped at -c A, so a ratio past c gives no gradient.
    dual.c f32 [1]                   c = 2.0
    grpo_dual.loss f32 [1]           part 2's loss (its inputs) with the cap; grpo_dual.clip_frac the
                                     share of completion tokens a clip (either) leaves without gradient
    grpo_dual.grad.<HF name>         every parameter
    espo_dual.old f32 [B]            part 4's with sequence 1 at rho = exp(3/Lc) and 3 at exp(5/Lc)
    espo_dual.loss f32 [1]  espo_dual.clip_frac f32 [1]  espo_dual.grad.<HF name>: part 4's
                                     objective with the cap and this old
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_torch import LLaDA, LLaDAConfig  # noqa: E402
from ref_dump import Writer, read_records  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = os.path.join(ROOT, "tests", "data", "ref_core.bin")
OUT = os.path.join(ROOT, "tests", "data", "ref_recipe.bin")

MASK_ID = 47
EOS_ID = 46
SEED = 20250

# part 1
SFT_B, SFT_T = 2, 12
SFT_PROMPT_LENS = [4, 6]
SFT_P = [0.45, 0.8]
SFT_EOS_PAD = 3

# parts 2, 3
G, N_PROMPTS = 2, 2
GR_B = G * N_PROMPTS
GR_P, GR_LC = 5, 6
GR_T = GR_P + GR_LC
P_MASK_PROMPT = 0.15
ADV = [0.7, -0.7, 0.25, -0.25]
EPS, BETA = 0.2, 0.04
DUAL_C = 2.0                         # part 7's dual-clip c (verl's default is 3; 2 puts rho = e past it)
EOS_AT = [(1, 3), (3, 0)]            # (row, completion position) forced to EOS
# (row, k, delta) overriding the 0.3 N(0,1) old-logp offsets; rho = exp(-delta):
FORCED_DELTA = [
    (0, 1, -1.0),   # A > 0, rho = e   > 1+eps: clipped high, clipped branch selected
    (1, 2, +1.0),   # A < 0, rho = 1/e < 1-eps: clipped low, clipped branch selected
    (0, 4, +1.0),   # A > 0, rho < 1-eps: outside the range but min picks the ratio branch
    (1, 0, -1.0),   # A < 0, rho > 1+eps: outside the range but min picks the ratio branch
]


def f32(x):
    """float64 tensor holding the float32 rounding of x."""
    return torch.as_tensor(x, dtype=torch.float64).float().double()


# ---------------------------------------------------------------------------------------
# reading ref_core.bin

def load_model():
    recs = read_records(CORE)
    d = dict(recs)
    V, C, L, H, KV, Fd, S, mask_id, tied = d["config"].tolist()
    assert (V, C, L, H, KV, Fd, S, mask_id, tied) == (48, 32, 2, 4, 2, 64, 16, MASK_ID, 0)
    cfg = LLaDAConfig(vocab_size=V, dim=C, n_layers=L, n_heads=H, n_kv_heads=KV, ffn_dim=Fd,
                      max_seq_len=S, rope_theta=float(d["rope_theta"][0]),
                      norm_eps=1e-5, mask_id=mask_id, tied=bool(tied))
    # the file holds float32(1e-5); ref_dump.py computed with the double 1e-5
    assert cfg.rope_theta == 10000.0 and d["norm_eps"][0] == np.float32(1e-5)
    model = LLaDA(cfg, dtype=torch.float64)
    names = [n for n, _ in model.named_parameters()]
    # parameters are the records with these names; check ref_core's order is model order
    stored = [n for n, _ in recs if n in set(names)]
    assert stored == names, (stored, names)
    with torch.no_grad():
        for n, w in model.named_parameters():
            w.copy_(torch.from_numpy(d[n]).double())
    # the loaded model must reproduce ref_core's stored logits and loss
    with torch.no_grad():
        noisy = torch.from_numpy(d["noisy"]).long()
        logits = model(noisy)
        dl = (logits - torch.from_numpy(d["logits"]).double()).abs().max().item()
    print(f"ref_core.bin reloaded: max |d logits| vs stored {dl:.2e}")
    assert dl < 1e-6, dl
    return model, cfg


def grads_of(model, loss):
    model.zero_grad()
    loss.backward()
    return [(n, w.grad.clone()) for n, w in model.named_parameters()]


def fd_check(model, loss_fn, g, label, h=1e-5, n_entries=3):
    """Central differences vs autograd on a few entries of a few parameters (float64)."""
    model.zero_grad()
    loss_fn().backward()
    worst = 0.0
    params = dict(model.named_parameters())
    for name in ["model.transformer.blocks.0.q_proj.weight",
                 "model.transformer.blocks.1.attn_norm.weight",
                 "model.transformer.blocks.1.up_proj.weight",
                 "model.transformer.ln_f.weight",
                 "model.transformer.ff_out.weight"]:
        w = params[name]
        flat = w.data.view(-1)
        for i in torch.randint(0, flat.numel(), (n_entries,), generator=g).tolist():
            orig = flat[i].item()
            with torch.no_grad():
                flat[i] = orig + h
                lp = loss_fn().item()
                flat[i] = orig - h
                lm = loss_fn().item()
                flat[i] = orig
            fd = (lp - lm) / (2 * h)
            an = w.grad.view(-1)[i].item()
            assert np.isfinite(fd) and np.isfinite(an), (label, name, fd, an)
            worst = max(worst, abs(fd - an) / max(1e-6, abs(fd) + abs(an)))
    print(f"{label}: finite differences vs autograd max rel err {worst:.2e}")
    assert worst < 1e-6, worst


# ---------------------------------------------------------------------------------------
# part 1: masked SFT

def sft_inputs(g):
    B, T = SFT_B, SFT_T
    tokens = torch.randint(0, EOS_ID, (B, T), generator=g)        # [0, 45]
    tokens[:, T - SFT_EOS_PAD:] = EOS_ID
    prompt_lens = torch.tensor(SFT_PROMPT_LENS)
    p = f32(SFT_P)
    pos = torch.arange(T)
    is_resp = pos[None, :] >= prompt_lens[:, None]                 # [B,T]
    u = torch.rand(B, T, generator=g, dtype=torch.float64)
    mask = (u < p[:, None]) & is_resp
    for b in range(B):                                             # >= 1 masked per row
        if not mask[b].any():
            lo = int(prompt_lens[b])
            mask[b, lo + int(torch.randint(0, T - lo, (1,), generator=g))] = True
    assert not (mask & ~is_resp).any()
    return tokens, prompt_lens, p, mask


def sft_loss(model, tokens, prompt_lens, p, mask):
    B, T = tokens.shape
    logits = model(torch.where(mask, torch.full_like(tokens, MASK_ID), tokens))
    ce = F.cross_entropy(logits.reshape(B * T, -1), tokens.reshape(-1),
                         reduction="none").view(B, T)
    per_row = (ce * mask.double()).sum(1) / p / (T - prompt_lens).double()
    return per_row.mean()


# ---------------------------------------------------------------------------------------
# parts 2, 3: diffu-GRPO and wd1

def grpo_inputs(g):
    B, P, Lc = GR_B, GR_P, GR_LC
    prompts = torch.randint(0, EOS_ID, (N_PROMPTS, P), generator=g)    # [0, 45]
    prompts = prompts.repeat_interleave(G, dim=0)                      # rows 2g, 2g+1
    comp = torch.randint(0, EOS_ID + 1, (B, Lc), generator=g)          # [0, 46]
    for b, k in EOS_AT:
        comp[b, k] = EOS_ID
    tokens = torch.cat([prompts, comp], dim=1)
    # completion mask: up to and including the first EOS
    is_eos = comp == EOS_ID
    cm = torch.ones(B, Lc, dtype=torch.float64)
    for b in range(B):
        idx = is_eos[b].nonzero()
        if len(idx):
            cm[b, int(idx[0]) + 1:] = 0
    pm = torch.rand(B, P, generator=g, dtype=torch.float64) < P_MASK_PROMPT
    if not pm.any():
        pm.view(-1)[int(torch.randint(0, B * P, (1,), generator=g))] = True
    if pm.all():
        pm.view(-1)[int(torch.randint(0, B * P, (1,), generator=g))] = False
    return tokens, pm, cm


def grpo_input_ids(tokens, pm):
    x = tokens.clone()
    x[:, :GR_P][pm] = MASK_ID
    x[:, GR_P:] = MASK_ID
    return x


def grpo_logp(model, tokens, pm):
    logits = model(grpo_input_ids(tokens, pm))[:, GR_P:]              # [B,Lc,V]
    tgt = tokens[:, GR_P:]
    return logits.log_softmax(-1).gather(-1, tgt[..., None])[..., 0]  # [B,Lc]


def k3(ref, logp):
    return torch.exp(ref - logp) - (ref - logp) - 1


def kl_of(kind, ref, logp):
    # the per-token KL estimators (Schulman's k1, k2, k3), d = logp - ref; d1 uses k3
    d = logp - ref
    if kind == "k1":
        return d
    if kind == "k2":
        return 0.5 * d * d
    return k3(ref, logp)


def dual_clipped(l1, l2, A, c):
    # PPO's surrogate -min(l1, l2) and, with c > 0, dual-clip's ceiling -c A where A < 0
    # (verl/trainer/ppo/core_algos.py at b178a3c, lines 1229-1235); also which entries a clip
    # leaves without gradient
    pg = -torch.min(l1, l2)
    cut = l1 > l2
    if c > 0:
        floor = A < 0
        low = -A * c
        cut = cut | (floor & (low < pg))
        pg = torch.where(floor, torch.min(low, pg), pg)
    return pg, cut


def grpo_terms(logp, old, ref, adv, cm, eps, beta, kind="k3", c=0.0):
    rho = torch.exp(logp - old)
    A = adv[:, None]
    l1 = rho * A
    l2 = torch.clamp(rho, 1 - eps, 1 + eps) * A
    kl = kl_of(kind, ref, logp)
    pg, cut = dual_clipped(l1, l2, A.expand_as(l1), c)
    tok = pg + beta * kl
    n = cm.sum()
    loss = (tok * cm).sum() / n
    clip_frac = (cm * cut.double()).sum() / n
    mean_kl = (kl * cm).sum() / n
    return loss, clip_frac, mean_kl, rho


def wd1_omega(adv):
    a = adv.view(N_PROMPTS, G)
    return (a.softmax(-1) - (-a).softmax(-1)).reshape(-1)


def wd1_loss_of(logp, ref, adv, cm, beta):
    tok = -wd1_omega(adv)[:, None] * logp + beta * k3(ref, logp)
    return (tok * cm).sum() / cm.sum()


# ---------------------------------------------------------------------------------------
# part 4: ESPO's sequence-level ELBO

ESPO_MC = 2
ESPO_EPS, ESPO_BETA = 0.2, 0.01


def espo_masks(g):
    """forward_process of ESPO per draw: stratified counts over the batch, random positions."""
    B, Lc = GR_B, GR_LC
    ks, masks = [], []
    for _ in range(ESPO_MC):
        k = int(torch.randint(0, Lc + 1, (), generator=g))
        x = torch.round(torch.linspace(float(k), k + (B - 1) * ((Lc + 1) / B), steps=B,
                                       dtype=torch.float64)).long() % (Lc + 1)
        m = torch.zeros(B, Lc, dtype=torch.bool)
        for b in range(B):
            m[b, torch.randperm(Lc, generator=g)[:int(x[b])]] = True
        ks.append(k)
        masks.append(m)
    return ks, torch.stack(masks)


def espo_elbo(model, tokens, masks):
    """_get_elbo (reduce_var) averaged over the draws (_get_elbo_mc): [B]."""
    B, P, Lc = GR_B, GR_P, GR_LC
    tgt = tokens[:, P:]
    out = torch.zeros(B, dtype=torch.float64)
    for m in masks:
        p = (m.sum(1).double() / (Lc + 1))[:, None].expand(B, Lc)
        loss = torch.zeros(B, Lc, dtype=torch.float64)
        x1 = tokens.clone()
        x1[:, P:] = torch.where(m, torch.full_like(tgt, MASK_ID), tgt)
        ce1 = F.cross_entropy(model(x1)[:, P:].reshape(B * Lc, -1), tgt.reshape(-1),
                              reduction="none").view(B, Lc)
        loss = torch.where(m, ce1 / torch.where(m, p, torch.ones_like(p)), loss)
        x2 = tokens.clone()
        x2[:, P:] = torch.where(m, tgt, torch.full_like(tgt, MASK_ID))
        ce2 = F.cross_entropy(model(x2)[:, P:].reshape(B * Lc, -1), tgt.reshape(-1),
                              reduction="none").view(B, Lc)
        q = torch.where(~m, Lc / (Lc + 1) - p, torch.ones_like(p))    # no 0 in the unused branch
        loss = torch.where(~m, ce2 / q, loss)
        out = out + -(loss / 2).sum(-1)
    return out / len(masks)


def espo_loss_of(elbo, old, ref, adv, eps, beta, c=0.0):
    B, Lc = GR_B, GR_LC
    rho = torch.exp((elbo - old) / Lc)
    l1, l2 = rho * adv, torch.clamp(rho, 1 - eps, 1 + eps) * adv
    kl = (elbo - ref) ** 2 / 2
    pg, cut = dual_clipped(l1, l2, adv, c)
    loss = pg.sum() / B + beta * kl.sum() / (B * Lc)
    return loss, kl.sum() / (B * Lc), cut.double().mean()


# ---------------------------------------------------------------------------------------
# part 5: d2 StepMerge

D2_S, D2_N, D2_IT = 6, 3, 1


def d2_trajectory(tokens, rev):
    """The canvases at the segment starts and each segment's revealed tokens, replaying the
    sampler's steps as d2's generate records them."""
    B, P, Lc = GR_B, GR_P, GR_LC
    segments = [int(j * (D2_S / D2_N)) for j in range(1, D2_N)]
    x = tokens.clone()
    x[:, P:] = MASK_ID
    trajectory, tmask = [x.clone()], [torch.zeros(B, Lc, dtype=torch.bool) for _ in range(D2_N)]
    total = 0
    for step in range(D2_S):
        hit = rev == step
        x[:, P:] = torch.where(hit, tokens[:, P:], x[:, P:])
        tmask[len(trajectory) - 1] |= hit
        total += 1
        if len(trajectory) < D2_N and total == segments[len(trajectory) - 1]:
            trajectory.append(x.clone())
    return trajectory, tmask


def d2_loss_of(model, tokens, pm, rev, old, ref, adv, cm, eps, beta):
    trajectory, tmask = d2_trajectory(tokens, rev)
    B, P = GR_B, GR_P
    k = [(r + D2_IT) % D2_N for r in range(B)]
    inp = torch.stack([trajectory[k[r]][r] for r in range(B)])
    inp[:, :P] = torch.where(pm, torch.full_like(tokens[:, :P], MASK_ID), tokens[:, :P])
    logits = model(inp)[:, P:]
    logp = logits.log_softmax(-1).gather(-1, tokens[:, P:, None])[..., 0]
    rho = torch.exp(logp - old)
    A = adv[:, None]
    tok = -torch.min(rho * A, torch.clamp(rho, 1 - eps, 1 + eps) * A) + beta * k3(ref, logp)
    mask = torch.stack([tmask[k[r]][r] for r in range(B)]).double() * cm
    return (tok * mask).sum() * D2_N / cm.sum()


# ---------------------------------------------------------------------------------------
# part 6: SPG

SPG_BL, SPG_NT = 3, 2


def spg_masks(g, tokens, cm):
    """forward_process, forward_type block_random (min_t 0, max_t 1, use_mask_prompt)."""
    B, P, Lc, T = GR_B, GR_P, GR_LC, GR_T
    bl, nt = SPG_BL, SPG_NT
    nb = Lc // bl
    comp = cm.long()
    cnb = (comp.sum(-1) - 1) // bl + 1
    idx = torch.arange(nb).repeat(B, 1)
    for i in range(B):
        idx[i] = idx[i][torch.randperm(nb, generator=g)] % cnb[i]
    blk = idx[:, :nt]
    is_mask = torch.zeros(B, nt, T, dtype=torch.bool)
    for i in range(B):
        for j in range(nt):
            is_mask[i, j, T - (nb - int(blk[i, j])) * bl:] = True
    n = comp.sum(-1)
    follow = torch.ones(B, nt, T, dtype=torch.bool)
    for i in range(B):
        for j in range(nt):
            ml = min(bl, int(n[i]) - bl * int(blk[i, j]))
            num = int(torch.randint(1, ml + 1, (1,), generator=g))
            nxt = torch.arange(bl) < num
            start = T - (nb - int(blk[i, j])) * bl
            if int(blk[i, j]) == nb - 1 and ml == bl:
                follow[i, j, start:] = nxt[torch.randperm(bl, generator=g)]
            else:
                follow[i, j, start:start + ml] = nxt[:ml][torch.randperm(ml, generator=g)]
    cm_app = torch.cat([torch.ones(B, P, dtype=torch.bool), cm.bool()], dim=1)[:, None, :].expand(B, nt, T)
    rnd = torch.rand(B, nt, T, generator=g, dtype=torch.float64)
    is_mask_prompt = ~is_mask & (rnd < P_MASK_PROMPT)
    return is_mask_prompt | (is_mask & follow) | ~cm_app


def spg_loss_of(model, tokens, masks, adv, cm, beta_e, mix):
    B, P, Lc, T = GR_B, GR_P, GR_LC, GR_T
    nt = masks.shape[1]
    x = torch.where(masks, torch.full_like(tokens[:, None, :].expand(B, nt, T), MASK_ID),
                    tokens[:, None, :].expand(B, nt, T))
    logits = model(x.reshape(B * nt, T)).view(B, nt, T, -1)[:, :, P:]
    tgt = tokens[:, P:][:, None, :].expand(B, nt, Lc)
    logp = logits.log_softmax(-1).gather(-1, tgt[..., None])[..., 0]          # [B,nt,Lc]
    prob = logits.softmax(-1).gather(-1, tgt[..., None])[..., 0]
    cme = cm[:, None, :].expand(B, nt, Lc)
    pert = masks[:, :, P:].double()
    per_seq = (logp * cme * pert).sum(-1) / (cme * pert).sum(-1)               # [B,nt]
    t_emp = (cme * pert).sum(-1) / cme.sum(-1)
    avg = (prob.pow(beta_e) * pert * cme / t_emp[..., None]).mean(1)           # [B,Lc]
    dez = torch.where(avg == 0, torch.ones_like(avg), avg)
    lm = (avg > 0).double()
    eubo = (dez.log() * lm).sum(-1) / lm.sum(-1) / beta_e
    pos = per_seq.mean(-1)
    neg = mix * eubo + (1 - mix) * pos
    S = torch.where(adv > 0, pos, neg)
    n = cm.sum(-1)
    return ((-adv * S) * n).sum() / n.sum()


# ---------------------------------------------------------------------------------------

def check_float32(model, s_tok, s_pl, s_p, s_mask, tokens, pm, old, ref, adv, cm, eps, beta,
                  s_loss, g_loss, w_loss, s_grads, g_grads, w_grads):
    """The same weights and inputs in float32 agree with the float64 references to float32
    precision (a guide to the tolerances of the C test)."""
    m32 = LLaDA(model.cfg, dtype=torch.float32)
    m32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    s_p, old, ref, adv, cm = s_p.float(), old.float(), ref.float(), adv.float(), cm.float()
    eps, beta = eps.float(), beta.float()
    l1 = sft_loss(m32, s_tok, s_pl, s_p, s_mask)
    r1 = flat_grad(grads_of(m32, l1)).double()
    l2 = grpo_terms(grpo_logp(m32, tokens, pm), old, ref, adv, cm, eps, beta)[0]
    r2 = flat_grad(grads_of(m32, l2)).double()
    l3 = wd1_loss_of(grpo_logp(m32, tokens, pm), ref, adv, cm, beta)
    r3 = flat_grad(grads_of(m32, l3)).double()
    for label, a, b, ga, gb in (("sft", l1.item(), s_loss, r1, s_grads),
                                ("grpo", l2.item(), g_loss, r2, g_grads),
                                ("wd1", l3.item(), w_loss, r3, w_grads)):
        dg = (ga - flat_grad(gb)).abs().max().item()
        print(f"float32 vs float64 {label}: |d loss| {abs(a - b):.2e}, max |d grad| {dg:.2e}")
        assert abs(a - b) < 1e-5 and dg < 1e-5, (label, a - b, dg)


def flat_grad(grads):
    return torch.cat([gr.reshape(-1) for _, gr in grads])


def main():
    model, cfg = load_model()
    g = torch.Generator().manual_seed(SEED)
    pnames = [n for n, _ in model.named_parameters()]

    # ---- part 1
    s_tok, s_pl, s_p, s_mask = sft_inputs(g)
    s_loss = sft_loss(model, s_tok, s_pl, s_p, s_mask)
    s_grads = grads_of(model, s_loss)
    fd_check(model, lambda: sft_loss(model, s_tok, s_pl, s_p, s_mask), g, "sft")
    # cross-check against an explicit per-position loop
    with torch.no_grad():
        logits = model(torch.where(s_mask, torch.full_like(s_tok, MASK_ID), s_tok))
        tot = 0.0
        for b in range(SFT_B):
            acc = 0.0
            for i in range(SFT_T):
                if s_mask[b, i]:
                    acc += -logits[b, i].log_softmax(-1)[s_tok[b, i]].item() / s_p[b].item()
            tot += acc / (SFT_T - int(s_pl[b]))
        assert abs(tot / SFT_B - s_loss.item()) < 1e-12

    # ---- parts 2, 3
    tokens, pm, cm = grpo_inputs(g)
    adv = f32(ADV)
    eps_beta = f32([EPS, BETA])
    eps, beta = eps_beta[0], eps_beta[1]
    with torch.no_grad():
        logp0 = grpo_logp(model, tokens, pm)
    delta = 0.3 * torch.randn(GR_B, GR_LC, generator=g, dtype=torch.float64)
    for b, k, d in FORCED_DELTA:
        delta[b, k] = d
    old = f32(logp0 + delta)
    ref = f32(logp0 + 0.2 * torch.randn(GR_B, GR_LC, generator=g, dtype=torch.float64))

    logp = grpo_logp(model, tokens, pm)
    g_loss, clip_frac, mean_kl, rho = grpo_terms(logp, old, ref, adv, cm, eps, beta)
    g_grads = grads_of(model, g_loss)
    fd_check(model, lambda: grpo_terms(grpo_logp(model, tokens, pm), old, ref, adv, cm,
                                       eps, beta)[0], g, "grpo")

    w_loss = wd1_loss_of(grpo_logp(model, tokens, pm), ref, adv, cm, beta)
    w_grads = grads_of(model, w_loss)
    fd_check(model, lambda: wd1_loss_of(grpo_logp(model, tokens, pm), ref, adv, cm, beta),
             g, "wd1")

    # the clipped objective with the other KL estimators (same inputs)
    kl_variants = []
    for kind in ("k1", "k2"):
        l_k, _, kl_k, _ = grpo_terms(grpo_logp(model, tokens, pm), old, ref, adv, cm, eps, beta, kind)
        kl_variants.append((kind, l_k, kl_k, grads_of(model, l_k)))
        fd_check(model, lambda: grpo_terms(grpo_logp(model, tokens, pm), old, ref, adv, cm,
                                           eps, beta, kind)[0], g, "grpo " + kind)

    # ---- part 4: ESPO
    e_ks, e_masks = espo_masks(g)
    e_eb = f32([ESPO_EPS, ESPO_BETA])
    with torch.no_grad():
        elbo0 = espo_elbo(model, tokens, e_masks)
    # old: sequences 0 and 1 on the clipped side (A > 0 with rho > 1+eps, A < 0 with rho <
    # 1-eps), 2 and 3 inside the range; ref a little away from the policy
    e_old = f32(elbo0 + torch.tensor([-1.5, 1.5, 0.3, -0.4], dtype=torch.float64))
    e_ref = f32(elbo0 + torch.tensor([0.7, -0.5, 1.1, -0.9], dtype=torch.float64))
    e_elbo = espo_elbo(model, tokens, e_masks)
    e_loss, e_kl, e_clip = espo_loss_of(e_elbo, e_old, e_ref, adv, e_eb[0], e_eb[1])
    e_grads = grads_of(model, e_loss)
    fd_check(model, lambda: espo_loss_of(espo_elbo(model, tokens, e_masks), e_old, e_ref, adv,
                                         e_eb[0], e_eb[1])[0], g, "espo")
    rho_e = torch.exp((e_elbo.detach() - e_old) / GR_LC)
    print(f"espo: ELBO {[round(x, 4) for x in e_elbo.tolist()]}, rho {[round(x, 4) for x in rho_e.tolist()]}, "
          f"clip {e_clip.item():.3f}, counts {e_masks.sum(-1).tolist()} (k {e_ks})")
    assert e_clip.item() == 0.5 and (rho_e - (1 - e_eb[0])).abs().min() > 1e-3
    assert (rho_e - (1 + e_eb[0])).abs().min() > 1e-3
    eo = espo_elbo(model, tokens, e_masks)
    eo_loss = espo_loss_of(eo, eo.detach(), e_ref, adv, e_eb[0], e_eb[1])[0]
    eo_grads = grads_of(model, eo_loss)
    fd_check(model, lambda: espo_loss_of(espo_elbo(model, tokens, e_masks), elbo0, e_ref, adv,
                                         e_eb[0], e_eb[1])[0], g, "espo on-policy")

    # ---- part 5: d2 StepMerge (one token revealed per step: a permutation per row)
    d2_rev = torch.stack([torch.randperm(GR_LC, generator=g) for _ in range(GR_B)])
    d2_old = f32(logp0 + 0.3 * torch.randn(GR_B, GR_LC, generator=g, dtype=torch.float64))
    d2_ref = f32(logp0 + 0.2 * torch.randn(GR_B, GR_LC, generator=g, dtype=torch.float64))
    d2_loss = d2_loss_of(model, tokens, pm, d2_rev, d2_old, d2_ref, adv, cm, eps, beta)
    d2_grads = grads_of(model, d2_loss)
    fd_check(model, lambda: d2_loss_of(model, tokens, pm, d2_rev, d2_old, d2_ref, adv, cm, eps, beta),
             g, "d2")

    # ---- part 6: SPG
    spg_m = spg_masks(g, tokens, cm)
    spg_runs = []
    for kind, be, mx in (("mix", 1.0, 0.5), ("eubo", 2.0, 1.0)):
        meta = f32([be, mx])
        l_s = spg_loss_of(model, tokens, spg_m, adv, cm, meta[0], meta[1])
        spg_runs.append((kind, meta, l_s, grads_of(model, l_s)))
        fd_check(model, lambda: spg_loss_of(model, tokens, spg_m, adv, cm, meta[0], meta[1]), g,
                 "spg " + kind)

    # ---- part 7: dual-clip (after every other part's random draws, which it leaves as they were)
    # the clipped objective with dual-clip c: one A < 0 token at rho = e > c, others
    # between 1+eps and c (the ratio branch, as without it)
    dc = f32([DUAL_C])
    dc_loss, dc_clip, _, _ = grpo_terms(grpo_logp(model, tokens, pm), old, ref, adv, cm, eps, beta, c=dc[0])
    dc_grads = grads_of(model, dc_loss)
    fd_check(model, lambda: grpo_terms(grpo_logp(model, tokens, pm), old, ref, adv, cm, eps, beta,
                                       c=dc[0])[0], g, "grpo dual-clip")
    with torch.no_grad():
        rho_c = torch.exp(logp - old)
        neg = (adv[:, None] < 0).expand_as(rho_c) & (cm > 0)
        n_dual = int((neg & (rho_c > dc[0])).sum())
        n_mid = int((neg & (rho_c > 1 + eps) & (rho_c < dc[0])).sum())
        print(f"dual-clip c {dc[0].item()}: {n_dual} tokens with A < 0 past c, {n_mid} between 1+eps and c; "
              f"nearest ratio to c {(rho_c[cm > 0] - dc[0]).abs().min().item():.3e} away")
        assert n_dual >= 1 and n_mid >= 1 and (rho_c[cm > 0] - dc[0]).abs().min() > 1e-3
        assert dc_loss.item() != g_loss.item()
    # ESPO with dual-clip c: sequence 3 (A < 0) at rho = exp(5 / Lc) > c, sequence 1
    # (A < 0) at exp(3 / Lc), between 1+eps and c
    ed_old = f32(elbo0 + torch.tensor([-1.5, -3.0, 0.3, -5.0], dtype=torch.float64))
    ed_loss, _, ed_clip = espo_loss_of(espo_elbo(model, tokens, e_masks), ed_old, e_ref, adv, e_eb[0],
                                       e_eb[1], dc[0])
    ed_grads = grads_of(model, ed_loss)
    fd_check(model, lambda: espo_loss_of(espo_elbo(model, tokens, e_masks), ed_old, e_ref, adv, e_eb[0],
                                         e_eb[1], dc[0])[0], g, "espo dual-clip")
    rho_ed = torch.exp((e_elbo.detach() - ed_old) / GR_LC)
    print(f"espo dual-clip: rho {[round(x, 4) for x in rho_ed.tolist()]}, clipped {ed_clip.item():.3f}")
    assert rho_ed[3] > dc[0] + 1e-3 and 1 + e_eb[0] + 1e-3 < rho_ed[1] < dc[0] - 1e-3

    # ---- sanity checks
    rho_d = rho.detach()
    sel = cm > 0
    A = adv[:, None].expand_as(rho_d)
    high = sel & (rho_d > 1 + eps)
    low = sel & (rho_d < 1 - eps)
    high_sel = high & (A > 0)          # clipped branch selected
    low_sel = low & (A < 0)
    print(f"clip: {int(high.sum())} tokens rho > 1+eps ({int(high_sel.sum())} with A>0, "
          f"clipped branch), {int(low.sum())} tokens rho < 1-eps ({int(low_sel.sum())} with "
          f"A<0, clipped branch), of {int(cm.sum())} completion tokens")
    assert high_sel.any() and low_sel.any()
    assert (high & (A < 0)).any() and (low & (A > 0)).any()
    assert abs(clip_frac.item() - (high_sel | low_sel).double().sum().item() / cm.sum().item()) < 1e-15
    # no clip decision is near a tie, so float32 code takes the same branches
    gap = torch.min((rho_d - (1 - eps)).abs(), (rho_d - (1 + eps)).abs())[sel].min().item()
    print(f"closest ratio to a clip boundary: {gap:.3e} away")
    assert gap > 1e-3, gap

    # ratio 1, beta 0: GRPO gradient == -(1/sum cm) sum cm A dlogp
    lp = grpo_logp(model, tokens, pm)
    r1 = grads_of(model, grpo_terms(lp, lp.detach(), ref, adv, cm, eps, 0.0)[0])
    lp = grpo_logp(model, tokens, pm)
    pg = grads_of(model, -(cm * adv[:, None] * lp).sum() / cm.sum())
    d = (flat_grad(r1) - flat_grad(pg)).abs().max().item()
    print(f"ratio-1, beta 0: max |grad(grpo) - grad(-sum cm A logp / sum cm)| {d:.2e}")
    assert d < 1e-14, d
    # ref = logp: KL and its gradient vanish
    lp = grpo_logp(model, tokens, pm)
    kl0 = (k3(lp.detach(), lp) * cm).sum() / cm.sum()
    kg = flat_grad(grads_of(model, kl0)).abs().max().item()
    print(f"ref = logp: KL {kl0.item():.2e}, max |dKL| {kg:.2e}")
    assert kl0.item() == 0.0 and kg == 0.0
    # omega sums to zero within a group; for G = 2, omega_b = tanh((A_b - A_other) / 2),
    # which is tanh(A_b) here since each pair's advantages are (a, -a)
    om = wd1_omega(adv)
    assert abs(om.view(N_PROMPTS, G).sum(-1)).max() < 1e-15     # antisymmetric in a pair
    assert torch.allclose(om, torch.tanh(adv), atol=1e-15)      # G = 2: tanh(A) exactly

    check_float32(model, s_tok, s_pl, s_p, s_mask, tokens, pm, old, ref, adv, cm, eps, beta,
                  s_loss.item(), g_loss.item(), w_loss.item(), s_grads, g_grads, w_grads)

    # ---- write
    w = Writer()
    w.add("sft.tokens", s_tok)
    w.add("sft.prompt_lens", s_pl)
    w.add("sft.p", s_p)
    w.add("sft.mask", s_mask)
    w.add("sft.loss", s_loss.detach().reshape(1))
    for n, gr in s_grads:
        w.add("sft.grad." + n, gr)
    w.add("grpo.tokens", tokens)
    w.add("grpo.P", torch.tensor([GR_P]))
    w.add("grpo.prompt_mask", pm)
    w.add("grpo.completion_mask", cm.int())
    w.add("grpo.adv", adv)
    w.add("grpo.old", old)
    w.add("grpo.ref", ref)
    w.add("grpo.eps_beta", eps_beta)
    w.add("grpo.logp", logp.detach())
    w.add("grpo.loss", g_loss.detach().reshape(1))
    w.add("grpo.clip_frac", clip_frac.reshape(1))
    w.add("grpo.kl", mean_kl.detach().reshape(1))
    for n, gr in g_grads:
        w.add("grpo.grad." + n, gr)
    w.add("wd1.loss", w_loss.detach().reshape(1))
    for n, gr in w_grads:
        w.add("wd1.grad." + n, gr)
    for kind, l_k, kl_k, grads_k in kl_variants:
        w.add("grpo_" + kind + ".loss", l_k.detach().reshape(1))
        w.add("grpo_" + kind + ".kl", kl_k.detach().reshape(1))
        for n, gr in grads_k:
            w.add("grpo_" + kind + ".grad." + n, gr)
    w.add("spg.mask", spg_m.permute(1, 0, 2).int())
    for kind, meta, l_s, grads_s in spg_runs:
        w.add("spg_" + kind + ".meta", meta)
        w.add("spg_" + kind + ".loss", l_s.detach().reshape(1))
        for n, gr in grads_s:
            w.add("spg_" + kind + ".grad." + n, gr)
    w.add("d2.rev", d2_rev.int())
    w.add("d2.meta", torch.tensor([D2_S, D2_N, D2_IT]))
    w.add("d2.old", d2_old)
    w.add("d2.ref", d2_ref)
    w.add("d2.loss", d2_loss.detach().reshape(1))
    for n, gr in d2_grads:
        w.add("d2.grad." + n, gr)
    w.add("espo.mask", e_masks.int())
    w.add("espo.k", torch.tensor(e_ks))
    w.add("espo.elbo", e_elbo.detach())
    w.add("espo.adv", adv)
    w.add("espo.old", e_old)
    w.add("espo.ref", e_ref)
    w.add("espo.eps_beta", e_eb)
    w.add("espo.loss", e_loss.detach().reshape(1))
    w.add("espo.kl", e_kl.detach().reshape(1))
    w.add("espo.clip_frac", e_clip.reshape(1))
    for n, gr in e_grads:
        w.add("espo.grad." + n, gr)
    w.add("espo_onpolicy.loss", eo_loss.detach().reshape(1))
    for n, gr in eo_grads:
        w.add("espo_onpolicy.grad." + n, gr)
    w.add("dual.c", dc)
    w.add("grpo_dual.loss", dc_loss.detach().reshape(1))
    w.add("grpo_dual.clip_frac", dc_clip.reshape(1))
    for n, gr in dc_grads:
        w.add("grpo_dual.grad." + n, gr)
    w.add("espo_dual.old", ed_old)
    w.add("espo_dual.loss", ed_loss.detach().reshape(1))
    w.add("espo_dual.clip_frac", ed_clip.reshape(1))
    for n, gr in ed_grads:
        w.add("espo_dual.grad." + n, gr)
    w.write(OUT)

    # the written file must read back to the same values
    back = dict(read_records(OUT))
    assert abs(float(back["grpo.loss"][0]) - g_loss.item()) < 1e-6
    assert [n for n in back if n.startswith("sft.grad.")] == ["sft.grad." + n for n in pnames]

    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(w.records)} records, "
          f"{os.path.getsize(OUT)} bytes")
    print(f"sft.tokens      {s_tok.tolist()}")
    print(f"sft.prompt_lens {s_pl.tolist()}  p {s_p.tolist()}")
    print(f"sft.mask        {s_mask.int().tolist()}  (masked per row {s_mask.sum(1).tolist()})")
    print(f"sft.loss        {s_loss.item():.9f}")
    print(f"grpo.tokens     {tokens.tolist()}")
    print(f"grpo.prompt_mask {pm.int().tolist()}")
    print(f"grpo.completion_mask {cm.int().tolist()}")
    print(f"grpo.logp       {[[round(x, 5) for x in r] for r in logp.tolist()]}")
    print(f"rho             {[[round(x, 4) for x in r] for r in rho_d.tolist()]}")
    print(f"grpo.loss       {g_loss.item():.9f}")
    print(f"grpo.clip_frac  {clip_frac.item():.9f}")
    print(f"grpo.kl         {mean_kl.item():.9f}")
    print(f"wd1.omega       {[round(x, 9) for x in om.tolist()]}")
    print(f"wd1.loss        {w_loss.item():.9f}")
    for label, grads in (("sft", s_grads), ("grpo", g_grads), ("wd1", w_grads)):
        gmax = max(gr.abs().max().item() for _, gr in grads)
        print(f"{label:4s} max|grad| {gmax:.6e}, |grad| {flat_grad(grads).norm().item():.6e}")


if __name__ == "__main__":
    main()
