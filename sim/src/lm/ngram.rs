//! An n-gram language model with interpolated Kneser–Ney smoothing over token ids, and exact
//! decoding: beam search with a repetition penalty (the paper's generation), and sampling.
//!
//! # The model
//!
//! Every training sequence is preceded by `order - 1` start symbols (`BOS`, never predicted).
//! Level `order` counts the n-grams; each lower level k counts, for a k-gram, the distinct
//! tokens seen before it (its continuation count, `N1+(. h w)`). With the discount `D_k` of
//! level k, `c(h) = sum_w c_k(h w)` and `N1+(h .)` the distinct tokens seen after h,
//!
//! ```text
//! P_k(w | h) = max(c_k(h w) - D_k, 0) / c(h) + gamma_k(h) P_{k-1}(w | h'),
//! gamma_k(h) = D_k N1+(h .) / c(h),             h' = h without its first token,
//! P_1(w)     = max(c_1(w) - D_1, 0) / c + gamma_1 / V,
//! ```
//!
//! and `P_k(w | h) = P_{k-1}(w | h')` when h was never seen. `D_k = n1 / (n1 + 2 n2)` from the
//! numbers of k-grams counted once and twice (Ney, Essen and Kneser 1994; 1/2 when either is
//! zero). Each level sums to 1 over the V tokens, so every token has a positive probability
//! and perplexities are finite.
//!
//! # Ranked continuations
//!
//! For a token w never seen after h at any level above j, `P_n(w | h) = (prod of the gammas above
//! j) P_j(w | h_j)`: so the tokens in descending order of probability are a merge of one sorted
//! list per level (the continuations of each suffix of the history, sorted when the model is
//! fitted), each scaled by the gammas above it, skipping tokens a higher level already gave.
//! [`NGram::ranked`] walks that merge lazily: the best few tokens cost a few steps, not V, which
//! makes beam search over a corpus exact and fast.

use crate::SimError;
use crate::rng::ChainRng;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a 64-bit key with the SplitMix64 finaliser: the maps here are only ever keyed by
/// packed token sequences, and the standard SipHash made lookups the cost of decoding.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, k: u64) {
        self.0 = k;
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Highest order accepted (four 16-bit tokens make one 64-bit key).
pub const MAX_ORDER: usize = 4;
/// Largest vocabulary accepted (the start symbol takes the next id, which must fit 16 bits).
pub const MAX_VOCAB: usize = 65_535;
/// Discount used when a level has no n-gram counted once or none counted twice.
const FALLBACK_DISCOUNT: f64 = 0.5;

/// The 64-bit key of a token sequence of at most [`MAX_ORDER`] tokens.
fn key(tokens: &[u32]) -> u64 {
    tokens.iter().fold(0, |k, &t| (k << 16) | u64::from(t))
}

#[derive(Debug, Clone, Copy)]
struct Context {
    /// c(h): the sum of the level's counts after h.
    total: u64,
    /// gamma(h) = D N1+(h .) / c(h).
    gamma: f64,
    /// The continuations of h in `Level::ranked[start..start + len]`.
    start: usize,
    len: usize,
}

#[derive(Debug, Clone)]
struct Level {
    /// Counts of the level's k-grams (raw at the top level, continuation counts below).
    counts: KeyMap<u64>,
    contexts: KeyMap<Context>,
    /// Per context, its continuations with their probability at this level, in descending
    /// probability (then ascending token).
    ranked: Vec<(u32, f64)>,
    discount: f64,
}

/// An interpolated Kneser–Ney n-gram model over tokens `0..vocab`.
#[derive(Debug, Clone)]
pub struct NGram {
    order: usize,
    vocab: usize,
    bos: u32,
    /// `levels[k - 1]` is level k.
    levels: Vec<Level>,
}

