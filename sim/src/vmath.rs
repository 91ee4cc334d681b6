//! Elementary functions for the simulation kernels, written once as scalar reference code and
//! once on AVX2/FMA vectors with exactly the same IEEE operations (fused multiply-adds where
//! the scalar code calls `mul_add`), so that a vector lane returns the scalar result bit for
//! bit. Results therefore do not depend on the CPU or on the C library's `log`/`exp`.
//!
//! - `ln`: fdlibm's `__ieee754_log` reduction and minimax polynomial (error < 1 ulp).
//! - `exp`: Cody–Waite reduction by ln 2 and the Taylor polynomial of degree 13 on
//!   |r| <= ln 2 / 2 (truncation < 5e-18); inputs are clamped to [-708, 709], so results below
//!   exp(-708) ~ 3e-308 are returned as exp(-708) instead of a subnormal.

// fdlibm's coefficients are kept exactly as published (more digits than a double holds).
#![allow(clippy::excessive_precision)]

pub(crate) const ONE_BITS: u64 = 0x3FF0_0000_0000_0000;
const MANTISSA: u64 = 0x000F_FFFF_FFFF_FFFF;
/// 2^52: adding it to a small non-negative integer-valued double puts the integer in the low
/// mantissa bits; its bit pattern OR-ed with an integer below 2^52 encodes that integer.
const TWO_52: f64 = 4_503_599_627_370_496.0;
const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
/// 1.5 * 2^52: the same for integers of either sign.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
const LG1: f64 = 6.666_666_666_666_735_130e-01;
const LG2: f64 = 3.999_999_999_940_941_908e-01;
const LG3: f64 = 2.857_142_874_366_239_149e-01;
const LG4: f64 = 2.222_219_843_214_978_396e-01;
const LG5: f64 = 1.818_357_216_161_805_012e-01;
const LG6: f64 = 1.531_383_769_920_937_332e-01;
const LG7: f64 = 1.479_819_860_511_658_591e-01;

const EXP_MIN: f64 = -708.0;
const EXP_MAX: f64 = 709.0;
/// 1/n! for n = 13 down to 2.
const EXP_TAYLOR: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut n = 13;
    while n >= 2 {
        let mut factorial = 1.0;
        let mut k = 2;
        while k <= n {
            factorial *= k as f64;
            k += 1;
        }
        c[13 - n] = 1.0 / factorial;
        n -= 1;
    }
    c
};

/// Natural logarithm of a positive, finite, normal `x`.
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mantissa = f64::from_bits((bits & MANTISSA) | ONE_BITS);
    let big = mantissa > std::f64::consts::SQRT_2;
    let m = if big { mantissa * 0.5 } else { mantissa };
    let biased = f64::from_bits(TWO_52_BITS | (bits >> 52)) - TWO_52;
    let e = (biased - 1023.0) + if big { 1.0 } else { 0.0 };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * LG6.mul_add(w, LG4).mul_add(w, LG2);
    let t2 = z * LG7.mul_add(w, LG5).mul_add(w, LG3).mul_add(w, LG1);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    e * LN2_HI - ((hfsq - (s * (hfsq + r) + e * LN2_LO)) - f)
}

/// e^x for finite x (clamped to [-708, 709]; see the module notes).
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let k = (x * std::f64::consts::LOG2_E).round_ties_even();
    let r = k.mul_add(-LN2_LO, k.mul_add(-LN2_HI, x));
    let mut p = EXP_TAYLOR[0];
    for &c in &EXP_TAYLOR[1..] {
        p = p.mul_add(r, c);
    }
    let er = (r * r).mul_add(p, r + 1.0);
    let k_int = (k + ROUND_MAGIC)
        .to_bits()
        .wrapping_sub(ROUND_MAGIC.to_bits());
    er * f64::from_bits(k_int.wrapping_add(1023) << 52)
}

