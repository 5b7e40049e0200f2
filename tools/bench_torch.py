"""PyTorch side of the d1.h benchmark: training and forward throughput of tools/llada_torch.py
(float32, and on the CPU also under bfloat16 autocast) on the masked-diffusion pretraining
objective.

    /usr/bin/python3 tools/bench_torch.py [--configs A,B,C] [--threads 1,2]
                                          [--device cpu|cuda] [--csv FILE] [--no-sampler]
                                          [--no-bf16]

A training step = draw t ~ U(0,1) per sequence, p = (1-1e-3) t + 1e-3, mask each token with
probability p, forward on the noisy batch, masked-diffusion loss, backward, AdamW step.
Throughput = B*T*steps / seconds, timed after 2 warm-up steps over at least MIN_SECONDS and
the config's minimum number of steps, whichever is longer. Each (config, threads) pair runs
in a fresh subprocess so its peak RSS (ru_maxrss, read at the end) is its own.
CSV rows: impl,config,threads,train_tok_s,fwd_tok_s,peak_rss_mib (impl = torch).

BF16 (CPU, default on; --no-bf16 drops it): each (config, threads) again, in a subprocess of
its own, rows with impl torch-bf16. The same FP32 model and AdamW (FP32 master weights and
moments); the forward runs under torch.autocast("cpu", dtype=torch.bfloat16): in torch 1.13
every nn.Linear (mm) and both attention products (bmm) run in bfloat16, forward and backward
(oneDNN's bf16 matmul where the CPU has AVX512-BF16), and what follows a bf16 matmul stays
bf16 until it meets an FP32 tensor (RoPE's cos/sin, the residual stream): the attention
softmax, SiLU and the gate product run in bfloat16; the embedding, the RMSNorms, the residual
adds are FP32. The logits come out bfloat16; the loss is taken on logits.float() outside
autocast (else llada_torch's loss weights 1/p would be cast to bfloat16), then backward and
AdamW as in FP32. The forward is model(x) under no_grad and autocast (bfloat16 logits).
Autocast casts the weights to bfloat16 anew in each step (its cast cache lives for one
autocast region); d1.h keeps a packed BF16 copy.

--device cuda: the same model in float32 with TF32 off (the d1.h CUDA backend is FP32), eager
(no torch.compile: this is the reference), one host thread, windows of MIN_SECONDS["cuda"]
(1 s), torch.cuda.synchronize() before every timer read. Default configs B,C,D (D: dim 1024,
16 layers, 16 heads, ffn 2816, T 512). Each config also times the plain sampler (LLaDA
generate.py at temperature 0, low_confidence: 8 prompts of 32, 64 generated, blocks of 32,
32 steps) on its own shape, as build/bench --device cuda does. Rows: impl torch-cuda, the
sampler rows as torch-cuda,sampler_plain/B,1,ms_per_sequence,generated_tok_s,passes.
Prints the torch version and the GPU's name first.
"""

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_torch import (LLaDA, LLaDAConfig, apply_mask, draw_mask,  # noqa: E402
                         masked_diffusion_loss, sample_p)

# vocab V, dim C, layers L, heads H, kv heads KV, ffn F, sequence T, batch B; min timed steps
CONFIGS = {
    "A": dict(V=64, C=128, L=4, H=4, KV=4, F=384, T=128, B=16, min_steps=5),
    "B": dict(V=64, C=256, L=6, H=8, KV=8, F=768, T=128, B=16, min_steps=5),
    "C": dict(V=256, C=512, L=8, H=8, KV=8, F=1536, T=256, B=8, min_steps=3),
    "D": dict(V=256, C=1024, L=16, H=16, KV=16, F=2816, T=512, B=8, min_steps=3),  # GPU default
}
DEFAULT_CONFIGS = {"cpu": "A,B,C", "cuda": "B,C,D"}
WARMUP = 2
MIN_SECONDS = {"cpu": 3.0, "cuda": 1.0}       # timing window of a throughput figure
SAMPLER_SECONDS = {"cpu": 2.0, "cuda": 1.0}   # timing window of the sampler figure
CSV_HEADER = "impl,config,threads,train_tok_s,fwd_tok_s,peak_rss_mib"
BLAS_THREAD_VARS = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "BLIS_NUM_THREADS"]


