//! AVX2/FMA twins of `kernels`: four chains, one per 64-bit lane, each lane running exactly
//! the scalar code's IEEE operations on its own stream (xoshiro256++ is lane-wise integer
//! arithmetic). Rare branches (gamma rejections) leave the vector: the lane's state is taken
//! out, the scalar code continues it, and the state is put back, so each stream is consumed
//! exactly as by the scalar code. Each function returns how many chains it handled (a multiple
//! of four); the caller runs the scalar code on the rest.

use super::{ChiSquareConstants, FOUR_BITS, HALF_ULP_OF_ONE, finish_fit, next_pair};
use crate::rng::ChainRng;
use crate::vmath::{self, ONE_BITS};
use std::arch::x86_64::*;

/// Four xoshiro256++ streams: word k of lane j in `s[k]` lane j.
#[derive(Clone, Copy)]
struct Streams {
    s: [__m256i; 4],
}

impl Streams {
    #[inline(always)]
    fn load(rngs: &[ChainRng]) -> Streams {
        let words: [[u64; 4]; 4] =
            std::array::from_fn(|k| std::array::from_fn(|j| rngs[j].state()[k]));
        // SAFETY: each row is 32 readable bytes; only inlined into AVX2 functions.
        Streams {
            s: words.map(|w| unsafe { _mm256_loadu_si256(w.as_ptr().cast()) }),
        }
    }

    #[inline(always)]
    fn store(&self, rngs: &mut [ChainRng]) {
        let words = self.s.map(words_of);
        for (j, rng) in rngs.iter_mut().take(4).enumerate() {
            *rng = ChainRng::from_state([words[0][j], words[1][j], words[2][j], words[3][j]]);
        }
    }

    /// Lane `j` as a scalar stream.
    #[inline(always)]
    fn lane(&self, j: usize) -> ChainRng {
        let words = self.s.map(words_of);
        ChainRng::from_state([words[0][j], words[1][j], words[2][j], words[3][j]])
    }

    #[inline(always)]
    fn set_lane(&mut self, j: usize, rng: &ChainRng) {
        let mut words = self.s.map(words_of);
        for (k, w) in rng.state().into_iter().enumerate() {
            words[k][j] = w;
        }
        // SAFETY: each row is 32 readable bytes; only inlined into AVX2 functions.
        self.s = words.map(|w| unsafe { _mm256_loadu_si256(w.as_ptr().cast()) });
    }

    /// xoshiro256++ on every lane.
    #[inline(always)]
    fn next(&mut self) -> __m256i {
        let [s0, s1, s2, s3] = &mut self.s;
        // SAFETY: only inlined into AVX2 functions.
        unsafe {
            let sum = _mm256_add_epi64(*s0, *s3);
            let rotated =
                _mm256_or_si256(_mm256_slli_epi64::<23>(sum), _mm256_srli_epi64::<41>(sum));
            let result = _mm256_add_epi64(rotated, *s0);
            let t = _mm256_slli_epi64::<17>(*s1);
            *s2 = _mm256_xor_si256(*s2, *s0);
            *s3 = _mm256_xor_si256(*s3, *s1);
            *s1 = _mm256_xor_si256(*s1, *s2);
            *s0 = _mm256_xor_si256(*s0, *s3);
            *s2 = _mm256_xor_si256(*s2, t);
            *s3 = _mm256_or_si256(_mm256_slli_epi64::<45>(*s3), _mm256_srli_epi64::<19>(*s3));
            result
        }
    }

    /// `kernels::next_pair` on every lane.
    #[inline(always)]
    fn next_pair(&mut self) -> (__m256d, __m256d) {
        let w1 = self.next();
        let w2 = self.next();
        // SAFETY: only inlined into AVX2+FMA functions.
        unsafe {
            let u1 = _mm256_sub_pd(_mm256_set1_pd(2.0), with_mantissa(w1, ONE_BITS));
            let radius = _mm256_sqrt_pd(_mm256_mul_pd(_mm256_set1_pd(-2.0), vmath::avx2::ln(u1)));
            let v = _mm256_sub_pd(with_mantissa(w2, FOUR_BITS), _mm256_set1_pd(4.0));
            let (sin, cos) = vmath::avx2::sin_cos_quarter_turns(v);
            (_mm256_mul_pd(radius, cos), _mm256_mul_pd(radius, sin))
        }
    }

    /// `kernels::open01` on every lane.
    #[inline(always)]
    fn open01(&mut self) -> __m256d {
        let w = self.next();
        // SAFETY: only inlined into AVX2 functions.
        unsafe {
            _mm256_add_pd(
                _mm256_sub_pd(with_mantissa(w, ONE_BITS), _mm256_set1_pd(1.0)),
                _mm256_set1_pd(HALF_ULP_OF_ONE),
            )
        }
    }
}

