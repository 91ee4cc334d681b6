//! The per-chain kernels of the Gaussian ensemble, each written as scalar reference code and as
//! an AVX2/FMA twin (`kernels/avx2.rs`) that runs four chains in the four lanes of a vector and
//! returns the scalar results bit for bit (tested). The vector path is used when the CPU has
//! AVX2 and FMA; either way a chain's result depends only on its own stream.
//!
//! Normals come from the ziggurat (`crate::normal`), whose fast path is a table lookup and a
//! comparison; the vector kernel resolves the 0.43% of rejected candidates inside the vector,
//! lane by lane on each lane's own stream. `ln` and `exp` are `crate::vmath`'s, so results do
//! not depend on the C library.

use crate::normal::StandardNormal;
use crate::rng::ChainRng;
use crate::vmath;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Other CPUs have no vector twins: they take no chains, and the scalar code runs them all.
#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    use super::ChiSquareConstants;
    use crate::rng::ChainRng;

    pub(super) unsafe fn fit_normals_many(
        _: &mut [ChainRng],
        _: u64,
        _: &mut [f64],
        _: &mut [f64],
    ) -> usize {
        0
    }

    pub(super) unsafe fn sufficient_draw_many(
        _: &mut [ChainRng],
        _: &ChiSquareConstants,
        _: &mut [f64],
        _: &mut [f64],
    ) -> usize {
        0
    }

    pub(super) unsafe fn update_chains(
        _: &mut [f64],
        _: &mut [f64],
        _: &mut [f64],
        _: (&[f64], f64),
        _: &[f64],
        _: f64,
    ) -> usize {
        0
    }
}

/// Whether the vector twins may run: the CPU has AVX2 and FMA (checked once).
fn vector_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    return vmath::avx2::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Uniform on (0, 1) from one word: ((w >> 12) + 1/2) 2^-52, computed exactly.
#[inline]
fn open01(word: u64) -> f64 {
    (f64::from_bits((word >> 12) | vmath::ONE_BITS) - 1.0) + HALF_ULP_OF_ONE
}

/// 2^-53.
const HALF_ULP_OF_ONE: f64 = 1.0 / 9_007_199_254_740_992.0;

/// The mean and the sum of squared deviations of `count >= 1` standard normals (the `exact`
/// method's draw and fit), drawn by the ziggurat (`StandardNormal::sample`). Deviations are
/// taken from the first draw z0, so that small samples keep full relative accuracy:
/// SS = sum d^2 - (sum d)^2 / count with d = z - z0, summed in draw order.
pub fn fit_normals(rng: &mut ChainRng, count: u64) -> (f64, f64) {
    let normal = StandardNormal::new();
    let z0 = normal.sample(rng);
    let (mut s, mut q) = (0.0f64, 0.0f64);
    for _ in 1..count {
        let d = normal.sample(rng) - z0;
        s += d;
        q += d * d;
    }
    finish_fit(z0, s, q, count)
}

#[inline]
fn finish_fit(z0: f64, s: f64, q: f64, count: u64) -> (f64, f64) {
    let m = count as f64;
    (z0 + s / m, (q - s * s / m).max(0.0))
}

/// `fit_normals` for every chain of `rngs`: means into `means`, sums of squares into `ss`.
pub fn fit_normals_many(rngs: &mut [ChainRng], count: u64, means: &mut [f64], ss: &mut [f64]) {
    for_each_chain(
        rngs,
        means,
        ss,
        // SAFETY: `for_each_chain` calls it only when the CPU has AVX2 and FMA.
        |r, a, b| unsafe { avx2::fit_normals_many(r, count, a, b) },
        |rng| fit_normals(rng, count),
    );
}

/// Runs a kernel over chains with two outputs each: the AVX2 twin `vector` (when the CPU has
/// AVX2 and FMA) on the leading chains it takes, returning how many, then the scalar reference
/// `scalar` on each remaining chain.
fn for_each_chain(
    rngs: &mut [ChainRng],
    first: &mut [f64],
    second: &mut [f64],
    vector: impl FnOnce(&mut [ChainRng], &mut [f64], &mut [f64]) -> usize,
    mut scalar: impl FnMut(&mut ChainRng) -> (f64, f64),
) {
    assert!(
        rngs.len() == first.len() && rngs.len() == second.len(),
        "one output per chain"
    );
    let done = if vector_kernels() {
        vector(rngs, first, second)
    } else {
        0
    };
    for ((rng, a), b) in rngs[done..]
        .iter_mut()
        .zip(&mut first[done..])
        .zip(&mut second[done..])
    {
        (*a, *b) = scalar(rng);
    }
}

/// Constants of Marsaglia & Tsang's (2000) gamma sampler for the chi-square with `dof` degrees
/// of freedom (shape a = dof / 2; for a < 1, Gamma(a) = Gamma(a + 1) U^(1/a)).
#[derive(Clone, Copy, Debug)]
pub struct ChiSquareConstants {
    d: f64,
    c: f64,
    /// 1 / a when a < 1.
    boost: Option<f64>,
}

