//! Random streams. Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC'11) is a counter-based
//! generator: block(counter, key) is a bijection of the counter for every key, so distinct
//! (seed, stream, chain) triples give distinct, statistically independent 256-bit seeds. Each
//! chain then runs xoshiro256++ (Blackman & Vigna), a fast generator with period 2^256 - 1.

const PHILOX_M0: u64 = 0xD251_1F53;
const PHILOX_M1: u64 = 0xCD9E_8D57;
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;

/// One Philox4x32-10 block.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let p0 = PHILOX_M0 * u64::from(c[0]);
        let p1 = PHILOX_M1 * u64::from(c[2]);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// The random stream of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRng {
    s: [u64; 4],
}

/// Stream identifiers: different uses of randomness within one run never share a stream.
pub mod stream {
    pub const GAUSSIAN: u32 = 1;
    pub const MARKOV: u32 = 2;
    pub const MVN: u32 = 3;
    pub const GMM: u32 = 4;
    pub const VAE: u32 = 5;
    pub const LM: u32 = 6;
    pub const TEST: u32 = 0xFFFF_FFFF;
}

impl ChainRng {
    /// The stream of a learned model's draws named by (purpose, generation, item): purpose in
    /// the top 8 bits of the chain number, generation in the next 24, item (an epoch, a
    /// block) in the low 32.
    pub fn for_purpose(
        seed: u64,
        stream: u32,
        purpose: u8,
        generation: usize,
        item: usize,
    ) -> ChainRng {
        let chain = (u64::from(purpose) << 56) | ((generation as u64) << 32) | item as u64;
        ChainRng::for_chain(seed, stream, chain)
    }

    /// The stream of chain `chain` of use `stream` under `seed`.
    pub fn for_chain(seed: u64, stream: u32, chain: u64) -> ChainRng {
        let key = [seed as u32, (seed >> 32) as u32];
        let mut words = [0u64; 4];
        for block in 0..2u32 {
            let out = philox4x32_10([chain as u32, (chain >> 32) as u32, block, stream], key);
            words[2 * block as usize] = u64::from(out[0]) | (u64::from(out[1]) << 32);
            words[2 * block as usize + 1] = u64::from(out[2]) | (u64::from(out[3]) << 32);
        }
        if words == [0; 4] {
            words[0] = 1; // the one state xoshiro cannot leave
        }
        ChainRng { s: words }
    }

    /// A stream resumed from `state()` (vector kernels keep several streams in registers).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn from_state(s: [u64; 4]) -> ChainRng {
        ChainRng { s }
    }

    /// The raw state in place (vector kernels load and store it whole).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn state_ref(&self) -> &[u64; 4] {
        &self.s
    }

    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn state_mut(&mut self) -> &mut [u64; 4] {
        &mut self.s
    }

    /// The raw state (for checkpoints).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on [0, 1) with 53 random bits.
    #[inline(always)]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on (0, 1): never 0, so its logarithm is finite.
    #[inline(always)]
    pub fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }
}

/// The stream as a `rand_core` generator, for samplers of `rand_distr` (the binomial).
impl rand_core::TryRng for ChainRng {
    type Error = std::convert::Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next_u64() >> 32) as u32)
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

/// Uniform on {0, ..., n - 1} (n >= 1) by Lemire's multiply-and-reject: exactly uniform.
#[inline]
pub fn below(rng: &mut ChainRng, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// Moves a uniform random `m`-subset of the rows of `pool` (rows of `width` values) to its
/// front, by a partial Fisher–Yates shuffle: the pool is a set, so its order is free. Nothing is
/// drawn when m covers the whole pool.
pub fn subsample_rows_to_front(pool: &mut [f64], width: usize, m: usize, rng: &mut ChainRng) {
    assert!(width > 0 && pool.len().is_multiple_of(width));
    let n = pool.len() / width;
    if m >= n {
        return;
    }
    for j in 0..m {
        let k = j + below(rng, (n - j) as u64) as usize;
        if k != j {
            let (head, tail) = pool.split_at_mut(k * width);
            head[j * width..(j + 1) * width].swap_with_slice(&mut tail[..width]);
        }
    }
}

/// Fisher–Yates shuffle.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChainRng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answers() {
        // Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32 10 rounds).
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn xoshiro_reference_sequence() {
        // xoshiro256++ from state (1, 2, 3, 4): the reference implementation's first outputs.
        let mut r = ChainRng { s: [1, 2, 3, 4] };
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(first, vec![41943041, 58720359, 3588806011781223]);
    }

    #[test]
    fn streams_differ_and_are_stable() {
        let a = ChainRng::for_chain(7, stream::GAUSSIAN, 0);
        let b = ChainRng::for_chain(7, stream::GAUSSIAN, 1);
        let c = ChainRng::for_chain(8, stream::GAUSSIAN, 0);
        let d = ChainRng::for_chain(7, stream::TEST, 0);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a, ChainRng::for_chain(7, stream::GAUSSIAN, 0));
        let mut r = ChainRng::for_chain(42, stream::TEST, 3);
        let u = r.next_open01();
        assert!(u > 0.0 && u < 1.0);
    }

    #[test]
    fn subsets_keep_rows_whole() {
        let mut r = ChainRng::for_chain(1, stream::TEST, 0);
        // Rows of width 2 stay whole and the pool stays a permutation of its rows.
        let mut pool: Vec<f64> = (0..20).map(f64::from).collect();
        subsample_rows_to_front(&mut pool, 2, 4, &mut r);
        let mut rows: Vec<(f64, f64)> = pool.chunks(2).map(|c| (c[0], c[1])).collect();
        assert!(rows.iter().all(|&(a, b)| b == a + 1.0 && a % 2.0 == 0.0));
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(
            rows,
            (0..10)
                .map(|i| (2.0 * f64::from(i), 2.0 * f64::from(i) + 1.0))
                .collect::<Vec<_>>()
        );
    }
}
