//! AVX2/FMA twins of `kernels`: four chains, one per 64-bit lane, each lane running exactly
//! the scalar code's IEEE operations on its own stream (xoshiro256++ is lane-wise integer
//! arithmetic). Rare branches (gamma rejections) leave the vector: the lane's state is taken
//! out, the scalar code continues it, and the state is put back, so each stream is consumed
//! exactly as by the scalar code. Each function returns how many chains it handled (a multiple
//! of four); the caller runs the scalar code on the rest.

use super::{ChiSquareConstants, HALF_ULP_OF_ONE, finish_fit};
use crate::normal::{LAYER_MASK, LAYERS, StandardNormal};
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
        assert!(rngs.len() >= 4);
        // SAFETY: each state is 32 readable bytes; only inlined into AVX2 functions.
        let rows: [__m256i; 4] = std::array::from_fn(|j| unsafe {
            _mm256_loadu_si256(rngs[j].state_ref().as_ptr().cast())
        });
        Streams { s: transpose(rows) }
    }

    #[inline(always)]
    fn store(&self, rngs: &mut [ChainRng]) {
        assert!(rngs.len() >= 4);
        for (rng, row) in rngs.iter_mut().zip(transpose(self.s)) {
            // SAFETY: each state is 32 writable bytes; only inlined into AVX2 functions.
            unsafe { _mm256_storeu_si256(rng.state_mut().as_mut_ptr().cast(), row) };
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

    /// xoshiro256++ on the lanes in `lanes` only; the others keep their state.
    #[inline(always)]
    fn next_masked(&mut self, lanes: i32) -> __m256i {
        let before = self.s;
        let words = self.next();
        let keep = lane_mask(ALL_LANES & !lanes);
        for (now, old) in self.s.iter_mut().zip(before) {
            // SAFETY: only inlined into AVX2 functions.
            *now = unsafe { _mm256_blendv_epi8(*now, old, keep) };
        }
        words
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

/// The 4 x 4 transpose of 64-bit words (rows <-> lanes); its own inverse.
#[inline(always)]
fn transpose(rows: [__m256i; 4]) -> [__m256i; 4] {
    // SAFETY: only inlined into AVX2 functions.
    unsafe {
        let t0 = _mm256_unpacklo_epi64(rows[0], rows[1]);
        let t1 = _mm256_unpackhi_epi64(rows[0], rows[1]);
        let t2 = _mm256_unpacklo_epi64(rows[2], rows[3]);
        let t3 = _mm256_unpackhi_epi64(rows[2], rows[3]);
        [
            _mm256_permute2x128_si256::<0x20>(t0, t2),
            _mm256_permute2x128_si256::<0x20>(t1, t3),
            _mm256_permute2x128_si256::<0x31>(t0, t2),
            _mm256_permute2x128_si256::<0x31>(t1, t3),
        ]
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

/// `kernels::fit_normals_many` on the leading multiple of four chains.
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
    let normal = StandardNormal::new();
    let groups = rngs.len() / 4;
    for g in 0..groups {
        let i = 4 * g;
        let mut streams = Streams::load(&rngs[i..]);
        // The first draw of each lane shifts its sums (as in the scalar code).
        let z0 = ziggurat(&normal, &mut streams);
        let (mut s, mut q) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        for _ in 1..count {
            let d = _mm256_sub_pd(ziggurat(&normal, &mut streams), z0);
            s = _mm256_add_pd(s, d);
            q = _mm256_add_pd(q, _mm256_mul_pd(d, d));
        }
        streams.store(&mut rngs[i..]);
        let (z0, s, q) = (values_of(z0), values_of(s), values_of(q));
        for j in 0..4 {
            (means[i + j], ss[i + j]) = finish_fit(z0[j], s[j], q[j], count);
        }
    }
    4 * groups
}

const ALL_LANES: i32 = 0b1111;

/// All-ones in the lanes whose bit is set in the index.
static LANE_MASKS: [[u64; 4]; 16] = {
    let mut masks = [[0u64; 4]; 16];
    let mut m = 0;
    while m < 16 {
        let mut j = 0;
        while j < 4 {
            if m & (1 << j) != 0 {
                masks[m][j] = u64::MAX;
            }
            j += 1;
        }
        m += 1;
    }
    masks
};

#[inline(always)]
fn lane_mask(lanes: i32) -> __m256i {
    // SAFETY: 32 readable bytes; only inlined into AVX2 functions.
    unsafe { _mm256_loadu_si256(LANE_MASKS[lanes as usize].as_ptr().cast()) }
}

/// The pair `table[layer]` of each lane, as (first elements, second elements).
#[inline(always)]
fn lookup_pairs(table: &[[f64; 2]; LAYERS], words: __m256i) -> (__m256d, __m256d) {
    // SAFETY: the index is masked to the table's length; only inlined into AVX2 functions.
    unsafe {
        let pair = |word: i64| _mm_loadu_pd(table[(word as u64 & LAYER_MASK) as usize].as_ptr());
        let low = _mm256_castsi256_si128(words);
        let high = _mm256_extracti128_si256::<1>(words);
        let even = _mm256_insertf128_pd::<1>(
            _mm256_castpd128_pd256(pair(_mm_cvtsi128_si64(low))),
            pair(_mm_cvtsi128_si64(high)),
        );
        let odd = _mm256_insertf128_pd::<1>(
            _mm256_castpd128_pd256(pair(_mm_extract_epi64::<1>(low))),
            pair(_mm_extract_epi64::<1>(high)),
        );
        (_mm256_unpacklo_pd(even, odd), _mm256_unpackhi_pd(even, odd))
    }
}

/// The ziggurat's fast path on four words: candidates and the lanes inside their rectangles.
#[inline(always)]
fn candidates(normal: &StandardNormal, words: __m256i) -> (__m256d, i32) {
    // SAFETY: only inlined into AVX2 functions.
    unsafe {
        let u = _mm256_sub_pd(
            with_mantissa(words, 0x4000_0000_0000_0000),
            _mm256_set1_pd(3.0),
        );
        let (width, bound) = lookup_pairs(&normal.t.x_pairs, words);
        let x = _mm256_mul_pd(u, width);
        let magnitude = _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
        (
            x,
            _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(magnitude, bound)),
        )
    }
}

/// One ziggurat normal per lane (`StandardNormal::sample`, lane-wise).
#[inline(always)]
fn ziggurat(normal: &StandardNormal, streams: &mut Streams) -> __m256d {
    let words = streams.next();
    let (x, inside) = candidates(normal, words);
    if inside == ALL_LANES {
        return x;
    }
    std::hint::cold_path();
    // SAFETY: only inlined into AVX2+FMA functions.
    unsafe { resolve_rejections(normal, streams, words, x, inside) }
}

/// Completes the lanes outside `inside` as `StandardNormal::after_rejection` does, in the
/// vector: lanes that need another word advance alone (masked steps of the generator).
#[inline(always)]
unsafe fn resolve_rejections(
    normal: &StandardNormal,
    streams: &mut Streams,
    mut words: __m256i,
    mut values: __m256d,
    inside: i32,
) -> __m256d {
    // SAFETY (intrinsics): only inlined into AVX2+FMA functions.
    unsafe {
        let mut pending = ALL_LANES & !inside;
        loop {
            // Layer 0: the tail, on the lane's own stream (2.6e-4 of draws).
            let base = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(
                _mm256_and_si256(words, _mm256_set1_epi64x(LAYER_MASK as i64)),
                _mm256_setzero_si256(),
            ))) & pending;
            if base != 0 {
                let (mut out, lane_words) = (values_of(values), words_of(words));
                for j in (0..4).filter(|j| base & (1 << j) != 0) {
                    let mut rng = streams.lane(j);
                    let (_, negative, _) = normal.rejected_candidate(lane_words[j]);
                    out[j] = StandardNormal::tail(&mut rng, negative);
                    streams.set_lane(j, &rng);
                }
                values = _mm256_loadu_pd(out.as_ptr());
                pending &= !base;
                if pending == 0 {
                    return values;
                }
            }
            // The wedge test, with each pending lane's next word.
            let uniform_words = streams.next_masked(pending);
            let uniform =
                _mm256_sub_pd(with_mantissa(uniform_words, ONE_BITS), _mm256_set1_pd(1.0));
            let (f_layer, f_next) = lookup_pairs(&normal.t.f_pairs, words);
            let y = _mm256_add_pd(
                f_next,
                _mm256_mul_pd(_mm256_sub_pd(f_layer, f_next), uniform),
            );
            let density = vmath::avx2::exp(_mm256_mul_pd(
                _mm256_mul_pd(_mm256_set1_pd(-0.5), values),
                values,
            ));
            pending &= !_mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(y, density));
            if pending == 0 {
                return values;
            }
            // A fresh draw for the lanes still pending.
            let fresh = streams.next_masked(pending);
            let (x, fresh_inside) = candidates(normal, fresh);
            let mask = lane_mask(pending);
            values = _mm256_blendv_pd(values, x, _mm256_castsi256_pd(mask));
            words = _mm256_blendv_epi8(words, fresh, mask);
            pending &= !fresh_inside;
            if pending == 0 {
                return values;
            }
        }
    }
}