impl NGram {
    /// Fits the model of `order` (1..=[`MAX_ORDER`]) to `sequences` of tokens below `vocab`
    /// (1..=[`MAX_VOCAB`]).
    pub fn fit(sequences: &[&[u32]], vocab: usize, order: usize) -> Result<NGram, SimError> {
        let invalid = |why: String| SimError::Invalid {
            what: "n-gram model",
            why,
        };
        if !(1..=MAX_ORDER).contains(&order) {
            return Err(invalid(format!(
                "order must be in 1..={MAX_ORDER}, got {order}"
            )));
        }
        if !(1..=MAX_VOCAB).contains(&vocab) {
            return Err(invalid(format!(
                "vocabulary must be in 1..={MAX_VOCAB}, got {vocab}"
            )));
        }
        if let Some(&t) = sequences
            .iter()
            .flat_map(|s| s.iter())
            .find(|&&t| t as usize >= vocab)
        {
            return Err(invalid(format!(
                "token {t} is not below the vocabulary {vocab}"
            )));
        }
        let bos = vocab as u32;
        let mut top: KeyMap<u64> = KeyMap::default();
        let mut padded = Vec::new();
        for s in sequences {
            padded.clear();
            padded.resize(order - 1, bos);
            padded.extend_from_slice(s);
            for gram in padded.windows(order) {
                *top.entry(key(gram)).or_insert(0) += 1;
            }
        }
        // Level k's continuation counts from level k + 1's distinct keys.
        let mut counts = vec![KeyMap::default(); order];
        counts[order - 1] = top;
        for k in (1..order).rev() {
            let mask = (1u64 << (16 * k)) - 1;
            let mut lower: KeyMap<u64> = KeyMap::default();
            for &upper in counts[k].keys() {
                *lower.entry(upper & mask).or_insert(0) += 1;
            }
            counts[k - 1] = lower;
        }
        let mut model = NGram {
            order,
            vocab,
            bos,
            levels: Vec::with_capacity(order),
        };
        for (k, counts) in (1..=order).zip(counts) {
            let level = model.level(k, counts);
            model.levels.push(level);
        }
        Ok(model)
    }

