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
    #[inline(always)]
    pub fn from_slice(values: &[f64]) -> Accumulator {
        if values.is_empty() {
            return Accumulator::default();
        }
        let n = values.len() as f64;
        let quads = values.chunks_exact(4);
        let tail = quads.remainder();
        let mut sums = [0.0f64; 4];
        for quad in quads.clone() {
            for lane in 0..4 {
                sums[lane] += quad[lane];
            }
        }
        for (sum, &v) in sums.iter_mut().zip(tail) {
            *sum += v;
        }
        let mean = ((sums[0] + sums[1]) + (sums[2] + sums[3])) / n;
        let (mut m2, mut m3, mut m4) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
        for quad in quads {
            for lane in 0..4 {
                let d = quad[lane] - mean;
                let d2 = d * d;
                m2[lane] += d2;
                m3[lane] += d2 * d;
                m4[lane] += d2 * d2;
            }
        }
        for (lane, &v) in tail.iter().enumerate() {
            let d = v - mean;
            let d2 = d * d;
            m2[lane] += d2;
            m3[lane] += d2 * d;
            m4[lane] += d2 * d2;
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

    /// Words of a piece file (`crate::shard`): n, mean, m2, m3, m4 as bits.
    pub fn push_words(&self, out: &mut Vec<u64>) {
        for x in [self.n, self.mean, self.m2, self.m3, self.m4] {
            out.push(x.to_bits());
        }
    }

    pub fn from_words(words: &mut crate::shard::Words<'_>) -> Accumulator {
        Accumulator {
            n: words.f64(),
            mean: words.f64(),
            m2: words.f64(),
            m3: words.f64(),
            m4: words.f64(),
        }
    }

    /// Words per accumulator.
    pub const WORDS: usize = 5;

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

/// Exact quantiles (as `quantiles`, bit for bit) of a sequence of arrays that change little from
/// one call to the next, such as the chains of an ensemble generation after generation. Each
/// call first tries brackets around the previous answers: one pass counts the values below each
/// bracket and copies those inside it, and when every wanted order statistic falls inside its
/// bracket, selection runs on those few values only. Otherwise (or on NaN) it selects on the
/// whole array. Either way the answer is exact: the brackets only decide how much is sorted.
#[derive(Debug, Clone)]
pub struct QuantileTracker<const K: usize> {
    probs: [f64; K],
    /// The previous answers and the half-widths of the brackets around them.
    previous: Option<([f64; K], [f64; K])>,
    keys: Vec<u64>,
    inside: Vec<f64>,
    /// Calls answered from the brackets.
    hits: u64,
}

/// Bracket half-width as a fraction of the spread of the previous answers (about 1/20 of the
/// interquartile range holds a few per cent of the values near a quartile).
const BRACKET_SPREAD: f64 = 0.05;
/// Bracket allowance for movement, in multiples of the last step of each answer.
const BRACKET_DRIFT: f64 = 2.0;

impl<const K: usize> QuantileTracker<K> {
    /// `probs` ascending, each in [0, 1].
    pub fn new(probs: [f64; K]) -> QuantileTracker<K> {
        assert!(
            probs.windows(2).all(|w| w[0] <= w[1]) && probs.iter().all(|p| (0.0..=1.0).contains(p)),
            "probabilities must ascend within [0, 1]"
        );
        QuantileTracker {
            probs,
            previous: None,
            keys: Vec::new(),
            inside: Vec::new(),
            hits: 0,
        }
    }

    /// How many calls the brackets answered (the rest selected on the whole array).
    pub fn bracket_hits(&self) -> u64 {
        self.hits
    }

    pub fn quantiles(&mut self, values: &[f64]) -> [f64; K] {
        let out = match self.bracketed(values) {
            Some(out) => {
                self.hits += 1;
                out
            }
            None => quantiles(values, self.probs, &mut self.keys),
        };
        let spread = match (out.first(), out.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        let widths = std::array::from_fn(|k| {
            let step = self
                .previous
                .map_or(0.0, |(before, _)| (out[k] - before[k]).abs());
            BRACKET_SPREAD * spread + BRACKET_DRIFT * step
        });
        self.previous = (out.iter().chain(&widths).all(|x| x.is_finite())).then_some((out, widths));
        out
    }

    /// The quantiles from the brackets, or None when one misses its order statistics.
    fn bracketed(&mut self, values: &[f64]) -> Option<[f64; K]> {
        let (centres, widths) = self.previous?;
        let n = values.len();
        if n == 0 {
            return None;
        }
        let lower: [f64; K] = std::array::from_fn(|k| centres[k] - widths[k]);
        let upper: [f64; K] = std::array::from_fn(|k| centres[k] + widths[k]);
        let (below, inside, nan) = bracket_passes::count(values, &lower, &upper);
        if nan > 0 {
            return None;
        }
        let wanted = |k: usize| {
            let h = (n - 1) as f64 * self.probs[k];
            let lo = (h.floor() as usize).min(n - 1);
            let frac = h - lo as f64;
            (lo, frac, frac > 0.0 && lo + 1 < n)
        };
        for k in 0..K {
            let (lo, _, next) = wanted(k);
            if lo < below[k] || lo + usize::from(next) >= below[k] + inside[k] {
                return None;
            }
        }
        self.inside.resize(K * n, 0.0);
        let mut regions: [&mut [f64]; K] = split_regions(&mut self.inside, n);
        bracket_passes::collect(values, &lower, &upper, &mut regions);
        let mut out = [0.0; K];
        for (k, region) in regions.into_iter().enumerate() {
            let (lo, frac, next) = wanted(k);
            let region = &mut region[..inside[k]];
            let (_, a, rest) = region.select_nth_unstable_by(lo - below[k], f64::total_cmp);
            let a = *a;
            out[k] = if next {
                let b = rest.iter().copied().min_by(f64::total_cmp)?;
                a + frac * (b - a)
            } else {
                a
            };
        }
        Some(out)
    }
}

/// The brackets' passes, compiled for AVX2 when the CPU has it (the same code, four comparisons
/// per instruction instead of two), else as built. (A closure would not inherit the feature.)
mod bracket_passes {
    use super::{collect_in_brackets, count_in_brackets};

    pub(super) fn count<const K: usize>(
        values: &[f64],
        lower: &[f64; K],
        upper: &[f64; K],
    ) -> ([usize; K], [usize; K], usize) {
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::avx2::available() {
            // SAFETY: the CPU has AVX2 (checked).
            return unsafe { count_avx2(values, lower, upper) };
        }
        count_in_brackets(values, lower, upper)
    }

    pub(super) fn collect<const K: usize>(
        values: &[f64],
        lower: &[f64; K],
        upper: &[f64; K],
        regions: &mut [&mut [f64]; K],
    ) {
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::avx2::available() {
            // SAFETY: the CPU has AVX2 (checked).
            return unsafe { collect_avx2(values, lower, upper, regions) };
        }
        collect_in_brackets(values, lower, upper, regions)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn count_avx2<const K: usize>(
        values: &[f64],
        lower: &[f64; K],
        upper: &[f64; K],
    ) -> ([usize; K], [usize; K], usize) {
        count_in_brackets(values, lower, upper)
    }

    /// `collect_in_brackets` four values at a time: each bracket's accepted lanes are packed to
    /// the front of a vector (a permutation from a table indexed by the lane mask) and stored
    /// whole at the region's fill point, which then advances by the number accepted (the fill
    /// point never passes the values read, so the store stays inside the region).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn collect_avx2<const K: usize>(
        values: &[f64],
        lower: &[f64; K],
        upper: &[f64; K],
        regions: &mut [&mut [f64]; K],
    ) {
        use std::arch::x86_64::*;
        let whole = values.len() / 4 * 4;
        assert!(regions.iter().all(|r| r.len() >= values.len()));
        let lows: [__m256d; K] = std::array::from_fn(|k| _mm256_set1_pd(lower[k]));
        let highs: [__m256d; K] = std::array::from_fn(|k| _mm256_set1_pd(upper[k]));
        let mut filled = [0usize; K];
        for base in (0..whole).step_by(4) {
            // SAFETY: base + 4 <= values.len().
            let x = unsafe { _mm256_loadu_pd(values.as_ptr().add(base)) };
            for k in 0..K {
                let inside = _mm256_and_pd(
                    _mm256_cmp_pd::<_CMP_GE_OQ>(x, lows[k]),
                    _mm256_cmp_pd::<_CMP_LE_OQ>(x, highs[k]),
                );
                let mask = _mm256_movemask_pd(inside) as usize;
                // SAFETY: PACK rows are 32 bytes; filled[k] <= base, so the 4 stored values
                // end at or before base + 4 <= the region's length (asserted).
                unsafe {
                    let order = _mm256_loadu_si256(PACK[mask].as_ptr().cast());
                    let packed =
                        _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(x), order));
                    _mm256_storeu_pd(regions[k].as_mut_ptr().add(filled[k]), packed);
                }
                filled[k] += mask.count_ones() as usize;
            }
        }
        for &x in &values[whole..] {
            for k in 0..K {
                regions[k][filled[k]] = x;
                filled[k] += usize::from(x >= lower[k] && x <= upper[k]);
            }
        }
    }

    /// For each 4-lane mask, the 32-bit lane indices that move the selected doubles to the
    /// front, in order.
    #[cfg(target_arch = "x86_64")]
    static PACK: [[u32; 8]; 16] = {
        let mut table = [[0u32; 8]; 16];
        let mut mask = 0;
        while mask < 16 {
            let (mut lane, mut out) = (0, 0);
            while lane < 4 {
                if mask & (1 << lane) != 0 {
                    table[mask][2 * out] = 2 * lane as u32;
                    table[mask][2 * out + 1] = 2 * lane as u32 + 1;
                    out += 1;
                }
                lane += 1;
            }
            mask += 1;
        }
        table
    };
}

/// How many values lie below each bracket and inside it, and how many are NaN.
#[inline(always)]
fn count_in_brackets<const K: usize>(
    values: &[f64],
    lower: &[f64; K],
    upper: &[f64; K],
) -> ([usize; K], [usize; K], usize) {
    let (mut below, mut inside, mut nan) = ([0usize; K], [0usize; K], 0usize);
    for &x in values {
        nan += usize::from(x.is_nan());
        for k in 0..K {
            below[k] += usize::from(x < lower[k]);
            inside[k] += usize::from(x >= lower[k] && x <= upper[k]);
        }
    }
    (below, inside, nan)
}

/// Copies the values inside bracket k to the front of `regions[k]`, in order, without
/// branching (each value is written and the fill advances only when it is inside).
#[inline(always)]
fn collect_in_brackets<const K: usize>(
    values: &[f64],
    lower: &[f64; K],
    upper: &[f64; K],
    regions: &mut [&mut [f64]; K],
) {
    let mut filled = [0usize; K];
    for &x in values {
        for k in 0..K {
            regions[k][filled[k]] = x;
            filled[k] += usize::from(x >= lower[k] && x <= upper[k]);
        }
    }
}

/// `K` disjoint slices of length `len` at the front of `buffer` (of length at least K len).
fn split_regions<const K: usize>(buffer: &mut [f64], len: usize) -> [&mut [f64]; K] {
    let mut rest = buffer;
    std::array::from_fn(|_| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        head
    })
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

    #[test]
    fn mean_error_by_hand_and_of_equal_values() {
        let m = MeanError::of(&[1.0, 2.0, 4.0]);
        // Mean 7/3; sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3; s.e. sqrt(7/9).
        assert!((m.mean - 7.0 / 3.0).abs() < 1e-15);
        assert!((m.stderr - (7.0f64 / 9.0).sqrt()).abs() < 1e-15);
        // 0.1 three times: the rounded mean of the sum is not 0.1, the error is still 0.
        let same = MeanError::of(&[0.1, 0.1, 0.1]);
        assert_eq!((same.mean, same.stderr), (0.1, 0.0));
        assert!(MeanError::of(&[3.0]).stderr.is_nan());
    }
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
    fn brackets_answer_a_slowly_drifting_ensemble() {
        // 5000 values with a spread of ~1, each moving by a small random step per call (as
        // chains do): the brackets should answer nearly every call, and exactly.
        let mut rng = crate::rng::ChainRng::for_chain(5, 0, 0);
        let mut values: Vec<f64> = (0..5000).map(|_| rng.next_open01() * 4.0 - 2.0).collect();
        let mut tracker = QuantileTracker::new([0.25, 0.5, 0.75]);
        let mut scratch = Vec::new();
        for _ in 0..50 {
            let got = tracker.quantiles(&values);
            let expect = quantiles(&values, [0.25, 0.5, 0.75], &mut scratch);
            assert_eq!(got.map(f64::to_bits), expect.map(f64::to_bits));
            for v in &mut values {
                *v += 0.02 * (rng.next_open01() - 0.5) - 0.001;
            }
        }
        assert!(
            tracker.bracket_hits() >= 45,
            "{} of 50",
            tracker.bracket_hits()
        );
    }

    #[test]
    fn vector_collection_matches_scalar() {
        let mut rng = crate::rng::ChainRng::for_chain(6, 0, 0);
        for n in [0usize, 1, 3, 4, 5, 17, 256, 1001] {
            let values: Vec<f64> = (0..n).map(|_| rng.next_open01()).collect();
            let (lower, upper) = ([0.1, 0.45, 0.7], [0.3, 0.55, 0.72]);
            let mut a = vec![f64::NAN; 3 * n];
            let mut b = vec![f64::NAN; 3 * n];
            let counts = count_in_brackets(&values, &lower, &upper);
            assert_eq!(bracket_passes::count(&values, &lower, &upper), counts);
            collect_in_brackets(&values, &lower, &upper, &mut split_regions(&mut a, n));
            bracket_passes::collect(&values, &lower, &upper, &mut split_regions(&mut b, n));
            for k in 0..3 {
                let (ra, rb) = (
                    &a[k * n..k * n + counts.1[k]],
                    &b[k * n..k * n + counts.1[k]],
                );
                assert_eq!(
                    ra.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    rb.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                );
                assert!(ra.iter().all(|&x| x >= lower[k] && x <= upper[k]));
            }
        }
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
        fn tracked_quantiles_equal_direct_ones(
            base in proptest::collection::vec(-1e3f64..1e3, 1..400),
            steps in proptest::collection::vec((-2.0f64..2.0, 0.0f64..3.0), 1..12),
        ) {
            // A drifting, spreading sequence of arrays (with ties from the first, identical one).
            let mut tracker = QuantileTracker::new([0.25, 0.5, 0.75]);
            let mut values = vec![base[0]; base.len()];
            let mut scratch = Vec::new();
            for (shift, spread) in steps {
                let expect = quantiles(&values, [0.25, 0.5, 0.75], &mut scratch);
                let got = tracker.quantiles(&values);
                prop_assert_eq!(got.map(f64::to_bits), expect.map(f64::to_bits));
                values = base.iter().zip(&values).map(|(b, v)| v + shift + spread * b * 1e-3).collect();
            }
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

/// Mean and standard error (sample standard deviation / sqrt(count); NaN for one value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanError {
    pub mean: f64,
    pub stderr: f64,
}

impl MeanError {
    pub fn of(values: &[f64]) -> MeanError {
        let n = values.len() as f64;
        // Equal values have standard error 0 exactly (their rounded mean need not equal them).
        if values.len() > 1 && values.iter().all(|&v| v == values[0]) {
            return MeanError {
                mean: values[0],
                stderr: 0.0,
            };
        }
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        MeanError {
            mean,
            stderr: if values.len() > 1 {
                (var / n).sqrt()
            } else {
                f64::NAN
            },
        }
    }
}
