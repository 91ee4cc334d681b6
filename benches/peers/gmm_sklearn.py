#!/usr/bin/env python3
"""scikit-learn peer for benches/gmm.rs: the paper's GMM experiment.

The paper refits sklearn.mixture.GaussianMixture(n_components=2, covariance_type="full",
tol=1e-5, max_iter=2000) each generation to --samples draws of the previous fit, starting from
--samples draws of N(0, I_2). This script times, on one thread (BLAS/OpenMP pinned by the
caller's environment):
  fits         --fits single fits to fresh N(0, I_2) samples (min and median seconds per fit)
  generations  one chain of --generations generations (total seconds, EM iterations), and the
               final components' standard deviations (sqrt of the covariance eigenvalues)
and prints one JSON object.
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


def main():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--fits", type=int, default=200)
    p.add_argument("--generations", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.samples < 6 or a.fits < 1 or a.generations < 0:
        p.error("need --samples >= 6, --fits >= 1, --generations >= 0")
    import numpy as np
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(a.seed)
    gm = lambda s: GaussianMixture(
        n_components=2, covariance_type="full", tol=1e-5, max_iter=2000, random_state=s
    )
    times, iters = [], []
    for i in range(a.fits):
        x = rng.standard_normal((a.samples, 2))
        t = time.perf_counter()
        m = gm(i).fit(x)
        times.append(time.perf_counter() - t)
        iters.append(int(m.n_iter_))
    out = {
        "samples": a.samples,
        "fit_seconds_min": min(times),
        "fit_seconds_median": statistics.median(times),
        "fit_iterations_mean": sum(iters) / len(iters),
    }
    if a.generations:
        x = rng.standard_normal((a.samples, 2))
        t = time.perf_counter()
        total_iters = 0
        for g in range(a.generations):
            m = gm(g).fit(x)
            total_iters += int(m.n_iter_)
            x, _ = m.sample(a.samples)
        out["generations"] = a.generations
        out["generations_seconds"] = time.perf_counter() - t
        out["generations_iterations_mean"] = total_iters / a.generations
        # Components of weight below 1/M have vanished (fitted to no point): left out.
        out["final_sd"] = sorted(
            float(s)
            for w, c in zip(m.weights_, m.covariances_)
            if w * a.samples >= 1
            for s in np.sqrt(np.linalg.eigvalsh(c))
        )
        out["final_weights"] = sorted(float(w) for w in m.weights_)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