/// The double with the top 52 bits of `w` as mantissa and the sign and exponent of `base`.
#[inline(always)]
fn with_mantissa(w: __m256i, base: u64) -> __m256d {
    // SAFETY: only inlined into AVX2 functions.
    unsafe {
        _mm256_castsi256_pd(_mm256_or_si256(
            _mm256_srli_epi64::<12>(w),
            _mm256_set1_epi64x(base as i64),
        ))
    }
}

#[inline(always)]
fn words_of(v: __m256i) -> [u64; 4] {
    let mut w = [0u64; 4];
    // SAFETY: 32 writable bytes; only inlined into AVX2 functions.
    unsafe { _mm256_storeu_si256(w.as_mut_ptr().cast(), v) };
    w
}

#[inline(always)]
fn values_of(v: __m256d) -> [f64; 4] {
    let mut w = [0.0f64; 4];
    // SAFETY: 32 writable bytes; only inlined into AVX2 functions.
    unsafe { _mm256_storeu_pd(w.as_mut_ptr(), v) };
    w
}

#[inline(always)]
fn load4(x: &[f64]) -> __m256d {
    assert!(x.len() >= 4);
    // SAFETY: 32 readable bytes (checked); only inlined into AVX2 functions.
    unsafe { _mm256_loadu_pd(x.as_ptr()) }
}

#[inline(always)]
fn store4(x: &mut [f64], v: __m256d) {
    assert!(x.len() >= 4);
    // SAFETY: 32 writable bytes (checked); only inlined into AVX2 functions.
    unsafe { _mm256_storeu_pd(x.as_mut_ptr(), v) }
}

/// `kernels::fit_normals_many` on the leading multiple of four chains. Two groups of four
/// chains run interleaved: each normal's dependency chain (ln, sqrt) is long, and a second
/// independent group keeps the vector units busy meanwhile.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fit_normals_many(
    rngs: &mut [ChainRng],
    count: u64,
    means: &mut [f64],
    ss: &mut [f64],
) -> usize {
    let mut done = 0;
    while rngs.len() - done >= 8 {
        fit_groups::<2>(
            &mut rngs[done..done + 8],
            count,
            &mut means[done..],
            &mut ss[done..],
        );
        done += 8;
    }
    if rngs.len() - done >= 4 {
        fit_groups::<1>(
            &mut rngs[done..done + 4],
            count,
            &mut means[done..],
            &mut ss[done..],
        );
        done += 4;
    }
    done
}