def setup_device(device):
    """FP32 as the d1.h backend computes it: no TF32 in matmuls or cuDNN. Torch >= 2.9 has
    the fp32_precision flags and raises on a mix of them with the legacy allow_tf32 ones,
    so only one of the two APIs is touched."""
    if device != "cuda":
        return
    if hasattr(torch.backends, "fp32_precision"):
        torch.backends.fp32_precision = "ieee"
        for mod in (torch.backends.cuda.matmul, torch.backends.cudnn,
                    getattr(torch.backends.cudnn, "conv", None),
                    getattr(torch.backends.cudnn, "rnn", None)):
            if mod is not None and hasattr(mod, "fp32_precision"):
                mod.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if hasattr(torch, "set_float32_matmul_precision"):
            torch.set_float32_matmul_precision("highest")


def tf32_state():
    """What the matmul precision flag says now (for the header line)."""
    if hasattr(torch.backends, "fp32_precision"):
        return f"matmul fp32_precision={torch.backends.cuda.matmul.fp32_precision}"
    return f"matmul allow_tf32={torch.backends.cuda.matmul.allow_tf32}"


def device_sync(device):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def tokens_per_second(step, tokens_per_step, min_steps, sync, min_seconds):
    """Run WARMUP untimed steps, then time steps until both min_steps and min_seconds."""
    for _ in range(WARMUP):
        step()
    sync()
    t0, n = time.perf_counter(), 0
    while True:
        step()
        n += 1
        if n >= min_steps:
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                return tokens_per_step * n / elapsed


def peak_rss_mib():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10  # bytes on macOS, KiB on Linux


def run_config(name, threads, device, bf16=False):
    """Benchmark one config at one thread count (in this process); returns a result dict.
    bf16: the forward passes under CPU autocast to bfloat16 (module doc)."""
    c = CONFIGS[name]
    setup_device(device)
    torch.set_num_threads(threads)
    torch.manual_seed(0)                      # parameter init (nn defaults)
    g = torch.Generator().manual_seed(1)      # data and masks, drawn on the CPU
    cfg = LLaDAConfig(vocab_size=c["V"], dim=c["C"], n_layers=c["L"], n_heads=c["H"],
                      n_kv_heads=c["KV"], ffn_dim=c["F"], max_seq_len=c["T"],
                      mask_id=c["V"] - 1)
    model = LLaDA(cfg, dtype=torch.float32).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    B, T = c["B"], c["T"]
    x0 = torch.randint(0, cfg.mask_id, (B, T), generator=g)   # clean tokens, never mask_id

    def noisy_batch():
        """Fresh forward-process draw: (x0, noisy, mask, p) on the device."""
        p = sample_p(B, eps=1e-3, generator=g)                # [B] float64
        mask = draw_mask(p, T, generator=g)                   # [B,T] bool
        xt = apply_mask(x0, mask, cfg.mask_id)
        return x0.to(device), xt.to(device), mask.to(device), p.to(device)

    def autocast():
        return (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())

    def train_step():
        x, xt, mask, p = noisy_batch()
        with autocast():
            logits = model(xt)
        loss = masked_diffusion_loss(logits.float(), x, mask, p)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def fwd_step():
        with torch.no_grad(), autocast():
            return model(noisy_batch()[1])

    if bf16 and fwd_step().dtype != torch.bfloat16:   # autocast applies (one untimed pass)
        raise RuntimeError("autocast to bfloat16 did not apply: FP32 logits")

    sync = device_sync(device)
    train = tokens_per_second(train_step, B * T, c["min_steps"], sync, MIN_SECONDS[device])
    fwd = tokens_per_second(fwd_step, B * T, c["min_steps"], sync, MIN_SECONDS[device])
    return dict(config=name, threads=threads, train_tok_s=train, fwd_tok_s=fwd,
                peak_rss_mib=peak_rss_mib())


