#!/usr/bin/env python3
"""Arb (python-flint) and mpmath peers for benches/certify.rs.

Computes, for the Gaussian resampling chain with constant sample size M (k = M - 1, divisor
D = k for the unbiased estimator or M for the MLE) at generation n, the three quantities that
`collapse_analysis::gaussian::certified_at_generation` certifies:

    E[sigma_n]      = sigma e^n,            e = sqrt(2/D) Gamma(M/2) / Gamma(k/2)
    E[ln sigma_n^2] = ln sigma^2 + n (psi(k/2) + ln(2/D))
    E[W2^2]         = E[V_n] + E[sigma_n^2] - 2 sigma E[sigma_n] + sigma^2,
                      E[sigma_n^2] = sigma^2 q^n,  q = k/D,
                      E[V_n] = (sigma^2/M) (1 + q + ... + q^(n-1))

(proofs/gaussian.md, sections 2, 3 and 5), at each requested number of significant digits.

Arb: the working precision is the one the Rust side starts from (digits log2(10) + 40 +
2 bitlength(n) bits); if the radius does not certify the digits, the precision is doubled and
the computation repeated (inside the timed call), as the Rust side does. Gamma is arb's gamma
(exact half-integer arguments take its fast rational-argument path), psi its digamma.
mpmath: the same working precision in bits; no error bound (mpmath does not give one).

Each computation is timed with time.perf_counter: one cold call first (caches of Bernoulli
numbers and constants filled; reported as first_call_seconds), then repeated until --min-seconds
have passed and at least --min-repeat calls were made; seconds is the fastest call and
median_seconds the median. "all" computes the three together (sharing e^n).

Prints JSON: {library: {digits: {quantity: {seconds, median_seconds, first_call_seconds,
repeats, value (first 30 significant digits), [radius, certified_digits, precision_bits]}}}}.
A missing library is reported under "unavailable" and skipped; with neither installed the script
prints a message and exits with status 0.
"""
import argparse
import json
import math
import statistics
import sys
import time

QUANTITIES = ("expected_sigma", "expected_log_variance", "expected_w2_sq", "all")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one-line error, exit code 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args():
    p = Parser(description="Arb and mpmath peers for the certify bench")
    p.add_argument("--samples", type=positive, default=100, help="M (constant schedule)")
    p.add_argument("--generation", type=positive, default=10_000, help="n")
    p.add_argument("--estimator", choices=("unbiased", "mle"), default="unbiased")
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--digits", type=positive, nargs="+", default=[50, 1000])
    p.add_argument("--min-seconds", type=float, default=0.2,
                   help="time each computation for at least this long")
    p.add_argument("--min-repeat", type=positive, default=5)
    p.add_argument("--libraries", nargs="+", choices=("arb", "mpmath"),
                   default=["arb", "mpmath"])
    a = p.parse_args()
    if a.samples < 2:
        p.error("--samples must be >= 2")
    if not (a.sigma > 0 and math.isfinite(a.sigma)):
        p.error("--sigma must be finite and > 0")
    return a


def start_bits(digits, n):
    """The Rust side's first working precision: bits_for_digits(digits, 40 + 2 bitlength(n))."""
    return math.ceil(digits * math.log2(10)) + 40 + 2 * n.bit_length()


def time_calls(f, min_seconds, min_repeat):
    t = time.perf_counter()
    value = f()
    first = time.perf_counter() - t
    times = []
    spent = time.perf_counter()
    while len(times) < min_repeat or time.perf_counter() - spent < min_seconds:
        t = time.perf_counter()
        value = f()
        times.append(time.perf_counter() - t)
    return value, {
        "seconds": min(times),
        "median_seconds": statistics.median(times),
        "first_call_seconds": first,
        "repeats": len(times),
    }


