//! Element-wise kernel plumbing and `f32` elementary functions that vectorise.
//!
//! `vectorised!` compiles one body twice: for AVX2/FMA (chosen at run time) and portably. The
//! bodies use plain IEEE operations (no `mul_add`; Rust never contracts `a * b + c` into a
//! fused multiply-add), so both copies return the same bits; AVX2 only makes the loops wider.

/// Defines `fn name(args) -> ret { body }` that runs `body` compiled with AVX2/FMA enabled
/// when the CPU has them and the portable compilation otherwise.
macro_rules! vectorised {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if crate::vmath::avx2::available() {
                    // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use vectorised;

/// Elements per parallel piece of an element-wise kernel: large enough that rayon's overhead
/// is small, and fixed, so that piece boundaries do not depend on the number of threads.
pub(crate) const PIECE: usize = 1 << 14;

/// 1.5 * 2^23: adding it to an `f32` of magnitude below 2^22 rounds to an integer (ties to
/// even) held in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// ln 2 = LN2_HI + LN2_LO with LN2_HI = 355/512 (9 bits), so that k * LN2_HI is exact for
/// |k| < 2^15 (Cody–Waite reduction, as in Cephes' `expf`).
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -2.121_944_4e-4;

/// Cephes' `expf` polynomial P, highest degree first.
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5, // Cephes' 5.0000001201e-1 rounds to 0.5 in f32
];

/// e^x in `f32` for x clamped to [-87, 88] (so that results are normal and finite):
/// x = k ln 2 + r with |r| <= ln 2 / 2, e^r = 1 + r + r^2 P(r) with Cephes' degree-5 minimax
/// P, scaled by 2^k through the exponent bits. Relative error below 4 ulp (tested against
/// `f64::exp`).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let k = shifted - ROUND_MAGIC;
    let k_int = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = EXP_POLY[0];
    for &c in &EXP_POLY[1..] {
        p = p * r + c;
    }
    let er = p * (r * r) + r + 1.0;
    er * f32::from_bits(((k_int + 127) as u32) << 23)
}

/// Cephes' `logf` polynomial, highest degree first.
const LN_POLY: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// ln x in `f32` for positive normal finite x (Cephes' `logf`): x = 2^e m with
/// m in [sqrt(1/2), sqrt 2), ln m = f - f^2/2 + f^3 Q(f) with f = m - 1.
#[inline(always)]
pub(crate) fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F00_0000); // in [0.5, 1)
    let e = ((bits >> 23) as i32 - 126) as f32;
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let e = if small { e - 1.0 } else { e };
    let z = f * f;
    let mut q = LN_POLY[0];
    for &c in &LN_POLY[1..] {
        q = q * f + c;
    }
    let y = q * f * z + e * LN2_LO - 0.5 * z;
    (f + y) + e * LN2_HI
}

/// ln(1 + u) for u in [0, 1], accurate also for tiny u: with w = fl(1 + u),
/// ln(1 + u) = ln(w) * u / (w - 1) corrects the rounding of w (Goldberg 1991, Theorem 4).
#[inline(always)]
pub(crate) fn ln_1p(u: f32) -> f32 {
    let w = 1.0 + u;
    let d = w - 1.0;
    if d == 0.0 { u } else { ln(w) * (u / d) }
}

/// The logistic function 1 / (1 + e^-x) and e^-|x|, without overflow: for x < 0 it is
/// e^x / (1 + e^x).
#[inline(always)]
pub(crate) fn sigmoid_and_exp_neg_abs(x: f32) -> (f32, f32) {
    let e = exp(-x.abs());
    let s = 1.0 / (1.0 + e);
    (if x >= 0.0 { s } else { e * s }, e)
}