@torch.no_grad()
def generate_plain(model, prompt, gen_len, block_len, steps, mask_id):
    """LLaDA generate.py at temperature 0, low_confidence, vectorised as the original
    (one topk per row); the sampler benchmark's PyTorch side."""
    B, P = prompt.shape
    x = torch.full((B, P + gen_len), mask_id, dtype=torch.long, device=prompt.device)
    x[:, :P] = prompt
    n_blocks = gen_len // block_len
    spb = steps // n_blocks
    for blk in range(n_blocks):
        lo, hi = P + blk * block_len, P + (blk + 1) * block_len
        n = (x[:, lo:hi] == mask_id).sum(dim=1, keepdim=True).cpu()   # the schedule, on the host
        k_sched = n // spb + (torch.arange(spb).unsqueeze(0) < n % spb).long()   # [B, spb]
        for s in range(spb):
            mask_index = x == mask_id
            logits = model(x)
            logits[..., mask_id] = float("-inf")
            x0 = logits.argmax(dim=-1)
            p = torch.softmax(logits.double(), dim=-1)
            conf = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
            conf[:, hi:] = float("-inf")
            conf = torch.where(mask_index, conf, torch.full_like(conf, float("-inf")))
            x0 = torch.where(mask_index, x0, x)
            for b in range(B):
                _, idx = torch.topk(conf[b], k=int(k_sched[b, s]))
                x[b, idx] = x0[b, idx]
    return x


