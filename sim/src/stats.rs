//! Fixed-order statistics over chains: the same inputs in the same order give the same bits,
//! whatever thread produced them.

/// Mean and standard error of the mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub stderr: f64,
}

/// Mean, standard error, and the sample variance with its own standard error (from the fourth
/// central moment: Var[s^2] ~ (m4 - s^4) / R), computed in two passes in slice order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub mean: f64,
    pub stderr: f64,
    pub variance: f64,
    pub variance_stderr: f64,
}

/// Streaming central moments (Terriberry's online update of Welford's method) that merge
/// exactly-in-order (Pébay 2008), so per-block accumulators combined in block order give the
/// same bits for any thread count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accumulator {
    n: f64,
    mean: f64,
    m2: f64,
    m3: f64,
    m4: f64,
}

impl Accumulator {
    #[inline]
    pub fn push(&mut self, x: f64) {
        let n1 = self.n;
        self.n += 1.0;
        let n = self.n;
        let delta = x - self.mean;
        let delta_n = delta / n;
        let delta_n2 = delta_n * delta_n;
        let term1 = delta * delta_n * n1;
        self.mean += delta_n;
        self.m4 += term1 * delta_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * delta_n2 * self.m2
            - 4.0 * delta_n * self.m3;
        self.m3 += term1 * delta_n * (n - 2.0) - 3.0 * delta_n * self.m2;
        self.m2 += term1;
    }

    /// Two passes over a slice (mean, then central sums): cheaper than `push` per value. Each
    /// pass keeps four partial sums (values i mod 4), combined in a fixed order at the end:
    /// independent sums pipeline (and vectorise), and the order never depends on threads.
    pub fn from_slice(values: &[f64]) -> Accumulator {
        Accumulator::from_fn(values.len(), |i| values[i])
    }

    /// `from_slice` of the values `value(0), ..., value(len - 1)`, computed twice each instead
    /// of stored.
    #[inline]
    pub fn from_fn(len: usize, value: impl Fn(usize) -> f64) -> Accumulator {
        if len == 0 {
            return Accumulator::default();
        }
        let n = len as f64;
        let whole = len / 4 * 4;
        let mut sums = [0.0f64; 4];
        for base in (0..whole).step_by(4) {
            for (lane, sum) in sums.iter_mut().enumerate() {
                *sum += value(base + lane);
            }
        }
        for (lane, i) in (whole..len).enumerate() {
            sums[lane] += value(i);
        }
        let mean = ((sums[0] + sums[1]) + (sums[2] + sums[3])) / n;
        let (mut m2, mut m3, mut m4) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
        let mut add = |lane: usize, v: f64| {
            let d = v - mean;
            let d2 = d * d;
            m2[lane] += d2;
            m3[lane] += d2 * d;
            m4[lane] += d2 * d2;
        };
        for base in (0..whole).step_by(4) {
            for lane in 0..4 {
                add(lane, value(base + lane));
            }
        }
        for (lane, i) in (whole..len).enumerate() {
            add(lane, value(i));
        }
        let total = |p: [f64; 4]| (p[0] + p[1]) + (p[2] + p[3]);
        Accumulator {
            n,
            mean,
            m2: total(m2),
            m3: total(m3),
            m4: total(m4),
        }
    }

    /// The accumulator of the concatenation `self` then `other`.
    pub fn merge(&self, other: &Accumulator) -> Accumulator {
        if self.n == 0.0 {
            return *other;
        }
        if other.n == 0.0 {
            return *self;
        }
        let (na, nb) = (self.n, other.n);
        let n = na + nb;
        let d = other.mean - self.mean;
        let d2 = d * d;
        Accumulator {
            n,
            mean: self.mean + d * nb / n,
            m2: self.m2 + other.m2 + d2 * na * nb / n,
            m3: self.m3
                + other.m3
                + d2 * d * na * nb * (na - nb) / (n * n)
                + 3.0 * d * (na * other.m2 - nb * self.m2) / n,
            m4: self.m4
                + other.m4
                + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
                + 6.0 * d2 * (na * na * other.m2 + nb * nb * self.m2) / (n * n)
                + 4.0 * d * (na * other.m3 - nb * self.m3) / n,
        }
    }

    pub fn moments(&self) -> Moments {
        let n = self.n;
        if n == 0.0 {
            return Moments {
                mean: f64::NAN,
                stderr: f64::NAN,
                variance: f64::NAN,
                variance_stderr: f64::NAN,
            };
        }
        let variance = if n > 1.0 { self.m2 / (n - 1.0) } else { 0.0 };
        let pop_var = self.m2 / n;
        Moments {
            mean: self.mean,
            stderr: (variance / n).sqrt(),
            variance,
            variance_stderr: ((self.m4 / n - pop_var * pop_var).max(0.0) / n).sqrt(),
        }
    }
}

pub fn moments(values: &[f64]) -> Moments {
    let n = values.len() as f64;
    if values.is_empty() {
        return Moments {
            mean: f64::NAN,
            stderr: f64::NAN,
            variance: f64::NAN,
            variance_stderr: f64::NAN,
        };
    }
    let mean = values.iter().sum::<f64>() / n;
    let (mut m2, mut m4) = (0.0, 0.0);
    for &v in values {
        let d = v - mean;
        let d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
    }
    let variance = if values.len() > 1 {
        m2 / (n - 1.0)
    } else {
        0.0
    };
    let m4 = m4 / n;
    let pop_var = m2 / n;
    Moments {
        mean,
        stderr: (variance / n).sqrt(),
        variance,
        variance_stderr: ((m4 - pop_var * pop_var).max(0.0) / n).sqrt(),
    }
}