impl ChiSquareConstants {
    pub fn new(dof: f64) -> ChiSquareConstants {
        assert!(dof.is_finite() && dof > 0.0, "chi-square dof must be > 0");
        let a = dof / 2.0;
        let d = if a < 1.0 { a + 1.0 } else { a } - 1.0 / 3.0;
        ChiSquareConstants {
            d,
            c: 1.0 / (9.0 * d).sqrt(),
            boost: (a < 1.0).then(|| 1.0 / a),
        }
    }

    /// Marsaglia & Tsang's acceptance test for candidate x with v = (1 + c x)^3 > 0 and
    /// uniform u (squeeze, then the logarithmic test; both evaluated, the same result).
    #[inline]
    fn accepts(&self, x: f64, v: f64, u: f64) -> bool {
        let x2 = x * x;
        let squeeze = u < 1.0 - 0.0331 * x2 * x2;
        let exact = vmath::ln(u) < 0.5 * x2 + self.d * (1.0 - v + vmath::ln(v));
        squeeze | exact
    }

    /// Gamma(d + 1/3) variate, starting from candidate normal `x`.
    fn gamma_from(&self, rng: &mut ChainRng, mut x: f64) -> f64 {
        loop {
            let v = 1.0 + self.c * x;
            if v > 0.0 {
                let v = v * v * v;
                if self.accepts(x, v, open01(rng.next_u64())) {
                    return self.d * v;
                }
            }
            x = StandardNormal::new().sample(rng);
        }
    }

    /// One chi-square variate alone: a normal candidate, Marsaglia & Tsang's loop and the boost,
    /// the same steps as `sufficient_draw` after its z (`ln`/`exp` are `crate::vmath`'s, so the
    /// bits do not depend on the C library). Used by the Bartlett factors of `crate::mvn`.
    pub fn sample(&self, rng: &mut ChainRng) -> f64 {
        let x = StandardNormal::new().sample(rng);
        let g = self.gamma_from(rng, x);
        2.0 * self.boosted(rng, g)
    }

    #[inline]
    fn boosted(&self, rng: &mut ChainRng, g: f64) -> f64 {
        match self.boost {
            Some(inv_shape) => g * vmath::exp(vmath::ln(open01(rng.next_u64())) * inv_shape),
            None => g,
        }
    }
}

/// The `sufficient` method's draw: a standard normal z (the fitted mean is mu + sigma z /
/// sqrt(M)) and SS ~ chi-square(M - 1) (the fitted variance is sigma^2 SS / divisor),
/// independent. Two normals give z and the gamma sampler's first candidate.
pub fn sufficient_draw(rng: &mut ChainRng, chi: &ChiSquareConstants) -> (f64, f64) {
    let normal = StandardNormal::new();
    let z = normal.sample(rng);
    let x = normal.sample(rng);
    let g = chi.gamma_from(rng, x);
    (z, 2.0 * chi.boosted(rng, g))
}

/// `sufficient_draw` for every chain of `rngs`.
pub fn sufficient_draw_many(
    rngs: &mut [ChainRng],
    chi: &ChiSquareConstants,
    zs: &mut [f64],
    ss: &mut [f64],
) {
    for_each_chain(
        rngs,
        zs,
        ss,
        // SAFETY: `for_each_chain` calls it only when the CPU has AVX2 and FMA.
        |r, a, b| unsafe { avx2::sufficient_draw_many(r, chi, a, b) },
        |rng| sufficient_draw(rng, chi),
    );
}

/// One generation's update of chain states from their draws: mu += sigma (z scale), ln sigma^2 +=
/// ln SS - ln divisor, sigma = exp(ln sigma^2 / 2). SS = 0 (probability 0 in exact arithmetic)
/// is replaced by the smallest positive normal double.
#[inline]
pub fn update_chain(
    mean_offset: &mut f64,
    log_variance: &mut f64,
    sigma: &mut f64,
    (z, z_scale): (f64, f64),
    ss: f64,
    ln_divisor: f64,
) {
    *mean_offset += *sigma * (z * z_scale);
    *log_variance += vmath::ln(ss.max(f64::MIN_POSITIVE)) - ln_divisor;
    *sigma = vmath::exp(0.5 * *log_variance);
}

/// `update_chain` over a block.
pub fn update_chains(
    mean_offset: &mut [f64],
    log_variance: &mut [f64],
    sigma: &mut [f64],
    z: &[f64],
    z_scale: f64,
    ss: &[f64],
    ln_divisor: f64,
) {
    let n = mean_offset.len();
    assert!(
        [log_variance.len(), sigma.len(), z.len(), ss.len()]
            .iter()
            .all(|&l| l == n),
        "equal block lengths"
    );
    let done = if vector_kernels() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time).
        unsafe {
            avx2::update_chains(
                mean_offset,
                log_variance,
                sigma,
                (z, z_scale),
                ss,
                ln_divisor,
            )
        }
    } else {
        0
    };
    for i in done..n {
        update_chain(
            &mut mean_offset[i],
            &mut log_variance[i],
            &mut sigma[i],
            (z[i], z_scale),
            ss[i],
            ln_divisor,
        );
    }
}

#[cfg(test)]
mod tests;
