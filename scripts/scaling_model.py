#!/usr/bin/env python3
"""The cost of one data-parallel step of `wgtrain train --distributed`, on paper.

A step on N ranks: each rank computes its share of the global batch (the one-rank step time
T1 split N ways, at best), then the gradient of G = 4·P bytes is summed in rank order by a
reduce-scatter (MPI_Alltoall of G/N-byte segments) and an all-gather of the summed segments:
2(N−1) messages and 2(N−1)/N·G bytes sent and received per rank — what a ring all-reduce
moves. The simpler ordered gather (every rank all-gathers every full gradient and adds them
itself) moves (N−1)·G per rank: N/2 times more.

    T_reduce(N) = 2(N−1)·α + 2(N−1)/N · G/β        (ours)
    T_gather(N) =  (N−1)·α +  (N−1)   · G/β        (ordered gather)
    T_step(N)   = T1/N + T_reduce(N),   efficiency = T1 / (N · T_step(N))

α: per-message latency, β: link bandwidth (line rate: an upper bound). Usage:

    python3 scripts/scaling_model.py [T1_small_ms T1_wide_ms T1_cnn_ms]

T1 defaults to the one-process CPU step times measured on the 2-core machine of README's
figures (`wgtrain train --device cpu`, its epoch's seconds over its steps).
"""
import sys

MODELS = {  # parameters (wgtrain's `small`, `wide` and `--model cnn`)
    "small": 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10,
    "wide": 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10,
    "cnn": 32 * 9 + 32 + 64 * 32 * 9 + 64 + 3136 * 128 + 128 + 128 * 10 + 10,
}
LINKS = {"10 Gb/s": (25e-6, 1.25e9), "100 Gb/s": (2e-6, 12.5e9)}  # (α s, β bytes/s)
RANKS = [2, 4, 8, 16, 32, 64]


def reduce_s(n, g, alpha, beta):
    return 2 * (n - 1) * alpha + 2 * (n - 1) / n * g / beta


def gather_s(n, g, alpha, beta):
    return (n - 1) * alpha + (n - 1) * g / beta


def main():
    t1 = dict(zip(MODELS, [float(v) / 1e3 for v in sys.argv[1:4]] or [4.0e-3, 37e-3, 270e-3]))
    print("| model (gradient) | link | " + " | ".join(f"N={n}" for n in RANKS) + " |")
    print("|---|---|" + "---|" * len(RANKS))
    for name, p in MODELS.items():
        g = 4 * p
        for link, (a, b) in LINKS.items():
            cells = []
            for n in RANKS:
                r, o = reduce_s(n, g, a, b), gather_s(n, g, a, b)
                eff = t1[name] / (n * (t1[name] / n + r))
                cells.append(f"{r * 1e3:.2f} ms ({o * 1e3:.1f}), {eff:.0%}")
            print(f"| {name} ({g / 1e6:.2f} MB, T1 {t1[name] * 1e3:.0f} ms) | {link} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
