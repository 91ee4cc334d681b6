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

/// Exact sample quantiles (linear interpolation between order statistics, numpy's default
/// "linear" / Hyndman–Fan type 7) at probabilities `probs`, using `scratch` as workspace.
pub fn quantiles<const K: usize>(
    values: &[f64],
    probs: [f64; K],
    scratch: &mut Vec<f64>,
) -> [f64; K] {
    let mut out = [f64::NAN; K];
    if values.is_empty() {
        return out;
    }
    scratch.clear();
    scratch.extend_from_slice(values);
    let n = scratch.len();
    for (slot, &p) in out.iter_mut().zip(probs.iter()) {
        let h = (n - 1) as f64 * p;
        let lo = h.floor() as usize;
        let (_, &mut a, rest) = scratch.select_nth_unstable_by(lo, f64::total_cmp);
        let b = if lo + 1 < n {
            rest.iter().copied().fold(f64::INFINITY, f64::min)
        } else {
            a
        };
        *slot = a + (h - lo as f64) * (b - a);
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
        fn quantile_is_between_neighbours(mut v in proptest::collection::vec(-1e6f64..1e6, 1..200), p in 0.0f64..=1.0) {
            let mut s = Vec::new();
            let [q] = quantiles(&v, [p], &mut s);
            v.sort_by(f64::total_cmp);
            let h = (v.len() - 1) as f64 * p;
            prop_assert!(q >= v[h.floor() as usize] - 1e-9 && q <= v[h.ceil() as usize] + 1e-9);
        }
    }
}
