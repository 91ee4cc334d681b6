//! Binomial variates: inversion (BINV, Kachitvichyanukul & Schmeiser 1988) for a mean below 10
//! and Hörmann's (1993) transformed rejection with decomposition (BTRD) above, both exact up to
//! floating-point rounding. `ln` and `exp` are `crate::vmath`'s, so the values do not depend on
//! the C library. Checked against `rand_distr`'s BINV/BTPE (tests).

use crate::rng::ChainRng;
use crate::vmath;

/// Below this mean n min(p, 1-p), inversion (its expected cost grows with the mean).
const INVERSION_BELOW: f64 = 10.0;
/// The inversion search restarts beyond this many steps (mean < 10: never in practice).
const INVERSION_LIMIT: u64 = 110;
/// 1/x for x = 0..=INVERSION_LIMIT (entry 0 unused), each correctly rounded.
static RECIPROCALS: [f64; INVERSION_LIMIT as usize + 1] = {
    let mut table = [0.0; INVERSION_LIMIT as usize + 1];
    let mut x = 1;
    while x <= INVERSION_LIMIT as usize {
        table[x] = 1.0 / x as f64;
        x += 1;
    }
    table
};

/// `n` as f64 for n < 2^63, by the signed conversion: the same value as `n as f64` in one
/// instruction (the unsigned conversion takes several on x86-64 without AVX-512).
#[inline(always)]
fn float(n: u64) -> f64 {
    debug_assert!(n <= i64::MAX as u64);
    n as i64 as f64
}

/// floor(x) for x in [0, 2^63): the same value as `x as u64` by the signed conversion.
#[inline(always)]
fn floor(x: f64) -> u64 {
    debug_assert!((0.0..9.2e18).contains(&x));
    x as i64 as u64
}

/// A Binomial(n, p) variate for any p (clamped to [0, 1]).
#[inline(always)]
pub fn sample(rng: &mut ChainRng, n: u64, p: f64) -> u64 {
    if n > i64::MAX as u64 {
        return sample_huge(rng, n, p);
    }
    sample_below_2_63(rng, n, p)
}

/// n >= 2^63: a sum of two binomials with the same p (the conversions need n < 2^63).
#[cold]
#[inline(never)]
fn sample_huge(rng: &mut ChainRng, n: u64, p: f64) -> u64 {
    sample_below_2_63(rng, n / 2, p) + sample_below_2_63(rng, n - n / 2, p)
}

#[inline(always)]
fn sample_below_2_63(rng: &mut ChainRng, n: u64, p: f64) -> u64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    // Draw with the smaller of p and 1 - p, and reflect.
    let (small, flipped) = if p > 0.5 { (1.0 - p, true) } else { (p, false) };
    let k = if float(n) * small < INVERSION_BELOW {
        inversion(rng, n, small)
    } else {
        btrd(rng, n, small)
    };
    if flipped { n - k } else { k }
}

/// Sequential search of the inverse CDF from 0 (p <= 1/2, n p < 10): the pmf by its ratio
/// f(x) / f(x-1) = (n - x + 1) p / (x q), starting at q^n.
#[inline(always)]
fn inversion(rng: &mut ChainRng, n: u64, p: f64) -> u64 {
    let q = 1.0 - p;
    let s = p / q;
    let a = float(n + 1) * s;
    let start = vmath::exp(float(n) * vmath::ln(q));
    loop {
        let mut r = start;
        let mut u = rng.next_f64();
        let mut x = 0u64;
        // The search ends within a few means; a far excursion (u within rounding of 1) restarts.
        while u > r {
            u -= r;
            x += 1;
            if x > n || x > INVERSION_LIMIT {
                break;
            }
            // 1/x from a table: no division on the search's critical path.
            r *= a * RECIPROCALS[x as usize] - s;
        }
        if u <= r {
            return x;
        }
    }
}