def run_sampler(threads, device="cpu", name="A"):
    """ms per sequence: config `name`, 8 prompts of 32 tokens, 64 generated, blocks of 32,
    32 steps."""
    setup_device(device)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = CONFIGS[name]
    cfg = LLaDAConfig(vocab_size=c["V"], dim=c["C"], n_layers=c["L"], n_heads=c["H"],
                      n_kv_heads=c["KV"], ffn_dim=c["F"], max_seq_len=96, mask_id=c["V"] - 1)
    model = LLaDA(cfg, dtype=torch.float32).to(device)
    prompt = torch.randint(0, cfg.mask_id, (8, 32),
                           generator=torch.Generator().manual_seed(5)).to(device)
    sync = device_sync(device)
    generate_plain(model, prompt, 64, 32, 32, cfg.mask_id)                      # warm-up
    sync()
    t0, reps = time.perf_counter(), 0
    while True:
        generate_plain(model, prompt, 64, 32, 32, cfg.mask_id)
        reps += 1
        sync()
        t = time.perf_counter() - t0
        if t >= SAMPLER_SECONDS[device]:
            break
    return dict(ms_per_seq=1e3 * t / reps / 8, gen_tok_s=64 * 8 * reps / t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", help="default A,B,C on cpu, B,C,D on cuda")
    ap.add_argument("--threads", default="1,2", help="cpu only; cuda runs 1 host thread")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--csv", help="append result rows to this CSV file")
    ap.add_argument("--no-sampler", action="store_true", help="skip the sampler benchmark")
    ap.add_argument("--no-bf16", action="store_true",
                    help="skip the bfloat16 autocast rows (torch-bf16; cpu only)")
    ap.add_argument("--child-bf16", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-sampler", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    configs = (args.configs or DEFAULT_CONFIGS[args.device]).split(",")
    threads = [int(t) for t in args.threads.split(",")]
    cuda = args.device == "cuda"
    if cuda:
        threads = [1]
    for name in configs:
        if name not in CONFIGS:
            ap.error(f"unknown config {name!r} (have {','.join(CONFIGS)})")
    if cuda and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available")

    if args.child_sampler:
        print(json.dumps(run_sampler(threads[0], args.device, configs[0])))
        return
    if args.child:  # one config, one thread count: print the result as one JSON line
        r = run_config(configs[0], threads[0], args.device, bf16=args.child_bf16)
        if cuda and not args.no_sampler:   # the GPU's sampler figure, on this config's shape
            r["sampler"] = run_sampler(threads[0], args.device, configs[0])
        print(json.dumps(r))
        return

    impl = "torch-cuda" if cuda else "torch"
    if cuda:
        setup_device(args.device)   # the children do the same; here for the header
        print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), "
              f"{torch.cuda.get_device_name(0)}, float32, eager, {tf32_state()}", flush=True)
    # FP32, then (cpu) bfloat16 autocast: a subprocess each
    precisions = [False] if cuda or args.no_bf16 else [False, True]
    rows, samplers, failed = [], [], False
    w = max(6, len(impl), len("torch-bf16") if True in precisions else 0)
    print(f"{'impl':<{w}} {'config':<6} {'threads':>7} {'train_tok_s':>12} "
          f"{'fwd_tok_s':>12} {'peak_rss_mib':>12}", flush=True)
    for name in configs:
        for nt in threads:
            for bf16 in precisions:
                row_impl = "torch-bf16" if bf16 else impl
                # torch.set_num_threads does not reach the BLAS library torch may call (Debian's
                # torch uses BLIS, which reads its thread count from the environment at load)
                env = dict(os.environ, **{v: str(nt) for v in BLAS_THREAD_VARS})
                cmd = [sys.executable, os.path.abspath(__file__), "--child", "--configs", name,
                       "--threads", str(nt), "--device", args.device]
                cmd += ["--no-sampler"] if args.no_sampler or bf16 else []
                cmd += ["--child-bf16"] if bf16 else []
                try:
                    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                                         env=env).stdout
                    r = json.loads(out.strip().splitlines()[-1])
                except (subprocess.CalledProcessError, ValueError, IndexError) as e:
                    failed = True
                    print(f"{row_impl:<{w}} {name:<6} {nt:>7} skipped: {e}", flush=True)
                    continue
                rows.append(f"{row_impl},{name},{nt},{r['train_tok_s']:.1f},{r['fwd_tok_s']:.1f},"
                            f"{r['peak_rss_mib']:.1f}")
                print(f"{row_impl:<{w}} {name:<6} {nt:>7} {r['train_tok_s']:>12.1f} "
                      f"{r['fwd_tok_s']:>12.1f} {r['peak_rss_mib']:>12.1f}", flush=True)
                if "sampler" in r:
                    samplers.append((name, nt, r["sampler"]))
    for name, nt, r in samplers:   # cuda: one per config, measured in the config's child
        rows.append(f"{impl},sampler_plain/{name},{nt},{r['ms_per_seq']:.3f},"
                    f"{r['gen_tok_s']:.1f},32")
        print(f"sampler plain/{name} {nt} thr {r['ms_per_seq']:8.2f} ms/sequence "
              f"{r['gen_tok_s']:9.0f} generated tok/s", flush=True)
    if not args.no_sampler and not cuda:
        for nt in threads:
            env = dict(os.environ, **{v: str(nt) for v in BLAS_THREAD_VARS})
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-sampler",
                                  "--threads", str(nt)],
                                 check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append(f"torch,sampler_plain,{nt},{r['ms_per_seq']:.3f},{r['gen_tok_s']:.1f},32")
            print(f"sampler plain {nt} thr {r['ms_per_seq']:8.2f} ms/sequence "
                  f"{r['gen_tok_s']:9.0f} generated tok/s", flush=True)
    if args.csv and rows:
        new = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
        with open(args.csv, "a") as f:
            if new:
                f.write(CSV_HEADER + "\n")
            f.write("\n".join(rows) + "\n")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
