#!/usr/bin/env python3
"""Vectorised numpy peer for benches/kernels.rs: the Gaussian model-collapse ensemble.

R independent chains start at N(0, sigma0^2).  Each generation draws M samples per
chain from the current N(mu, sigma^2) and refits mu (sample mean) and sigma^2
(sample variance, ddof=1 "unbiased" or ddof=0 "mle").  Per generation it records the
statistics the Rust ensemble records, so that both do the same work: the mean, standard
error and central moments (2nd, 4th) of sigma^2, sigma, ln sigma^2, mu^2 and
W2^2 = mu^2 + (sigma - sigma0)^2; the quartiles of ln sigma^2 and of W2^2 (np.quantile,
linear); and the fraction of collapsed chains (sigma^2 < 1e-6 sigma0^2).

Methods timed (wall clock, time.perf_counter, min and median over --repeat runs):
  literal     draw an (R, M) block of normals per generation, reduce along axis 1
  sufficient  draw the sufficient statistics directly: mean ~ normal, var ~ chi^2
  normals     (--normals-only COUNT) raw standard-normal throughput, 1e6 per chunk

numpy's Generator is single-threaded; --threads only pins BLAS/OpenMP pools, which
must be set in the environment before numpy is imported.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

CHUNK = 1_000_000


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one-line error, exit code 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def positive(text):
    """Positive integer; accepts plain digits or exact float notation such as 1e8."""
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if not (float(value).is_integer() and value >= 1):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def parse_args():
    p = Parser(description="numpy peer for the Gaussian model-collapse benches")
    p.add_argument("--chains", type=positive, default=10_000, help="R, independent chains")
    p.add_argument("--samples", type=positive, default=100, help="M, samples per generation")
    p.add_argument("--generations", type=positive, default=1_000, help="N, generations")
    p.add_argument("--sigma", type=float, default=1.0, help="initial sigma (> 0)")
    p.add_argument("--estimator", choices=["unbiased", "mle"], default="unbiased")
    p.add_argument("--method", choices=["literal", "sufficient", "both"], default="both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=positive, default=1)
    p.add_argument("--repeat", type=positive, default=3)
    p.add_argument("--normals-only", type=positive, metavar="COUNT")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.samples < 2:
        p.error("--samples must be >= 2")
    if not (a.sigma > 0 and math.isfinite(a.sigma)):
        p.error("--sigma must be a positive finite number")
    if a.seed < 0:
        p.error("--seed must be non-negative")
    return a


def generation_stats(np, mu, s2, sigma0, collapse_log):
    """The per-generation statistics of the Rust ensemble (see the module docstring)."""
    sigma = np.sqrt(s2)
    log_s2 = np.log(s2)
    mse = mu * mu
    w2 = mse + (sigma - sigma0) ** 2
    moments = []
    for x in (s2, sigma, log_s2, mse, w2):
        mean = x.mean()
        d2 = (x - mean) ** 2
        m2, m4 = d2.sum(), (d2 * d2).sum()
        moments.append((mean, math.sqrt(m2 / (len(x) - 1) / len(x)), m2, m4))
    quartiles = (np.quantile(log_s2, (0.25, 0.5, 0.75)), np.quantile(w2, (0.25, 0.5, 0.75)))
    collapsed = np.count_nonzero(log_s2 < collapse_log) / len(s2)
    return moments, quartiles, collapsed


def run(np, method, R, M, N, sigma0, ddof, seed):
    """One full ensemble run; returns per-generation (mean sigma^2, mean W2^2)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    mu, s2 = np.zeros(R), np.full(R, sigma0 * sigma0)
    collapse_log = math.log(sigma0 * sigma0 * 1e-6)
    mean_s2, mean_w2 = np.empty(N), np.empty(N)
    z = np.empty((R, M)) if method == "literal" else None
    for i in range(N):
        sigma = np.sqrt(s2)
        if method == "literal":
            rng.standard_normal(out=z)
            z *= sigma[:, None]
            z += mu[:, None]
            mu, s2 = z.mean(axis=1), z.var(axis=1, ddof=ddof)
        else:
            mu = mu + sigma * rng.standard_normal(R) / math.sqrt(M)
            s2 = s2 * rng.chisquare(M - 1, R) / (M - ddof)
        moments, _, _ = generation_stats(np, mu, s2, sigma0, collapse_log)
        mean_s2[i], mean_w2[i] = moments[0][0], moments[4][0]
    return mean_s2, mean_w2


def draw_normals(np, count, seed):
    rng = np.random.Generator(np.random.PCG64(seed))
    buf = np.empty(CHUNK)
    for start in range(0, count, CHUNK):
        rng.standard_normal(out=buf[: min(CHUNK, count - start)])


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def report(rec, as_json):
    if as_json:
        print(json.dumps(rec), flush=True)
        return
    extra = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in rec.items() if k not in ("peer", "numpy_version", "method"))
    print(f"numpy {rec['numpy_version']} {rec['method']:<10} {extra}", flush=True)


def main():
    a = parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import numpy as np  # after the thread env vars are set

    base = {"peer": "numpy", "numpy_version": np.__version__}
    if a.normals_only:
        t_min, t_med, _ = timed(lambda: draw_normals(np, a.normals_only, a.seed), a.repeat)
        report({**base, "method": "normals", "count": a.normals_only, "seconds_min": t_min,
                "seconds_median": t_med, "normals_per_second": a.normals_only / t_min}, a.json)
        return
    R, M, N = a.chains, a.samples, a.generations
    ddof = 1 if a.estimator == "unbiased" else 0
    methods = ["literal", "sufficient"] if a.method == "both" else [a.method]
    for method in methods:
        t_min, t_med, (s2, w2) = timed(
            lambda: run(np, method, R, M, N, a.sigma, ddof, a.seed), a.repeat)
        rec = {**base, "method": method, "chains": R, "samples": M, "generations": N,
               "seconds_min": t_min, "seconds_median": t_med}
        if method == "literal":
            rec["normals_per_second"] = R * M * N / t_min
        rec.update(chain_generations_per_second=R * N / t_min,
                   final_mean_sigma2=float(s2[-1]), final_mean_w2_sq=float(w2[-1]))
        report(rec, a.json)


if __name__ == "__main__":
    main()
