"""Merge the CSV rows of build/bench (impl d1) and tools/bench_torch.py (impl torch)
into one side-by-side table with the d1/torch ratios. Standard library only.

    python3 tools/bench_compare.py build/bench.csv

GPU rows (build/bench --device cuda: impl d1-cuda; tools/bench_torch.py --device cuda:
torch-cuda; sampler rows sampler_plain/<config>) are compared with their own device's
PyTorch rows, in a table of their own after the CPU one.
"""
import csv
import sys


def device_of(impl):
    """'d1' -> ('d1', ''), 'torch-cuda' -> ('torch', 'cuda')."""
    base, _, dev = impl.partition("-")
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
    devices = sorted({device_of(impl)[1] for impl, _, _ in rows})
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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/bench.csv")