    /// Builds level k from its counts; levels below k are in place.
    fn level(&self, k: usize, counts: KeyMap<u64>) -> Level {
        let (mut once, mut twice) = (0u64, 0u64);
        for &c in counts.values() {
            once += u64::from(c == 1);
            twice += u64::from(c == 2);
        }
        let discount = if once > 0 && twice > 0 {
            once as f64 / (once + 2 * twice) as f64
        } else {
            FALLBACK_DISCOUNT
        };
        // Context sums and types.
        let mut sums: KeyMap<(u64, u64)> = KeyMap::default();
        for (&gram, &c) in &counts {
            let s = sums.entry(gram >> 16).or_insert((0, 0));
            s.0 += c;
            s.1 += 1;
        }
        let mut level = Level {
            counts,
            contexts: KeyMap::with_capacity_and_hasher(sums.len(), Default::default()),
            ranked: Vec::new(),
            discount,
        };
        for (&h, &(total, types)) in &sums {
            level.contexts.insert(
                h,
                Context {
                    total,
                    gamma: discount * types as f64 / total as f64,
                    start: 0,
                    len: 0,
                },
            );
        }
        // Every (context, token) of the level with its probability at this level, sorted by
        // context, then descending probability, then token: independent of hash order.
        let mut entries: Vec<(u64, u32, f64)> = if k == 1 {
            // The empty context ranks the whole vocabulary (unseen tokens have gamma / V).
            (0..self.vocab as u32)
                .map(|w| (0, w, self.level_prob(&level, 1, 0, w)))
                .collect()
        } else {
            level
                .counts
                .keys()
                .map(|&gram| {
                    let (h, w) = (gram >> 16, (gram & 0xFFFF) as u32);
                    (h, w, self.level_prob(&level, k, h, w))
                })
                .collect()
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.total_cmp(&a.2)).then(a.1.cmp(&b.1)));
        let mut i = 0;
        while i < entries.len() {
            let h = entries[i].0;
            let j = i + entries[i..].iter().take_while(|e| e.0 == h).count();
            if let Some(c) = level.contexts.get_mut(&h) {
                c.start = i;
                c.len = j - i;
            } else {
                // Only the unigram level's empty context ranks tokens it has not counted.
                level.contexts.insert(
                    h,
                    Context {
                        total: 0,
                        gamma: 1.0,
                        start: i,
                        len: j - i,
                    },
                );
            }
            i = j;
        }
        level.ranked = entries.into_iter().map(|(_, w, p)| (w, p)).collect();
        level
    }

    /// P_k(w | h) for the level being built (`level`) and the finished levels below it.
    fn level_prob(&self, level: &Level, k: usize, h: u64, w: u32) -> f64 {
        let lower = if k == 1 {
            1.0 / self.vocab as f64
        } else {
            let mask = (1u64 << (16 * (k - 2))) - 1;
            self.prob_at(k - 1, h & mask, w)
        };
        match level.contexts.get(&h) {
            Some(c) if c.total > 0 => {
                let count = level
                    .counts
                    .get(&((h << 16) | u64::from(w)))
                    .copied()
                    .unwrap_or(0);
                (count as f64 - level.discount).max(0.0) / c.total as f64 + c.gamma * lower
            }
            _ => lower,
        }
    }

    /// P_k(w | h) from the finished levels, h being the key of k - 1 tokens.
    fn prob_at(&self, k: usize, h: u64, w: u32) -> f64 {
        self.level_prob(&self.levels[k - 1], k, h, w)
    }

    pub fn order(&self) -> usize {
        self.order
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The probability of a token never seen in training after a history never seen either:
    /// gamma_1 / V, the smoothing's mass. Every context gives such a token at most this (each
    /// gamma is below 1), the tail-loss link to the Markov chain: a type absent from a
    /// generation's training data keeps only this much in the next.
    pub fn unseen_probability(&self) -> f64 {
        let level = &self.levels[0];
        match level.contexts.get(&0) {
            Some(c) if c.total > 0 => c.gamma / self.vocab as f64,
            _ => 1.0 / self.vocab as f64,
        }
    }

    /// The discount of each level, lowest first.
    pub fn discounts(&self) -> Vec<f64> {
        self.levels.iter().map(|l| l.discount).collect()
    }

    /// The key of the last `order - 1` tokens of `history`, start symbols filling in before a
    /// short one.
    fn history_key(&self, history: &[u32]) -> u64 {
        let n = self.order - 1;
        let from = history.len().saturating_sub(n);
        let pad = n - (history.len() - from);
        (0..pad)
            .map(|_| self.bos)
            .chain(history[from..].iter().copied())
            .fold(0, |k, t| (k << 16) | u64::from(t))
    }

    /// P(w | history): the last `order - 1` tokens of `history` are the context (a shorter
    /// history is the start of a sequence). Panics if w is not below the vocabulary.
    pub fn prob(&self, history: &[u32], w: u32) -> f64 {
        assert!(
            (w as usize) < self.vocab,
            "token {w} outside the vocabulary"
        );
        self.prob_at(self.order, self.history_key(history), w)
    }

    /// The natural-log probability of a whole sequence (from its start).
    pub fn log_prob(&self, sequence: &[u32]) -> f64 {
        (0..sequence.len())
            .map(|i| self.prob(&sequence[..i], sequence[i]).ln())
            .sum()
    }

    /// The tokens in descending probability after `history` (ties: the higher level, then
    /// the lower token), each once, with its probability.
    pub fn ranked(&self, history: &[u32]) -> Ranked<'_> {
        let h = self.history_key(history);
        let mut heads = [Head::EMPTY; MAX_ORDER];
        let mut len = 0;
        let mut scale = 1.0;
        // From the top level down: the context of level k is the last k - 1 tokens.
        for k in (1..=self.order).rev() {
            let mask = if k == 1 {
                0
            } else {
                (1u64 << (16 * (k - 1))) - 1
            };
            let context_key = h & mask;
            let level = &self.levels[k - 1];
            if let Some(c) = level.contexts.get(&context_key) {
                heads[len] = Head {
                    level: k,
                    context: context_key,
                    list: &level.ranked[c.start..c.start + c.len],
                    next: 0,
                    scale,
                    checked: false,
                };
                len += 1;
                if c.total > 0 {
                    scale *= c.gamma;
                }
            }
        }
        Ranked {
            model: self,
            heads,
            len,
        }
    }

    /// Whether w was counted after the context at level k (so that level gives its
    /// probability).
    fn counted(&self, k: usize, context: u64, w: u32) -> bool {
        self.levels[k - 1]
            .counts
            .contains_key(&((context << 16) | u64::from(w)))
    }

    /// Continues `prompt` by `new_tokens` tokens with beam search over `beams` beams, each
    /// step scoring a token by ln P, times `repetition_penalty` (>= 1) if the token already
    /// occurs in that beam's text (prompt included): the paper's generation (Hugging Face's
    /// beam search with `repetition_penalty`, which scales log-probabilities). Returns the
    /// best beam's new tokens. Exact: every token's score is considered, through [`ranked`]
    /// with a stopping rule. Ties: lower beam, then lower token.
    ///
    /// [`ranked`]: NGram::ranked
    pub fn beam_search(
        &self,
        prompt: &[u32],
        new_tokens: usize,
        beams: usize,
        repetition_penalty: f64,
    ) -> Vec<u32> {
        assert!(beams >= 1 && repetition_penalty >= 1.0);
        let words = self.vocab.div_ceil(64);
        let mut seen = vec![0u64; words];
        for &t in prompt {
            seen[t as usize / 64] |= 1 << (t % 64);
        }
        let mut live = vec![Beam {
            tokens: Vec::with_capacity(new_tokens),
            score: 0.0,
            seen,
        }];
        let mut text = prompt.to_vec();
        for _ in 0..new_tokens {
            // Candidates: each beam's best `beams` tokens (enough for the best `beams` overall).
            let mut candidates: Vec<(f64, usize, u32)> = Vec::with_capacity(beams * beams);
            for (b, beam) in live.iter().enumerate() {
                text.truncate(prompt.len());
                text.extend_from_slice(&beam.tokens);
                let mut best: Vec<(f64, u32)> = Vec::with_capacity(beams + 1);
                for (w, p) in self.ranked(&text) {
                    let lp = p.ln();
                    // Later tokens score at most ln p: stop once that cannot enter the best.
                    if best.len() == beams && lp < best[beams - 1].0 {
                        break;
                    }
                    let repeated = beam.seen[w as usize / 64] >> (w % 64) & 1 == 1;
                    let s = if repeated {
                        lp * repetition_penalty
                    } else {
                        lp
                    };
                    let at = best.partition_point(|&(bs, bw)| bs > s || (bs == s && bw < w));
                    if at < beams {
                        best.insert(at, (s, w));
                        best.truncate(beams);
                    }
                }
                candidates.extend(best.into_iter().map(|(s, w)| (beam.score + s, b, w)));
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            candidates.truncate(beams);
            live = candidates
                .into_iter()
                .map(|(score, b, w)| {
                    let parent = &live[b];
                    let mut tokens = parent.tokens.clone();
                    tokens.push(w);
                    let mut seen = parent.seen.clone();
                    seen[w as usize / 64] |= 1 << (w % 64);
                    Beam {
                        tokens,
                        score,
                        seen,
                    }
                })
                .collect();
        }
        live.swap_remove(0).tokens
    }

    /// Continues `prompt` by `new_tokens` tokens drawn from the model (temperature 1).
    pub fn sample(&self, prompt: &[u32], new_tokens: usize, rng: &mut ChainRng) -> Vec<u32> {
        let mut text = prompt.to_vec();
        for _ in 0..new_tokens {
            let u = rng.next_f64();
            let mut cumulative = 0.0;
            let mut last = 0;
            let mut chosen = None;
            for (w, p) in self.ranked(&text) {
                cumulative += p;
                last = w;
                if u < cumulative {
                    chosen = Some(w);
                    break;
                }
            }
            // Rounding can leave the sum a hair below u: the last token then takes it.
            text.push(chosen.unwrap_or(last));
        }
        text.split_off(prompt.len())
    }
}

