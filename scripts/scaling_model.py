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
    t1 = dict(zip(MODELS, [float(v) / 1e3 for v in sys.argv[1:4]] or [2.8e-3, 31e-3, 123e-3]))
    print("Per step: the ordered sum's time; the efficiency with the global batch fixed (strong)")
    print("and with the batch per rank fixed (weak: T1 / (T1 + T_reduce)).\n")
    heads = [f"{m} {link}" for m in MODELS for link in LINKS]
    print("| N | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    for n in RANKS:
        cells = []
        for name, p in MODELS.items():
            for a, b in LINKS.values():
                r, t = reduce_s(n, 4 * p, a, b), t1[name]
                cells.append(f"{r * 1e3:.2f} ms, {t / (n * (t / n + r)):.0%} / {t / (t + r):.0%}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\nThe ordered gather instead (every rank receives every gradient), ms per step:\n")
    print("| N | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    for n in RANKS:
        cells = [f"{gather_s(n, 4 * p, a, b) * 1e3:.1f}" for p in MODELS.values() for a, b in LINKS.values()]
        print(f"| {n} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{m} {4 * p / 1e6:.2f} MB (T1 {t1[m] * 1e3:.0f} ms)" for m, p in MODELS.items())
    print(f"\nGradients: {sizes}; links: " + ", ".join(f"{k} α {a * 1e6:.0f} µs" for k, (a, _) in LINKS.items()))


if __name__ == "__main__":
    main()