/// Adds z - z0 and its square to the running sums.
#[inline(always)]
fn accumulate(s: &mut __m256d, q: &mut __m256d, z: __m256d, z0: __m256d) {
    // SAFETY: only inlined into AVX2 functions.
    unsafe {
        let d = _mm256_sub_pd(z, z0);
        *s = _mm256_add_pd(*s, d);
        *q = _mm256_add_pd(*q, _mm256_mul_pd(d, d));
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn fit_groups<const G: usize>(
    rngs: &mut [ChainRng],
    count: u64,
    means: &mut [f64],
    ss: &mut [f64],
) {
    let zero = _mm256_setzero_pd();
    let mut streams = [Streams {
        s: [_mm256_setzero_si256(); 4],
    }; G];
    let mut firsts = [(zero, zero); G];
    let mut z0 = [zero; G];
    for g in 0..G {
        streams[g] = Streams::load(&rngs[4 * g..]);
        firsts[g] = streams[g].next_pair();
        z0[g] = firsts[g].0;
    }
    let (mut s, mut q) = ([zero; G], [zero; G]);
    if count >= 2 {
        for g in 0..G {
            accumulate(&mut s[g], &mut q[g], firsts[g].1, z0[g]);
        }
    }
    let mut remaining = count.saturating_sub(2);
    while remaining >= 2 {
        let mut pairs = [(zero, zero); G];
        for g in 0..G {
            pairs[g] = streams[g].next_pair();
        }
        for g in 0..G {
            accumulate(&mut s[g], &mut q[g], pairs[g].0, z0[g]);
            accumulate(&mut s[g], &mut q[g], pairs[g].1, z0[g]);
        }
        remaining -= 2;
    }
    if remaining == 1 {
        for g in 0..G {
            let z = streams[g].next_pair().0;
            accumulate(&mut s[g], &mut q[g], z, z0[g]);
        }
    }
    for g in 0..G {
        streams[g].store(&mut rngs[4 * g..]);
        let (z0, s, q) = (values_of(z0[g]), values_of(s[g]), values_of(q[g]));
        for j in 0..4 {
            (means[4 * g + j], ss[4 * g + j]) = finish_fit(z0[j], s[j], q[j], count);
        }
    }
}

/// `kernels::sufficient_draw_many` on the leading multiple of four chains.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn sufficient_draw_many(
    rngs: &mut [ChainRng],
    chi: &ChiSquareConstants,
    zs: &mut [f64],
    ss: &mut [f64],
) -> usize {
    let groups = rngs.len() / 4;
    let (c, d) = (_mm256_set1_pd(chi.c), _mm256_set1_pd(chi.d));
    let one = _mm256_set1_pd(1.0);
    for g in 0..groups {
        let chains = 4 * g..4 * g + 4;
        let mut streams = Streams::load(&rngs[chains.clone()]);
        let (z, x) = streams.next_pair();
        let v = _mm256_add_pd(one, _mm256_mul_pd(c, x));
        let positive = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(v, _mm256_setzero_pd()));
        let gamma = if positive == 0b1111 {
            let v = _mm256_mul_pd(_mm256_mul_pd(v, v), v);
            let u = streams.open01();
            // chi.accepts, lane-wise: squeeze | exact.
            let x2 = _mm256_mul_pd(x, x);
            let squeeze = _mm256_cmp_pd::<_CMP_LT_OQ>(
                u,
                _mm256_sub_pd(
                    one,
                    _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(0.0331), x2), x2),
                ),
            );
            let bound = _mm256_add_pd(
                _mm256_mul_pd(_mm256_set1_pd(0.5), x2),
                _mm256_mul_pd(d, _mm256_add_pd(_mm256_sub_pd(one, v), vmath::avx2::ln(v))),
            );
            let exact = _mm256_cmp_pd::<_CMP_LT_OQ>(vmath::avx2::ln(u), bound);
            let accepted = _mm256_movemask_pd(_mm256_or_pd(squeeze, exact));
            let mut gamma = values_of(_mm256_mul_pd(d, v));
            // Rejected lanes draw a new candidate and continue as the scalar loop does.
            for j in (0..4).filter(|j| accepted & (1 << j) == 0) {
                let mut rng = streams.lane(j);
                let candidate = next_pair(&mut rng).0;
                gamma[j] = chi.gamma_from(&mut rng, candidate);
                streams.set_lane(j, &rng);
            }
            gamma
        } else {
            // Some 1 + c x <= 0 (only for small dof): every lane continues in scalar code.
            let x = values_of(x);
            std::array::from_fn(|j| {
                let mut rng = streams.lane(j);
                let gamma = chi.gamma_from(&mut rng, x[j]);
                streams.set_lane(j, &rng);
                gamma
            })
        };
        let mut gamma = load4(&gamma);
        if let Some(inv_shape) = chi.boost {
            let u = streams.open01();
            gamma = _mm256_mul_pd(
                gamma,
                vmath::avx2::exp(_mm256_mul_pd(vmath::avx2::ln(u), _mm256_set1_pd(inv_shape))),
            );
        }
        streams.store(&mut rngs[chains.clone()]);
        store4(&mut zs[chains.start..], z);
        store4(
            &mut ss[chains.start..],
            _mm256_mul_pd(_mm256_set1_pd(2.0), gamma),
        );
    }
    4 * groups
}

/// `kernels::update_chains` on the leading multiple of four chains.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn update_chains(
    mean_offset: &mut [f64],
    log_variance: &mut [f64],
    sigma: &mut [f64],
    (z, z_scale): (&[f64], f64),
    ss: &[f64],
    ln_divisor: f64,
) -> usize {
    let groups = mean_offset.len() / 4;
    let scale = _mm256_set1_pd(z_scale);
    for g in 0..groups {
        let i = 4 * g;
        let s = load4(&sigma[i..]);
        let mo = _mm256_add_pd(
            load4(&mean_offset[i..]),
            _mm256_mul_pd(s, _mm256_mul_pd(load4(&z[i..]), scale)),
        );
        let ln_ss = vmath::avx2::ln(_mm256_max_pd(
            load4(&ss[i..]),
            _mm256_set1_pd(f64::MIN_POSITIVE),
        ));
        let lv = _mm256_add_pd(
            load4(&log_variance[i..]),
            _mm256_sub_pd(ln_ss, _mm256_set1_pd(ln_divisor)),
        );
        store4(&mut mean_offset[i..], mo);
        store4(&mut log_variance[i..], lv);
        store4(
            &mut sigma[i..],
            vmath::avx2::exp(_mm256_mul_pd(_mm256_set1_pd(0.5), lv)),
        );
    }
    4 * groups
}
