#!/usr/bin/env python3
"""Vectorised numpy peer for benches/markov.rs: the categorical resampling ensemble.

R independent chains start at the same categorical distribution p over K categories
(Zipf with exponent S: p_i proportional to i^-S).  Each generation draws counts ~
Multinomial(M, p) per chain, with numpy's Generator.multinomial over the whole R x K
matrix of probabilities, and sets p = counts / M.  Per generation it records what the
Rust ensemble records: the mean and standard error over chains of the number of
surviving categories, the heterozygosity 1 - sum p^2 and the entropy -sum p ln p; the
largest probability; the absorbed fraction; and each chain's absorption time.

Timed with time.perf_counter (min and median over --repeat runs).  numpy's Generator is
single-threaded.
"""
import argparse
import json
import statistics
import sys
import time


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one-line error, exit code 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def positive(text):
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1 or float(text) != value:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args():
    p = Parser(description="numpy peer for the Wright-Fisher (markov) benches")
    p.add_argument("--chains", type=positive, default=1000, help="R")
    p.add_argument("--categories", type=positive, default=1000, help="K")
    p.add_argument("--samples", type=positive, default=10_000, help="M")
    p.add_argument("--generations", type=positive, default=1000, help="N")
    p.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent S >= 0")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=positive, default=1)
    p.add_argument("--no-stats", action="store_true",
                   help="time the multinomial resampling alone (no per-generation statistics)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not (a.zipf >= 0.0 and a.zipf < 1e3):
        p.error(f"--zipf must be in [0, 1000), got {a.zipf}")
    return a


def run(np, R, K, M, N, S, seed, stats=True):
    rng = np.random.default_rng(seed)
    w = np.arange(1, K + 1, dtype=np.float64) ** (-S)
    p = np.tile(w / w.sum(), (R, 1))
    absorbed_at = np.full(R, -1)
    rows = []
    for n in range(1, N + 1):
        counts = rng.multinomial(M, p)
        p = counts / M
        if not stats:
            continue
        alive = counts > 0
        surviving = alive.sum(axis=1)
        het = 1.0 - (p * p).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(alive, p * np.log(p), 0.0).sum(axis=1)
        largest = p.max(axis=1)
        absorbed = surviving <= 1
        absorbed_at[(absorbed_at < 0) & absorbed] = n
        rows.append(
            [
                (x.mean(), x.std(ddof=1) / np.sqrt(R))
                for x in (surviving.astype(np.float64), het, ent, largest)
            ]
            + [absorbed.mean()]
        )
    return rows, absorbed_at


def main():
    a = parse_args()
    import numpy as np

    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        rows, _ = run(np, a.chains, a.categories, a.samples, a.generations, a.zipf, a.seed,
                      stats=not a.no_stats)
        times.append(time.perf_counter() - t0)
    record = {
        "chains": a.chains,
        "categories": a.categories,
        "samples": a.samples,
        "generations": a.generations,
        "zipf": a.zipf,
        "seconds_min": min(times),
        "seconds_median": statistics.median(times),
        "statistics": not a.no_stats,
        "final_surviving_mean": rows[-1][0][0] if rows else None,
    }
    if a.json:
        print(json.dumps(record))
    else:
        for k, v in record.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
