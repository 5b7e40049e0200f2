"""PyTorch reference of LLaDA's `generate.py` sampler (DESIGN.md section 6), the oracle
that tests/data/ref_sampler.bin is made from (see tools/ref_sampler_dump.py).

Semantics (temperature 0 only):
  * canvas x = prompt [B,P] ++ gen_len x mask_id; gen_len is cut into blocks of block_len,
    decoded left to right. Without a threshold, steps are shared evenly by the blocks
    (steps % num_blocks == 0, steps_per_block = steps // num_blocks).
  * at block start, per row, n = masked positions of the block; step s of the block
    reveals n // steps_per_block tokens, plus one if s < n % steps_per_block.
  * each step is one forward pass over the whole canvas (a CFG step runs the conditional
    and the unconditional canvas, whose prompt is replaced by mask_id, in one batch of 2B
    and counts as one pass): logits = un + (cfg_scale + 1) * (cond - un).
  * deviation from generate.py (documented in d1.h): the logit of mask_id, and of eos_id
    when suppress_eos, is -inf before the argmax and the softmax.
  * x0 = argmax(logits); p = softmax(logits) in float64; confidence:
      'low_confidence' p[x0], 'margin' p_top1 - p_top2, 'entropy' sum_v p log p.
    Only the masked positions of the current block are candidates (others -inf).
  * without a threshold each row reveals its k most confident candidates; with a
    threshold (Fast-dLLM) each row reveals its most confident candidate and every other
    one whose confidence >= threshold, and the block repeats until it has no masks
    (steps is ignored). Ties in confidence go to the lower position.
Returns (canvas [B, P+gen_len], forward passes).
"""

import torch

REMASKING = {"low_confidence": 0, "random": 1, "margin": 2, "entropy": 3}


def transfer_count(n, steps_per_block, s):
    """Tokens that step s of a block with n masks reveals (generate.py's schedule)."""
    return n // steps_per_block + (1 if s < n % steps_per_block else 0)


def confidence(logits, x0, remasking):
    """logits [..., V] (banned ids already -inf), x0 [...] -> confidence [...] float64."""
    p = torch.softmax(logits.double(), dim=-1)
    if remasking == "low_confidence":
        return p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    if remasking == "margin":
        top = p.topk(2, dim=-1).values
        return top[..., 0] - top[..., 1]
    if remasking == "entropy":
        plogp = torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))  # 0 log 0 = 0
        return plogp.sum(-1)
    raise ValueError(f"remasking {remasking!r} not supported by the reference")


def order_candidates(conf_row, lo, hi):
    """Positions in [lo, hi) with finite confidence, most confident first, ties by
    lower position first. conf_row [T] float64."""
    cand = [i for i in range(lo, hi) if conf_row[i].item() != float("-inf")]
    return sorted(cand, key=lambda i: (-conf_row[i].item(), i))


@torch.no_grad()
def generate(model, prompt, gen_len, block_len, steps, temperature=0.0,
             remasking="low_confidence", mask_id=None, cfg_scale=0.0, threshold=None,
             eos_id=None, suppress_eos=False, callback=None):
    """prompt [B,P] long -> (x [B, P+gen_len] long, forward passes).

    callback(info) is called after every step with a dict: block, step (in block),
    logits [B,T,V] (as used, banned ids -inf), x0 [B,T], conf [B,T] (-inf off
    candidates), order (per row: candidate positions, most confident first),
    k (per row: tokens revealed), x (canvas after the step).
    """
    assert mask_id is not None
    assert temperature == 0.0, "the reference implements temperature 0 only"
    B, P = prompt.shape
    assert gen_len % block_len == 0
    num_blocks = gen_len // block_len
    if threshold is None:
        assert steps % num_blocks == 0
        steps_per_block = steps // num_blocks
    if suppress_eos:
        assert eos_id is not None
    x = torch.full((B, P + gen_len), mask_id, dtype=torch.long)
    x[:, :P] = prompt
    passes = 0

    for blk in range(num_blocks):
        lo, hi = P + blk * block_len, P + (blk + 1) * block_len
        n_start = [(x[b, lo:hi] == mask_id).sum().item() for b in range(B)]
        s = 0
        while True:
            if threshold is None:
                if s >= steps_per_block:
                    break
            elif not (x[:, lo:hi] == mask_id).any():
                break
            mask_index = x == mask_id
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[:, :P] = mask_id
                both = model(torch.cat([x, un_x], dim=0))
                cond, un = both[:B], both[B:]
                logits = un + (cfg_scale + 1) * (cond - un)
            else:
                logits = model(x)
            passes += 1
            logits = logits.clone()
            logits[..., mask_id] = float("-inf")
            if suppress_eos:
                logits[..., eos_id] = float("-inf")
            x0 = logits.argmax(dim=-1)
            conf = confidence(logits, x0, remasking)
            cand = torch.zeros_like(mask_index)
            cand[:, lo:hi] = mask_index[:, lo:hi]
            conf = torch.where(cand, conf, torch.full_like(conf, float("-inf")))
            x0 = torch.where(mask_index, x0, x)

            orders, ks = [], []
            for b in range(B):
                order = order_candidates(conf[b], lo, hi)
                if threshold is None:
                    k = transfer_count(n_start[b], steps_per_block, s)
                    assert k <= len(order)
                elif not order:
                    k = 0
                else:
                    k = 1
                    while k < len(order) and conf[b, order[k]].item() >= threshold:
                        k += 1
                for i in order[:k]:
                    x[b, i] = x0[b, i]
                orders.append(order)
                ks.append(k)
            if callback is not None:
                callback(dict(block=blk, step=s, logits=logits, x0=x0, conf=conf,
                              order=orders, k=ks, x=x.clone()))
            s += 1
    return x, passes