/// ln k! - [(k + 1/2) ln(k + 1) - (k + 1) + ln(2 pi)/2]: Stirling's correction.
fn stirling_tail(k: u64) -> f64 {
    const TABLE: [f64; 10] = [
        0.081_061_466_795_327_26,
        0.041_340_695_955_409_29,
        0.027_677_925_684_998_34,
        0.020_790_672_103_765_09,
        0.016_644_691_189_821_19,
        0.013_876_128_823_070_75,
        0.011_896_709_945_891_77,
        0.010_411_265_261_972_09,
        0.009_255_462_182_712_733,
        0.008_330_563_433_362_87,
    ];
    if k < 10 {
        return TABLE[k as usize];
    }
    let inv = 1.0 / float(k + 1);
    let inv2 = inv * inv;
    // The Stirling series to 1/(1680 k^7): the next term is below 4e-13 at k = 11. One
    // division: this runs four times in BTRD's last test.
    (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - inv2 * (1.0 / 1680.0)) * inv2) * inv2) * inv
}

/// Hörmann's BTRD for p <= 1/2 and n p >= 10.
#[inline(always)]
fn btrd(rng: &mut ChainRng, n: u64, p: f64) -> u64 {
    let nf = float(n);
    let q = 1.0 - p;
    let npq = nf * p * q;
    let spq = npq.sqrt();
    let b = 1.15 + 2.53 * spq;
    let a = -0.0873 + 0.0248 * b + 0.01 * p;
    let c = nf * p + 0.5;
    // Hörmann's v_r = 0.92 - 4.2 / b, kept as d = v_r b (> 0 for n p >= 10): the triangle's test
    // and point then need one division after b instead of three in series (the draw's latency
    // bounds the conditional binomials, each of which waits for the one before).
    let d = 0.92 * b - 4.2;
    loop {
        let v = rng.next_f64();
        let vb = v * b;
        if vb <= 0.86 * d {
            // The triangle, accepted at once: 0.86 v_r of draws, from 40% at n p = 10 to 86%
            // for large means. With
            // u = v / v_r - 0.43 = w / d: (2a / (0.5 - |u|) + b) u + c.
            let w = vb - 0.43 * d;
            let x = 2.0 * a * w / (0.5 * d - w.abs()) + b * w / d + c;
            // Inside the support for n p >= 10 (Hörmann 1993); clamped to it anyway.
            return (x as i64).clamp(0, n as i64) as u64;
        }
        // Outside the triangle: Hörmann's steps 2-3 with v_r = d / b, written so that no
        // division waits on another (each costs about 13 cycles of latency here).
        let (u, v) = if vb >= d {
            (rng.next_f64() - 0.5, v)
        } else {
            let w = vb / d - 0.93;
            (0.5f64.copysign(w) - w, rng.next_f64() * d / b)
        };
        let us = 0.5 - u.abs();
        let x = (2.0 * a / us + b) * u + c;
        // floor(x) outside 0..=n: reject.
        if !(x >= 0.0 && x < nf + 1.0) {
            continue;
        }
        let k = floor(x);
        let kf = float(k);
        // Constants of the rejection steps, needed only outside the triangle. Non-negative
        // values: truncation is the floor (f64::floor is a library call on baseline x86-64).
        let alpha = (2.83 + 5.1 / b) * spq;
        let m = float(floor((nf + 1.0) * p));
        // Hörmann's v alpha / (a / us^2 + b), kept as the quotient scaled / hat.
        let us2 = us * us;
        let scaled = v * alpha * us2;
        let hat = a + b * us2;
        let km = (kf - m).abs();
        if km <= 15.0 {
            // v <= f(k) / f(m), with f(i) / f(i-1) = (n + 1 - i) p / (i q) for i between m and
            // k: numerators and denominators multiplied out (at most 15 factors, each in
            // [q / 2, n p]: no overflow), compared without a division.
            let (from, to) = if m < kf { (m, kf) } else { (kf, m) };
            let (mut up, mut down) = (1.0, 1.0);
            let mut i = from + 1.0;
            while i <= to {
                up *= (nf + 1.0 - i) * p;
                down *= i * q;
                i += 1.0;
            }
            let accept = if m < kf {
                scaled * down <= hat * up
            } else {
                scaled * up <= hat * down
            };
            if accept {
                return k;
            }
            continue;
        }
        // Squeeze on ln v, then the exact log-ratio with Stirling's corrections.
        let v = vmath::ln(scaled / hat);
        let inv_npq = 1.0 / npq;
        let rho = (km * inv_npq) * (((km * (1.0 / 3.0) + 0.625) * km + 1.0 / 6.0) * inv_npq + 0.5);
        let t = -0.5 * km * km * inv_npq;
        if v < t - rho {
            return k;
        }
        if v > t + rho {
            continue;
        }
        let h = stirling_tail(floor(m)) + stirling_tail(n - floor(m));
        let nm = nf - m + 1.0;
        let nk = nf - kf + 1.0;
        let bound = (m + 0.5) * vmath::ln((m + 1.0) / (nm * (p / q)))
            + (nf + 1.0) * vmath::ln(nm / nk)
            + (kf + 0.5) * vmath::ln(nk * (p / q) / (kf + 1.0))
            + h
            - stirling_tail(k)
            - stirling_tail(n - k);
        if v <= bound {
            return k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use rand_distr::{Binomial, Distribution};
    use statrs::distribution::{Binomial as StatrsBinomial, ChiSquared, ContinuousCDF, Discrete};

    const CASES: [(u64, f64); 10] = [
        (1, 0.5),
        (7, 0.5),
        (10, 0.3),
        (1000, 0.004),
        (95, 0.1),
        (100, 0.1),
        (10_000, 0.37),
        (50, 0.999),
        (1_000_000, 0.5),
        (1000, 0.9),
    ];

    /// Chi-square statistic and degrees of freedom of `counts` (by value) against the pmf,
    /// cells merged left to right until each expects at least 20.
    fn chi_square(
        counts: &std::collections::BTreeMap<u64, u64>,
        n: u64,
        p: f64,
        draws: u64,
    ) -> (f64, usize) {
        let law = StatrsBinomial::new(p, n).unwrap();
        let lo = counts
            .keys()
            .next()
            .copied()
            .unwrap_or(0)
            .saturating_sub(50);
        let hi = counts
            .keys()
            .last()
            .copied()
            .unwrap_or(0)
            .saturating_add(50)
            .min(n);
        let (mut stat, mut cells, mut obs, mut exp) = (0.0, 0usize, 0.0, 0.0);
        // Mass below lo and above hi is folded into the end cells.
        exp += (0..lo).map(|k| law.pmf(k)).sum::<f64>() * draws as f64;
        for k in lo..=hi {
            obs += *counts.get(&k).unwrap_or(&0) as f64;
            exp += law.pmf(k) * draws as f64;
            if exp >= 20.0 {
                stat += (obs - exp) * (obs - exp) / exp;
                cells += 1;
                (obs, exp) = (0.0, 0.0);
            }
        }
        if exp > 0.0 || obs > 0.0 {
            stat += (obs - exp) * (obs - exp) / exp.max(1e-9);
            cells += 1;
        }
        (stat, cells - 1)
    }

    /// Goodness of fit against statrs' pmf, 2e5 draws per case, both algorithms; critical
    /// value at a false-alarm rate of 1e-6 per case.
    #[test]
    fn fits_its_law() {
        let mut rng = ChainRng::for_chain(3, stream::TEST, 0);
        let draws = 200_000u64;
        for (n, p) in CASES {
            let mut counts = std::collections::BTreeMap::new();
            for _ in 0..draws {
                *counts.entry(sample(&mut rng, n, p)).or_insert(0u64) += 1;
            }
            let (stat, dof) = chi_square(&counts, n, p, draws);
            let critical = ChiSquared::new(dof.max(1) as f64)
                .unwrap()
                .inverse_cdf(1.0 - 1e-6);
            assert!(
                stat < critical,
                "n = {n}, p = {p}: chi2 {stat} >= {critical} (dof {dof})"
            );
        }
    }

    /// The same test detects a sampler that is off: rand_distr at p (1 + 1%) against the law at
    /// p, n = 10^4, p = 0.37 (the power of the test above).
    #[test]
    fn the_fit_test_has_power() {
        let mut rng = ChainRng::for_chain(4, stream::TEST, 0);
        let (n, p, draws) = (10_000u64, 0.37, 200_000u64);
        let wrong = Binomial::new(n, p * 1.01).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..draws {
            *counts.entry(wrong.sample(&mut rng)).or_insert(0u64) += 1;
        }
        let (stat, dof) = chi_square(&counts, n, p, draws);
        let critical = ChiSquared::new(dof as f64).unwrap().inverse_cdf(1.0 - 1e-6);
        assert!(stat > critical, "chi2 {stat} <= {critical}");
    }

    /// Against the crate: means and variances of 2e5 draws agree with rand_distr's within 5
    /// standard errors for every case.
    #[test]
    fn agrees_with_rand_distr() {
        let mut rng = ChainRng::for_chain(5, stream::TEST, 0);
        let draws = 200_000usize;
        for (n, p) in CASES {
            let crate_law = Binomial::new(n, p).unwrap();
            let ours: Vec<f64> = (0..draws).map(|_| sample(&mut rng, n, p) as f64).collect();
            let theirs: Vec<f64> = (0..draws)
                .map(|_| crate_law.sample(&mut rng) as f64)
                .collect();
            let (a, b) = (crate::stats::moments(&ours), crate::stats::moments(&theirs));
            let z = (a.mean - b.mean) / (a.stderr.powi(2) + b.stderr.powi(2)).sqrt().max(1e-300);
            assert!(
                z.abs() < 5.0,
                "n = {n}, p = {p}: means {} vs {}",
                a.mean,
                b.mean
            );
            let zv = (a.variance - b.variance)
                / (a.variance_stderr.powi(2) + b.variance_stderr.powi(2))
                    .sqrt()
                    .max(1e-300);
            assert!(
                zv.abs() < 5.0,
                "n = {n}, p = {p}: variances {} vs {}",
                a.variance,
                b.variance
            );
        }
    }

    #[test]
    fn stirling_corrections_match_ln_gamma() {
        // ln k! - (k + 1/2) ln(k + 1) + (k + 1) - ln(2 pi)/2, through statrs' ln_gamma; the
        // table (k < 10) and the series (k >= 10) alike.
        for k in 0..40u64 {
            let kf = k as f64;
            let exact = statrs::function::gamma::ln_gamma(kf + 1.0) - (kf + 0.5) * (kf + 1.0).ln()
                + (kf + 1.0)
                - 0.5 * (2.0 * std::f64::consts::PI).ln();
            assert!(
                (stirling_tail(k) - exact).abs() < 1e-12,
                "k = {k}: {} vs {exact}",
                stirling_tail(k)
            );
        }
    }

    #[test]
    fn edge_cases() {
        let mut rng = ChainRng::for_chain(6, stream::TEST, 0);
        assert_eq!(sample(&mut rng, 0, 0.5), 0);
        assert_eq!(sample(&mut rng, 10, 0.0), 0);
        assert_eq!(sample(&mut rng, 10, 1.0), 10);
        assert_eq!(sample(&mut rng, 10, f64::NAN), 0);
        for _ in 0..1000 {
            assert!(sample(&mut rng, 3, 0.9) <= 3);
            assert!(sample(&mut rng, u64::from(u32::MAX), 0.5) <= u64::from(u32::MAX));
        }
    }

    #[test]
    fn values_are_pinned() {
        let mut rng = ChainRng::for_chain(1, stream::TEST, 0);
        let draws: Vec<u64> = CASES.iter().map(|&(n, p)| sample(&mut rng, n, p)).collect();
        assert_eq!(draws, PINNED);
    }

    const PINNED: [u64; 10] = [0, 2, 1, 1, 14, 7, 3633, 50, 500391, 899];
}