/// `kernels::sufficient_draw_many` on the leading multiple of four chains, in passes over up
/// to `BATCH` chains: (1) the two normals and the uniform of every group, (2) the
/// acceptance tests, (3) rejected lanes in scalar code, (4) the boost for shape < 1. Each pass
/// has short independent iterations that the CPU overlaps; each stream is still consumed in
/// the scalar code's order (normals, uniform, then whatever a rejection needs, then the boost).
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
    let done = rngs.len() / 4 * 4;
    let mut start = 0;
    while start < done {
        let end = (start + SUFFICIENT_BATCH).min(done);
        sufficient_batch(
            &mut rngs[start..end],
            chi,
            &mut zs[start..end],
            &mut ss[start..end],
        );
        start = end;
    }
    done
}

const SUFFICIENT_BATCH: usize = 64;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn sufficient_batch(
    rngs: &mut [ChainRng],
    chi: &ChiSquareConstants,
    zs: &mut [f64],
    ss: &mut [f64],
) {
    let groups = rngs.len() / 4;
    let normal = StandardNormal::new();
    let (c, d) = (_mm256_set1_pd(chi.c), _mm256_set1_pd(chi.d));
    let one = _mm256_set1_pd(1.0);
    let mut xs = [0.0f64; SUFFICIENT_BATCH];
    let mut us = [0.0f64; SUFFICIENT_BATCH];
    // Per group: whether every 1 + c x > 0 (then the uniform was drawn), and the accepted lanes.
    let mut positive = [false; SUFFICIENT_BATCH / 4];
    let mut accepted = [0i32; SUFFICIENT_BATCH / 4];
    // Pass 1: two normals and the uniform.
    for (g, all_positive) in positive.iter_mut().enumerate().take(groups) {
        let i = 4 * g;
        let mut streams = Streams::load(&rngs[i..]);
        let z = ziggurat(&normal, &mut streams);
        let x = ziggurat(&normal, &mut streams);
        let v = _mm256_add_pd(one, _mm256_mul_pd(c, x));
        *all_positive =
            _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(v, _mm256_setzero_pd())) == 0b1111;
        if *all_positive {
            store4(&mut us[i..], streams.open01());
        }
        streams.store(&mut rngs[i..]);
        store4(&mut zs[i..], z);
        store4(&mut xs[i..], x);
    }
    // Pass 2: chi.accepts, lane-wise: the squeeze, then the logarithmic test only for groups
    // with a lane the squeeze did not accept (about a third at dof 99; the test's result is the
    // same either way, `squeeze | exact`). Groups with work left (that, or some 1 + c x <= 0)
    // are listed without branching. Without the boost, SS = 2 Gamma is stored at once
    // (doubling is exact, so the bits are those of doubling last).
    let scale = _mm256_set1_pd(if chi.boost.is_some() { 1.0 } else { 2.0 });
    let mut unfinished = [0usize; SUFFICIENT_BATCH / 4];
    let mut listed = 0;
    for g in 0..groups {
        let i = 4 * g;
        let x = load4(&xs[i..]);
        let v = _mm256_add_pd(one, _mm256_mul_pd(c, x));
        let v = _mm256_mul_pd(_mm256_mul_pd(v, v), v);
        let x2 = _mm256_mul_pd(x, x);
        let squeeze = _mm256_cmp_pd::<_CMP_LT_OQ>(
            load4(&us[i..]),
            _mm256_sub_pd(
                one,
                _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(0.0331), x2), x2),
            ),
        );
        // Groups without the uniform go to pass 3 whole.
        accepted[g] = if positive[g] {
            _mm256_movemask_pd(squeeze)
        } else {
            0
        };
        unfinished[listed] = g;
        listed += usize::from(accepted[g] != ALL_LANES);
        store4(&mut ss[i..], _mm256_mul_pd(scale, _mm256_mul_pd(d, v)));
    }
    for &g in &unfinished[..listed] {
        if !positive[g] {
            continue;
        }
        let i = 4 * g;
        let x = load4(&xs[i..]);
        let v = _mm256_add_pd(one, _mm256_mul_pd(c, x));
        let v = _mm256_mul_pd(_mm256_mul_pd(v, v), v);
        let x2 = _mm256_mul_pd(x, x);
        let bound = _mm256_add_pd(
            _mm256_mul_pd(_mm256_set1_pd(0.5), x2),
            _mm256_mul_pd(d, _mm256_add_pd(_mm256_sub_pd(one, v), vmath::avx2::ln(v))),
        );
        let exact = _mm256_cmp_pd::<_CMP_LT_OQ>(vmath::avx2::ln(load4(&us[i..])), bound);
        accepted[g] |= _mm256_movemask_pd(exact);
    }
    // Pass 3: the rest in scalar code, on each lane's own stream.
    let scale = if chi.boost.is_some() { 1.0 } else { 2.0 };
    for &g in &unfinished[..listed] {
        for j in 0..4 {
            let i = 4 * g + j;
            if !positive[g] {
                // Some 1 + c x <= 0 (only for small dof): the scalar loop from candidate x.
                ss[i] = scale * chi.gamma_from(&mut rngs[i], xs[i]);
            } else if accepted[g] & (1 << j) == 0 {
                let candidate = normal.sample(&mut rngs[i]);
                ss[i] = scale * chi.gamma_from(&mut rngs[i], candidate);
            }
        }
    }
    // Pass 4: the boost for shape < 1, and SS = 2 Gamma.
    if let Some(inv_shape) = chi.boost {
        for g in 0..groups {
            let i = 4 * g;
            let mut streams = Streams::load(&rngs[i..]);
            let u = streams.open01();
            streams.store(&mut rngs[i..]);
            let gamma = _mm256_mul_pd(
                load4(&ss[i..]),
                vmath::avx2::exp(_mm256_mul_pd(vmath::avx2::ln(u), _mm256_set1_pd(inv_shape))),
            );
            store4(&mut ss[i..], _mm256_mul_pd(_mm256_set1_pd(2.0), gamma));
        }
    }
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
    // Two passes (the mean and ln sigma^2, then sigma): each iteration's dependency chain is
    // half as long, so the CPU overlaps more iterations.
    for g in 0..groups {
        let i = 4 * g;
        let mo = _mm256_add_pd(
            load4(&mean_offset[i..]),
            _mm256_mul_pd(load4(&sigma[i..]), _mm256_mul_pd(load4(&z[i..]), scale)),
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
    }
    for g in 0..groups {
        let i = 4 * g;
        let lv = load4(&log_variance[i..]);
        store4(
            &mut sigma[i..],
            vmath::avx2::exp(_mm256_mul_pd(_mm256_set1_pd(0.5), lv)),
        );
    }
    4 * groups
}