def arb_peer(a, digits):
    from flint import arb, ctx

    m, n, sigma = a.samples, a.generation, a.sigma
    k = m - 1
    d = k if a.estimator == "unbiased" else m

    def sqrt_mean_power():
        e = (arb(2) / d).sqrt() * (arb(m) / 2).gamma() / (arb(k) / 2).gamma()
        return e ** n

    def expected_sigma(s1=None):
        return arb(sigma) * (sqrt_mean_power() if s1 is None else s1)

    def expected_log_variance():
        return (arb(sigma) ** 2).log() + n * ((arb(k) / 2).digamma() + (arb(2) / d).log())

    def expected_w2_sq(en=None):
        s = arb(sigma)
        s2 = s * s
        en = sqrt_mean_power() if en is None else en
        if k == d:
            ev = s2 * n / m
            s2n = s2
        else:
            q = arb(k) / d
            qn = q ** n
            ev = s2 / m * (1 - qn) / (1 - q)
            s2n = s2 * qn
        return ev + s2n - 2 * s * (s * en) + s2

    def every():
        en = sqrt_mean_power()
        return [expected_sigma(en), expected_log_variance(), expected_w2_sq(en)]

    def certified(bits, f):
        """Doubles the precision until every value certifies `digits` (as the Rust side)."""
        def run():
            prec = bits
            while True:
                ctx.prec = prec
                values = f()
                values = values if isinstance(values, list) else [values]
                if all(v.rel_accuracy_bits() * math.log10(2) >= digits + 1 for v in values) \
                        or prec >= 1 << 16:
                    return values, prec
                prec *= 2
        return run

    bits = start_bits(digits, n)
    out = {}
    saved = ctx.prec
    try:
        for name, f in zip(QUANTITIES,
                           (expected_sigma, expected_log_variance, expected_w2_sq, every)):
            (values, prec), timing = time_calls(certified(bits, f), a.min_seconds, a.min_repeat)
            ctx.prec = prec
            entry = dict(timing)
            entry["precision_bits"] = prec
            if name != "all":
                v = values[0]
                entry["value"] = v.mid().str(30, radius=False)
                entry["radius"] = v.rad().str(3, radius=False)
                entry["certified_digits"] = int(v.rel_accuracy_bits() * math.log10(2))
            out[name] = entry
    finally:
        ctx.prec = saved
    return out


def mpmath_peer(a, digits):
    import mpmath
    from mpmath import mp, mpf

    m, n, sigma = a.samples, a.generation, a.sigma
    k = m - 1
    d = k if a.estimator == "unbiased" else m

    def sqrt_mean_power():
        e = mpmath.sqrt(mpf(2) / d) * mpmath.gammaprod([mpf(m) / 2], [mpf(k) / 2])
        return e ** n

    def expected_sigma(en=None):
        return mpf(sigma) * (sqrt_mean_power() if en is None else en)

    def expected_log_variance():
        return mpmath.log(mpf(sigma) ** 2) + n * (mpmath.digamma(mpf(k) / 2) + mpmath.log(mpf(2) / d))

    def expected_w2_sq(en=None):
        s = mpf(sigma)
        s2 = s * s
        en = sqrt_mean_power() if en is None else en
        if k == d:
            ev, s2n = s2 * n / m, s2
        else:
            q = mpf(k) / d
            qn = q ** n
            ev, s2n = s2 / m * (1 - qn) / (1 - q), s2 * qn
        return ev + s2n - 2 * s * (s * en) + s2

    def every():
        en = sqrt_mean_power()
        return [expected_sigma(en), expected_log_variance(), expected_w2_sq(en)]

    bits = start_bits(digits, n)
    out = {}
    saved = mp.prec
    try:
        mp.prec = bits
        for name, f in zip(QUANTITIES,
                           (expected_sigma, expected_log_variance, expected_w2_sq, every)):
            value, timing = time_calls(f, a.min_seconds, a.min_repeat)
            entry = dict(timing)
            entry["precision_bits"] = bits
            if name != "all":
                entry["value"] = mpmath.nstr(value, 30)
            out[name] = entry
    finally:
        mp.prec = saved
    return out


def main():
    a = parse_args()
    result = {
        "samples": a.samples,
        "generation": a.generation,
        "estimator": a.estimator,
        "sigma": a.sigma,
        "versions": {},
        "unavailable": {},
    }
    peers = {"arb": ("flint", arb_peer), "mpmath": ("mpmath", mpmath_peer)}
    for lib in a.libraries:
        module, peer = peers[lib]
        try:
            imported = __import__(module)
        except ImportError as e:
            result["unavailable"][lib] = f"{e} (pip install {'python-flint' if lib == 'arb' else 'mpmath'})"
            continue
        result["versions"][lib] = getattr(imported, "__version__", "?")
        result[lib] = {str(digits): peer(a, digits) for digits in a.digits}
    if not result["versions"]:
        print("certify_peers.py: neither python-flint nor mpmath is installed "
              "(pip install python-flint mpmath); nothing to compare", file=sys.stderr)
        return 0
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