#[derive(Debug, Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f64,
    /// Bit t set: token t occurs in the prompt or in `tokens`.
    seen: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Head<'a> {
    level: usize,
    context: u64,
    list: &'a [(u32, f64)],
    next: usize,
    /// The product of the gammas of the levels above.
    scale: f64,
    /// Whether `list[next]` is known not to be given by a higher level.
    checked: bool,
}

impl Head<'_> {
    const EMPTY: Head<'static> = Head {
        level: 0,
        context: 0,
        list: &[],
        next: 0,
        scale: 0.0,
        checked: true,
    };
}

/// The iterator of [`NGram::ranked`].
#[derive(Debug, Clone)]
pub struct Ranked<'a> {
    model: &'a NGram,
    /// `heads[..len]`: one per level whose context was seen, the top level first.
    heads: [Head<'a>; MAX_ORDER],
    len: usize,
}

impl Iterator for Ranked<'_> {
    type Item = (u32, f64);

    fn next(&mut self) -> Option<(u32, f64)> {
        // Drop, at each head, tokens that a higher level gives (each head's current token is
        // checked once, when it becomes current).
        let heads = &mut self.heads[..self.len];
        for i in 0..heads.len() {
            if heads[i].checked {
                continue;
            }
            loop {
                let head = &heads[i];
                let Some(&(w, _)) = head.list.get(head.next) else {
                    break;
                };
                let claimed = heads[..i]
                    .iter()
                    .any(|upper| self.model.counted(upper.level, upper.context, w));
                if !claimed {
                    break;
                }
                heads[i].next += 1;
            }
            heads[i].checked = true;
        }
        let mut best: Option<(usize, f64)> = None;
        for (i, head) in heads.iter().enumerate() {
            if let Some(&(_, p)) = head.list.get(head.next) {
                let value = head.scale * p;
                if best.is_none_or(|(_, v)| value > v) {
                    best = Some((i, value));
                }
            }
        }
        let (i, value) = best?;
        let head = &mut heads[i];
        let w = head.list[head.next].0;
        head.next += 1;
        head.checked = false;
        Some((w, value))
    }
}

#[cfg(test)]
mod tests;