/// The AVX2/FMA twins of the functions above, four lanes at a time.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    pub(crate) fn available() -> bool {
        static AVX2_FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2_FMA.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }

    #[inline(always)]
    fn splat(x: f64) -> __m256d {
        // SAFETY: only inlined into AVX2 functions.
        unsafe { _mm256_set1_pd(x) }
    }

    #[inline(always)]
    fn bits(x: u64) -> __m256i {
        // SAFETY: only inlined into AVX2 functions.
        unsafe { _mm256_set1_epi64x(x as i64) }
    }

    /// a * b + c, fused (as `f64::mul_add`).
    #[inline(always)]
    fn fma(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        // SAFETY: only inlined into AVX2+FMA functions.
        unsafe { _mm256_fmadd_pd(a, b, c) }
    }

    #[inline(always)]
    fn horner(x: __m256d, coefficients: &[f64]) -> __m256d {
        let mut p = splat(coefficients[0]);
        for &c in &coefficients[1..] {
            p = fma(p, x, splat(c));
        }
        p
    }

    /// `super::ln` on four lanes.
    #[inline(always)]
    pub(crate) fn ln(x: __m256d) -> __m256d {
        // SAFETY: only inlined into AVX2+FMA functions.
        unsafe {
            let b = _mm256_castpd_si256(x);
            let mantissa = _mm256_castsi256_pd(_mm256_or_si256(
                _mm256_and_si256(b, bits(MANTISSA)),
                bits(ONE_BITS),
            ));
            let big = _mm256_cmp_pd::<_CMP_GT_OQ>(mantissa, splat(std::f64::consts::SQRT_2));
            let m = _mm256_blendv_pd(mantissa, _mm256_mul_pd(mantissa, splat(0.5)), big);
            let biased = _mm256_sub_pd(
                _mm256_castsi256_pd(_mm256_or_si256(
                    bits(TWO_52_BITS),
                    _mm256_srli_epi64::<52>(b),
                )),
                splat(TWO_52),
            );
            let e = _mm256_add_pd(
                _mm256_sub_pd(biased, splat(1023.0)),
                _mm256_and_pd(big, splat(1.0)),
            );
            let f = _mm256_sub_pd(m, splat(1.0));
            let s = _mm256_div_pd(f, _mm256_add_pd(splat(2.0), f));
            let z = _mm256_mul_pd(s, s);
            let w = _mm256_mul_pd(z, z);
            let t1 = _mm256_mul_pd(w, horner(w, &[LG6, LG4, LG2]));
            let t2 = _mm256_mul_pd(z, horner(w, &[LG7, LG5, LG3, LG1]));
            let r = _mm256_add_pd(t2, t1);
            let hfsq = _mm256_mul_pd(_mm256_mul_pd(splat(0.5), f), f);
            let inner = _mm256_add_pd(
                _mm256_mul_pd(s, _mm256_add_pd(hfsq, r)),
                _mm256_mul_pd(e, splat(LN2_LO)),
            );
            _mm256_sub_pd(
                _mm256_mul_pd(e, splat(LN2_HI)),
                _mm256_sub_pd(_mm256_sub_pd(hfsq, inner), f),
            )
        }
    }

    /// `super::exp` on four lanes.
    #[inline(always)]
    pub(crate) fn exp(x: __m256d) -> __m256d {
        // SAFETY: only inlined into AVX2+FMA functions.
        unsafe {
            // max/min as `clamp` (inputs are never NaN here).
            let x = _mm256_min_pd(_mm256_max_pd(x, splat(EXP_MIN)), splat(EXP_MAX));
            let k = _mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_pd(x, splat(std::f64::consts::LOG2_E)),
            );
            let r = fma(k, splat(-LN2_LO), fma(k, splat(-LN2_HI), x));
            let p = horner(r, &EXP_TAYLOR);
            let er = fma(_mm256_mul_pd(r, r), p, _mm256_add_pd(r, splat(1.0)));
            let k_int = _mm256_sub_epi64(
                _mm256_castpd_si256(_mm256_add_pd(k, splat(ROUND_MAGIC))),
                bits(ROUND_MAGIC.to_bits()),
            );
            let scale = _mm256_slli_epi64::<52>(_mm256_add_epi64(k_int, bits(1023)));
            _mm256_mul_pd(er, _mm256_castsi256_pd(scale))
        }
    }

    #[cfg(test)]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn apply(f: fn(__m256d) -> __m256d, x: [f64; 4]) -> [f64; 4] {
        let mut out = [0.0; 4];
        // SAFETY: 32 readable/writable bytes.
        unsafe { _mm256_storeu_pd(out.as_mut_ptr(), f(_mm256_loadu_pd(x.as_ptr()))) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64)
            .wrapping_sub(b.to_bits() as i64)
            .unsigned_abs()
    }

    /// Against the C library (itself within 1 ulp): a wrong coefficient in the 7th place shows
    /// as thousands of ulps.
    #[test]
    fn ln_within_two_ulps_of_libm() {
        let mut worst = 0;
        let mut x = f64::MIN_POSITIVE;
        while x < 1e300 {
            for step in 0..2000 {
                let y = x * (1.0 + step as f64 * 7.3e-4);
                worst = worst.max(ulps(ln(y), y.ln()));
            }
            x *= 1.37e3;
        }
        for i in 1..200_000u64 {
            let y = 1.0 + (i as f64 - 100_000.0) * 3e-6; // near 1, where cancellation bites
            let (a, b) = (ln(y), y.ln());
            assert!(
                (a - b).abs() <= 2.0 * f64::EPSILON * b.abs().max(1e-300),
                "ln({y}) = {a} vs {b}"
            );
        }
        assert!(worst <= 2, "worst ln error {worst} ulps");
    }

    #[test]
    fn exp_within_two_ulps_of_libm() {
        let mut worst = 0;
        for i in 0..400_000 {
            let x = -707.0 + i as f64 * (1415.0 / 400_000.0);
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2, "worst exp error {worst} ulps");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1e9), exp(EXP_MIN));
    }

    #[cfg(target_arch = "x86_64")]
    proptest! {
        /// Vector lanes give the scalar bits.
        #[test]
        fn vector_lanes_are_bit_identical(words in prop::array::uniform4(any::<u64>()), scale in -700.0f64..700.0) {
            prop_assume!(avx2::available());
            let positive = words.map(|w| f64::from_bits((w >> 12) | ONE_BITS) * 2f64.powi((w % 600) as i32 - 300));
            let got = unsafe { avx2::apply(avx2::ln, positive) };
            for (g, x) in got.iter().zip(positive) {
                prop_assert_eq!(g.to_bits(), ln(x).to_bits());
            }
            let args = words.map(|w| scale * (f64::from_bits((w >> 12) | ONE_BITS) - 1.0));
            let got = unsafe { avx2::apply(avx2::exp, args) };
            for (g, x) in got.iter().zip(args) {
                prop_assert_eq!(g.to_bits(), exp(x).to_bits());
            }
        }
    }
}