pub fn summary(values: &[f64]) -> Summary {
    let m = moments(values);
    Summary {
        mean: m.mean,
        stderr: m.stderr,
    }
}

/// An order-preserving map of f64 (total order) to u64: integer comparisons select faster.
#[inline]
fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

#[inline]
fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Exact sample quantiles (linear interpolation between order statistics, numpy's default
/// "linear" / Hyndman–Fan type 7) at ascending probabilities `probs`, using `scratch` as
/// workspace. Each selection works only inside the range the previous one left open.
pub fn quantiles<const K: usize>(
    values: &[f64],
    probs: [f64; K],
    scratch: &mut Vec<u64>,
) -> [f64; K] {
    let mut out = [f64::NAN; K];
    let n = values.len();
    if n == 0 {
        return out;
    }
    debug_assert!(
        probs.windows(2).all(|w| w[0] <= w[1]),
        "probabilities must ascend"
    );
    scratch.clear();
    scratch.extend(values.iter().map(|&x| order_key(x)));
    // Invariant: scratch[..start] holds the `start` smallest keys.
    let mut start = 0usize;
    for (slot, &p) in out.iter_mut().zip(probs.iter()) {
        let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
        let lo = (h.floor() as usize).min(n - 1);
        if lo >= start {
            scratch[start..].select_nth_unstable(lo - start);
            start = lo;
        }
        let a = from_order_key(scratch[lo]);
        let frac = h - lo as f64;
        *slot = if frac > 0.0 && lo + 1 < n {
            let b = from_order_key(*scratch[lo + 1..].iter().min().expect("non-empty"));
            a + frac * (b - a)
        } else {
            a
        };
    }
    out
}

/// Kolmogorov–Smirnov statistic sup |F_n - F| of `xs` (sorted in place) against `cdf`.
pub fn ks_statistic(xs: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter().enumerate().fold(0.0f64, |d, (i, &x)| {
        let f = cdf(x);
        d.max(f - i as f64 / n).max((i + 1) as f64 / n - f)
    })
}

/// Two-sample Kolmogorov–Smirnov statistic (both slices sorted in place).
pub fn ks_two_sample(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_keys_sort_like_floats() {
        let xs = [-f64::INFINITY, -3.5, -0.0, 0.0, 1e-300, 2.0, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]));
            assert_eq!(from_order_key(order_key(w[0])).to_bits(), w[0].to_bits());
        }
    }

    #[test]
    fn quantiles_match_sorted_interpolation() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        let mut s = Vec::new();
        assert_eq!(
            quantiles(&v, [0.0, 0.25, 0.5, 1.0], &mut s),
            [1.0, 2.0, 3.0, 5.0]
        );
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantiles(&v, [0.5, 0.25], &mut s), [2.5, 1.75]);
    }

    #[test]
    fn moments_of_known_data() {
        let m = moments(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.mean, 2.5);
        assert!((m.variance - 5.0 / 3.0).abs() < 1e-15);
        assert!((m.stderr - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
    }

    proptest! {
        #[test]
        fn merged_accumulators_match_two_pass(v in proptest::collection::vec(-1e3f64..1e3, 2..300), cut in 0usize..300) {
            let cut = cut.min(v.len());
            let mut a = Accumulator::default();
            v[..cut].iter().for_each(|&x| a.push(x));
            let b = Accumulator::from_slice(&v[cut..]);
            let merged = a.merge(&b).moments();
            let direct = moments(&v);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs()));
            prop_assert!(close(merged.mean, direct.mean));
            prop_assert!(close(merged.variance, direct.variance));
            prop_assert!(close(merged.stderr, direct.stderr));
            // variance_stderr^2 = (m4/n - var_pop^2)/n cancels (exactly 0 for n = 2): compare it
            // with an absolute tolerance on the scale of its terms, var^2.
            let (x, y) = (merged.variance_stderr.powi(2), direct.variance_stderr.powi(2));
            prop_assert!((x - y).abs() <= 1e-9 * (1.0 + direct.variance.powi(2)), "{} vs {}", x, y);
        }

        #[test]
        fn quantile_is_between_neighbours(mut v in proptest::collection::vec(-1e6f64..1e6, 1..200), p in 0.0f64..=1.0) {
            let mut s = Vec::new();
            let qs = quantiles(&v, [p * 0.5, p, 0.5 + p * 0.5], &mut s);
            v.sort_by(f64::total_cmp);
            for (q, pp) in qs.iter().zip([p * 0.5, p, 0.5 + p * 0.5]) {
                // Reference: type 7 on the sorted data.
                let h = (v.len() - 1) as f64 * pp;
                let lo = h.floor() as usize;
                let hi = (lo + 1).min(v.len() - 1);
                let expect = v[lo] + (h - lo as f64) * (v[hi] - v[lo]);
                prop_assert!((q - expect).abs() <= 1e-9 * (1.0 + expect.abs()), "{} vs {}", q, expect);
            }
        }
    }
}
