"""Merge the CSV rows of build/bench (impl d1) and tools/bench_torch.py (impl torch)
into one side-by-side table with the d1/torch ratios. Standard library only.

    python3 tools/bench_compare.py build/bench.csv
"""
import csv
import sys


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
    torch_ms = {r[2]: float(r[3]) for r in sampler if r[0] == "torch"}
    for r in sampler:
        ratio = torch_ms.get(r[2], 0) / float(r[3]) if r[0] == "d1" and r[2] in torch_ms else 0
        print(f"{r[0]:6} {r[1]:26} threads {r[2]}: {float(r[3]):8.2f} ms/sequence, "
              f"{int(r[5]):3d} passes" + (f", {ratio:.2f}x PyTorch" if ratio else ""))
    print(f"{'config':6} {'thr':>3} | {'d1 train':>9} {'torch':>9} {'ratio':>6} | "
          f"{'d1 fwd':>9} {'torch':>9} {'ratio':>6} | {'d1 MiB':>7} {'torch':>7}")
    for (impl, cfg, thr), d in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if impl != "d1":
            continue
        t = rows.get(("torch", cfg, thr))
        if not t:
            continue
        print(f"{cfg:6} {thr:>3} | {d[0]:9.0f} {t[0]:9.0f} {d[0] / t[0]:6.2f} | "
              f"{d[1]:9.0f} {t[1]:9.0f} {d[1] / t[1]:6.2f} | {d[2]:7.0f} {t[2]:7.0f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/bench.csv")
