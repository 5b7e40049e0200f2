"""Merge the CSV rows of build/bench (impl d1) and tools/bench_torch.py (impl torch)
into one side-by-side table with the d1/torch ratios. Standard library only.

    python3 tools/bench_compare.py build/bench.csv

GPU rows (build/bench --device cuda: impl d1-cuda; tools/bench_torch.py --device cuda:
torch-cuda; sampler rows sampler_plain/<config>) are compared with their own device's
PyTorch rows, in a table of their own after the CPU one.

BF16 rows (impl d1-bf16: D1_PRECISION_BF16_MIXED training, D1_PRECISION_BF16 forward;
torch-bf16: CPU autocast to bfloat16) get a table of their own last: d1.h BF16 against
PyTorch BF16, and each one's BF16 speed-up over its own FP32 row. A row with no partner
prints "-" where the partner's figures would be.
"""
import csv
import sys


def parse_impl(impl):
    """'d1' -> ('d1', '', 'fp32'), 'torch-cuda' -> ('torch', 'cuda', 'fp32'),
    'd1-bf16' -> ('d1', '', 'bf16')."""
    base, *tags = impl.split("-")
    prec = "bf16" if "bf16" in tags else "fp32"
    dev = "-".join(t for t in tags if t != "bf16")
    return base, dev, prec


def device_of(impl):
    """'d1' -> ('d1', ''), 'torch-cuda' -> ('torch', 'cuda')."""
    base, dev, _ = parse_impl(impl)
    return base, dev


def sampler_key(r):
    """(device, config, threads) of a sampler row; config '' on the CPU (always config A)."""
    _, _, cfg = r[1].partition("/")
    return device_of(r[0])[1], cfg, r[2]


def main(path):
    rows = {}
    matmul, sampler = [], []
    with open(path) as f:
        for r in csv.reader(f):
            if not r or r[0] == "impl":
                continue
            if r[1].startswith("matmul_"):
                matmul.append(r)
                continue
            if r[1].startswith("sampler_"):
                sampler.append(r)
                continue
            rows[(r[0], r[1], r[2])] = [float(x) for x in r[3:6]]
    for r in matmul:
        print(f"{r[0]:6} {r[1]:24} threads {r[2]}: {float(r[3]):8.1f} GFLOP/s")
    # each d1 sampler row against PyTorch's plain sampler on the same device, config, threads
    torch_ms = {sampler_key(r): float(r[3]) for r in sampler
                if device_of(r[0])[0] == "torch" and r[1].startswith("sampler_plain")}
    # CPU rows in file order; device rows grouped by device and config, d1 first
    sampler = ([r for r in sampler if not sampler_key(r)[0]]
               + sorted((r for r in sampler if sampler_key(r)[0]),
                        key=lambda r: (sampler_key(r), device_of(r[0])[0] != "d1")))
    w = max([6] + [len(r[0]) for r in sampler])
    for r in sampler:
        key, dev = sampler_key(r), device_of(r[0])[1]
        ms = float(r[3])
        ratio = torch_ms[key] / ms if device_of(r[0])[0] == "d1" and key in torch_ms and ms > 0 else 0
        print(f"{r[0]:{w}} {r[1]:26} threads {r[2]}: {ms:8.2f} ms/sequence, "
              + (f"{float(r[4]):9.0f} generated tok/s, " if dev else "")
              + f"{int(r[5]):3d} passes" + (f", {ratio:.2f}x PyTorch" if ratio else ""))
    devices = sorted({device_of(impl)[1] for impl, _, _ in rows if parse_impl(impl)[2] == "fp32"})
    for dev in devices:
        suffix = "-" + dev if dev else ""
        if dev:
            print(f"device {dev}: d1{suffix} against torch{suffix} (tokens/s; MiB = host peak RSS)")
        print(f"{'config':6} {'thr':>3} | {'d1 train':>9} {'torch':>9} {'ratio':>6} | "
              f"{'d1 fwd':>9} {'torch':>9} {'ratio':>6} | {'d1 MiB':>7} {'torch':>7}")
        for (impl, cfg, thr), d in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if impl != "d1" + suffix:
                continue
            t = rows.get(("torch" + suffix, cfg, thr))
            if not t:
                continue
            r_train = d[0] / t[0] if t[0] > 0 else 0.0
            r_fwd = d[1] / t[1] if t[1] > 0 else 0.0
            print(f"{cfg:6} {thr:>3} | {d[0]:9.0f} {t[0]:9.0f} {r_train:6.2f} | "
                  f"{d[1]:9.0f} {t[1]:9.0f} {r_fwd:6.2f} | {d[2]:7.0f} {t[2]:7.0f}")
    bf16_table(rows)


def bf16_table(rows):
    """d1-bf16 against torch-bf16 (tokens/s, ratio d1/torch), then BF16 over FP32 for each
    (the x columns); '-' where a row is missing."""
    keys = sorted({(cfg, thr) for (impl, cfg, thr) in rows if impl in ("d1-bf16", "torch-bf16")})
    if not keys:
        return

    def num(v):
        return f"{v:9.0f}" if v is not None else f"{'-':>9}"

    def ratio(a, b, w=6):
        return f"{a / b:{w}.2f}" if a is not None and b is not None and b > 0 else f"{'-':>{w}}"

    def col(impl, cfg, thr, i):
        r = rows.get((impl, cfg, thr))
        return r[i] if r and r[i] > 0 else None

    print("BF16: d1-bf16 (train BF16_MIXED, forward BF16) against torch-bf16 (CPU autocast); "
          "tokens/s; x = BF16 over the same implementation's FP32")
    print(f"{'config':6} {'thr':>3} | {'d1 train':>9} {'torch':>9} {'ratio':>6} | "
          f"{'d1 fwd':>9} {'torch':>9} {'ratio':>6} | {'d1 x trn':>8} {'x fwd':>6} | "
          f"{'pt x trn':>8} {'x fwd':>6} | {'d1 MiB':>7} {'torch':>7}")
    for cfg, thr in keys:
        d = [col("d1-bf16", cfg, thr, i) for i in range(3)]
        t = [col("torch-bf16", cfg, thr, i) for i in range(3)]
        d32 = [col("d1", cfg, thr, i) for i in range(2)]
        t32 = [col("torch", cfg, thr, i) for i in range(2)]
        mib = [f"{v:7.0f}" if v is not None else f"{'-':>7}" for v in (d[2], t[2])]
        print(f"{cfg:6} {thr:>3} | {num(d[0])} {num(t[0])} {ratio(d[0], t[0])} | "
              f"{num(d[1])} {num(t[1])} {ratio(d[1], t[1])} | "
              f"{ratio(d[0], d32[0], 8)} {ratio(d[1], d32[1])} | "
              f"{ratio(t[0], t32[0], 8)} {ratio(t[1], t32[1])} | {mib[0]} {mib[1]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/bench.csv")
