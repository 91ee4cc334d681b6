//! A byte-level BPE tokenizer (GPT-2's scheme), trained on the training split.
//!
//! # The vocabulary
//!
//! Ids `0..256` are the bytes; id `256 + r` is merge `r`, the concatenation of two earlier ids.
//! Every byte string is therefore encodable and every id sequence decodes to bytes, so the
//! round trip `decode(encode(s)) == s` holds for any text, whatever it was trained on.
//!
//! # Pre-tokenisation
//!
//! Text is first cut into [`chunks`] (words with their leading space, digit runs, punctuation
//! runs, whitespace runs) and merges never cross a chunk boundary, so tokens are pieces of
//! words rather than spans of phrases, and each distinct chunk is encoded once.
//!
//! # Training and encoding
//!
//! Training repeatedly merges the adjacent pair with the highest count over the training chunks
//! (weighted by how often each chunk occurs); ties go to the smallest `(left, right)` pair, so
//! the merges are a function of the text alone (not of hash order or thread count). A merge
//! replaces the non-overlapping occurrences of its pair left to right ("a a a" with (a, a)
//! gives "aa a"). Encoding a chunk repeatedly merges its adjacent pair of lowest rank, all
//! occurrences left to right, which reproduces what training did to the training chunks.

use crate::SimError;
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// A byte-level BPE tokenizer: ids 0..256 are the bytes, each later id the merge of two
/// earlier ids (GPT-2's scheme, trained here on the training split).
///
/// Two tokenizers are equal exactly when their merges are: every other field is derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bpe {
    /// Merge `r` creates id `256 + r`.
    merges: Vec<(u32, u32)>,
    /// The bytes of token `id` are `bytes[offsets[id]..offsets[id + 1]]`.
    offsets: Vec<usize>,
    bytes: Vec<u8>,
    /// Pair -> merge rank, for encoding.
    ranks: FastMap<(u32, u32), u32>,
}

/// Magic number opening [`Bpe::to_bytes`].
const MAGIC: &[u8; 8] = b"CLBPE001";

/// Most bytes all tokens may take together (1 GiB). A merge list can describe tokens whose
/// lengths double at every merge, so [`Bpe::from_bytes`] refuses lists beyond this, and
/// training stops before crossing it (natural text never comes near: that is an average of
/// 16 KiB per token).
const MAX_TOKEN_BYTES: usize = 1 << 30;

/// Marks a symbol merged into its left neighbour while encoding a chunk.
const DEAD: u32 = u32::MAX;

impl Bpe {
    /// Largest vocabulary accepted (ids fit 16 bits with one id to spare, for a start symbol).
    pub const MAX_VOCAB: usize = 65_535;

    /// Trains merges on `documents` until the vocabulary has `vocab_size` ids, or no pair occurs
    /// at least twice (then it is smaller: a pair seen once compresses nothing it was trained
    /// on), or the next token would take the tokens past 1 GiB in all (never on real text).
    /// `vocab_size` must be in `256..=MAX_VOCAB`, else [`SimError::Invalid`].
    ///
    /// The result depends only on the multiset of chunks of the documents: ties between pairs
    /// of equal count go to the smallest `(left, right)`, and chunks are counted in parallel but
    /// summed, so it is the same for any thread count.
    pub fn train<'a>(
        documents: impl IntoIterator<Item = &'a str>,
        vocab_size: usize,
    ) -> Result<Bpe, SimError> {
        if !(256..=Self::MAX_VOCAB).contains(&vocab_size) {
            return Err(SimError::Invalid {
                what: "BPE vocabulary size",
                why: format!("must be in 256..={}, got {vocab_size}", Self::MAX_VOCAB),
            });
        }
        let documents: Vec<&'a str> = documents.into_iter().collect();
        let merges = Trainer::new(&documents).run(vocab_size - 256);
        Self::from_merges(merges)
    }

    /// Checks a merge list and builds the tokenizer: at most `MAX_VOCAB - 256` merges, each
    /// referring to ids defined before it, no pair merged twice, tokens within
    /// [`MAX_TOKEN_BYTES`].
    fn from_merges(merges: Vec<(u32, u32)>) -> Result<Bpe, SimError> {
        let invalid = |why: String| SimError::Invalid {
            what: "BPE merges",
            why,
        };
        if merges.len() > Self::MAX_VOCAB - 256 {
            return Err(invalid(format!(
                "{} merges, at most {} allowed",
                merges.len(),
                Self::MAX_VOCAB - 256
            )));
        }
        let mut offsets: Vec<usize> = (0..=256).collect();
        let mut bytes: Vec<u8> = (0..=255).collect();
        let mut ranks = FastMap::default();
        ranks.reserve(merges.len());
        for (r, &(left, right)) in merges.iter().enumerate() {
            let defined = 256 + r;
            if left as usize >= defined || right as usize >= defined {
                return Err(invalid(format!(
                    "merge {r} ({left}, {right}) refers to an id not yet defined (< {defined})"
                )));
            }
            if ranks.insert((left, right), r as u32).is_some() {
                return Err(invalid(format!(
                    "merge {r} ({left}, {right}) repeats a pair"
                )));
            }
            let (l, rr) = (left as usize, right as usize);
            let len = (offsets[l + 1] - offsets[l]) + (offsets[rr + 1] - offsets[rr]);
            if bytes.len() + len > MAX_TOKEN_BYTES {
                return Err(invalid(format!(
                    "tokens exceed {MAX_TOKEN_BYTES} bytes in all at merge {r}"
                )));
            }
            bytes.extend_from_within(offsets[l]..offsets[l + 1]);
            bytes.extend_from_within(offsets[rr]..offsets[rr + 1]);
            offsets.push(bytes.len());
        }
        Ok(Bpe {
            merges,
            offsets,
            bytes,
            ranks,
        })
    }

    /// Number of ids: 256 plus the number of merges.
    pub fn vocab_size(&self) -> usize {
        256 + self.merges.len()
    }

    /// The merges in rank order: merge `r` creates id `256 + r`.
    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merges
    }

    /// The bytes of token `id`.
    ///
    /// # Panics
    /// If `id >= vocab_size()`.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        assert!(
            i < self.vocab_size(),
            "token id {id} is outside the vocabulary of {} ids",
            self.vocab_size()
        );
        &self.bytes[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Encodes `text`: each chunk (see [`chunks`]) on its own, repeatedly merging its adjacent
    /// pair of lowest merge rank (all non-overlapping occurrences, left to right) until no
    /// adjacent pair is a merge. Repeated chunks are encoded once.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_cached(text, &mut FastMap::default())
    }

    /// Encodes many documents in parallel; the same result as [`Bpe::encode`] on each (each
    /// chunk's encoding depends on the chunk alone). Each worker keeps a cache of the chunks
    /// it has encoded, since chunks repeat a lot across documents.
    pub fn encode_all(&self, documents: &[&str]) -> Vec<Vec<u32>> {
        documents
            .par_iter()
            .map_init(FastMap::default, |cache, doc| {
                self.encode_cached(doc, cache)
            })
            .collect()
    }

    /// [`Bpe::encode`] with a cache of chunk encodings.
    fn encode_cached<'t>(&self, text: &'t str, cache: &mut FastMap<&'t str, Vec<u32>>) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        for chunk in chunks(text) {
            let ids = cache
                .entry(chunk)
                .or_insert_with(|| self.encode_chunk(chunk.as_bytes()));
            out.extend_from_slice(ids);
        }
        out
    }

    /// Encodes one chunk. Equivalent to GPT-2's loop (merge every occurrence of the
    /// lowest-rank pair, repeat) in O(n log n): a heap of (rank, position) over a linked list of
    /// symbols. A merge of rank r only creates pairs containing id 256 + r, whose ranks exceed
    /// r, so ranks come off the heap in order and each rank's occurrences left to right.
    fn encode_chunk(&self, chunk: &[u8]) -> Vec<u32> {
        let n = chunk.len();
        let mut sym: Vec<u32> = chunk.iter().map(|&b| u32::from(b)).collect();
        if n < 2 || self.merges.is_empty() {
            return sym;
        }
        // next[i] == n and prev[i] == usize::MAX mark the ends.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut heap: BinaryHeap<Reverse<(u32, usize)>> = (0..n - 1)
            .filter_map(|i| {
                self.ranks
                    .get(&(sym[i], sym[i + 1]))
                    .map(|&r| Reverse((r, i)))
            })
            .collect();
        while let Some(Reverse((rank, i))) = heap.pop() {
            let j = next[i];
            if sym[i] == DEAD || j >= n || self.ranks.get(&(sym[i], sym[j])) != Some(&rank) {
                continue; // stale: a neighbour was merged since this entry was pushed
            }
            sym[i] = 256 + rank;
            sym[j] = DEAD;
            next[i] = next[j];
            if next[i] < n {
                prev[next[i]] = i;
                if let Some(&r) = self.ranks.get(&(sym[i], sym[next[i]])) {
                    heap.push(Reverse((r, i)));
                }
            }
            let p = prev[i];
            if p != usize::MAX
                && let Some(&r) = self.ranks.get(&(sym[p], sym[i]))
            {
                heap.push(Reverse((r, p)));
            }
        }
        sym.retain(|&s| s != DEAD);
        sym
    }

    /// The bytes of `ids`, concatenated.
    ///
    /// # Panics
    /// If an id is `>= vocab_size()` (ids come from this tokenizer, so that is a caller bug).
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id));
        }
        out
    }

    /// [`Bpe::decode`] as text, invalid UTF-8 (a sequence cut inside a character) replaced by
    /// U+FFFD.
    ///
    /// # Panics
    /// As [`Bpe::decode`].
    pub fn decode_lossy(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode(ids)).into_owned()
    }

    /// A compact serialisation: the magic `b"CLBPE001"`, the number of merges as a u32, then
    /// the merges as (left, right) u32 pairs, all little endian. The count makes a file cut
    /// anywhere detectably truncated (a cut between pairs would otherwise be a valid, smaller
    /// tokenizer).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 8 * self.merges.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.merges.len() as u32).to_le_bytes());
        for &(left, right) in &self.merges {
            out.extend_from_slice(&left.to_le_bytes());
            out.extend_from_slice(&right.to_le_bytes());
        }
        out
    }

    /// Parses [`Bpe::to_bytes`], refusing anything malformed with [`SimError::Invalid`]: a
    /// wrong magic, a length other than the count announces (truncated or trailing bytes), too
    /// many merges, a merge referring to an id not yet defined or repeating a pair.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bpe, SimError> {
        let invalid = |why: String| SimError::Invalid {
            what: "BPE file",
            why,
        };
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(invalid(format!(
                "does not start with the magic {:?} and a merge count",
                String::from_utf8_lossy(MAGIC)
            )));
        }
        let count = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        if count > Self::MAX_VOCAB - 256 {
            return Err(invalid(format!(
                "{count} merges, at most {} allowed",
                Self::MAX_VOCAB - 256
            )));
        }
        let body = &bytes[12..];
        if body.len() != 8 * count {
            return Err(invalid(format!(
                "{count} merges take {} bytes, found {}",
                8 * count,
                body.len()
            )));
        }
        let word = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let merges = body
            .chunks_exact(8)
            .map(|pair| (word(&pair[..4]), word(&pair[4..])))
            .collect();
        Self::from_merges(merges)
    }
}

/// The pre-tokenisation: `text` cut into non-empty chunks that concatenate back to `text`;
/// merges never cross a chunk boundary.
///
/// A chunk is an optional single leading space (U+0020) followed by a maximal run of letters
/// ([`char::is_alphabetic`]), or of digits ([`char::is_numeric`], not alphabetic), or of other
/// non-whitespace characters. Whitespace otherwise forms chunks of its own, one per maximal run,
/// except that a space directly before a letter/digit/other run belongs to that run: "a  b" is
/// "a", " ", " b"; "a\n b" is "a", "\n", " b"; "a\n\tb" is "a", "\n\t", "b". (GPT-2's rule,
/// with Unicode classes: the space before a word is part of the word, so " the" is one token.)
pub fn chunks(text: &str) -> impl Iterator<Item = &str> {
    Chunks { rest: text }
}

/// Iterator of [`chunks`].
struct Chunks<'a> {
    rest: &'a str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Length in bytes of the maximal run of `s`'s first character's class (0 if `s` is empty).
fn run_len(s: &str) -> usize {
    let Some(first) = s.chars().next() else {
        return 0;
    };
    let c = class(first);
    s.find(|ch: char| class(ch) != c).unwrap_or(s.len())
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest;
        let first = s.chars().next()?;
        let end = if class(first) == Class::Space {
            let run = run_len(s);
            if run == s.len() || !s[..run].ends_with(' ') {
                run // the run ends the text, or no space directly precedes the next run
            } else if run == 1 {
                1 + run_len(&s[1..]) // a lone space: it leads the next run
            } else {
                run - 1 // leave the last space to lead the next run
            }
        } else {
            run_len(s)
        };
        let (chunk, rest) = s.split_at(end);
        self.rest = rest;
        Some(chunk)
    }
}

/// Training state: the distinct chunks as symbol sequences, pair counts weighted by chunk
/// frequency, for each pair the chunks that (may) contain it, and a max-heap of (count, pair)
/// with lazy invalidation.
struct Trainer {
    words: Vec<Vec<u32>>,
    freqs: Vec<i64>,
    counts: FastMap<(u32, u32), i64>,
    /// Increasing chunk indices; a chunk may have lost the pair since (checked on use).
    places: FastMap<(u32, u32), Vec<u32>>,
    /// Max-heap on count, then on the smallest pair. Entries may be stale: a pair's count
    /// only ever decreases after its entry is pushed (a merge creates new adjacencies only
    /// with the new id), so a popped entry whose count is out of date is pushed back with the
    /// current count, and an up-to-date top is the true maximum.
    heap: BinaryHeap<(i64, Reverse<(u32, u32)>)>,
    /// Byte length of every id.
    lens: Vec<usize>,
}

impl Trainer {
    fn new(documents: &[&str]) -> Trainer {
        let counted: FastMap<&str, u64> = documents
            .par_iter()
            .fold(FastMap::default, |mut map: FastMap<&str, u64>, doc| {
                for chunk in chunks(doc) {
                    *map.entry(chunk).or_insert(0) += 1;
                }
                map
            })
            .reduce(FastMap::default, |a, b| {
                let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                for (chunk, n) in small {
                    *big.entry(chunk).or_insert(0) += n;
                }
                big
            });
        let mut distinct: Vec<(&str, u64)> = counted.into_iter().collect();
        distinct.sort_unstable();
        let words: Vec<Vec<u32>> = distinct
            .iter()
            .map(|(chunk, _)| chunk.bytes().map(u32::from).collect())
            .collect();
        let freqs: Vec<i64> = distinct
            .iter()
            .map(|&(_, n)| i64::try_from(n).expect("chunk count fits i64"))
            .collect();
        let mut counts: FastMap<(u32, u32), i64> = FastMap::default();
        let mut places: FastMap<(u32, u32), Vec<u32>> = FastMap::default();
        for (w, word) in words.iter().enumerate() {
            for pair in word.windows(2) {
                let key = (pair[0], pair[1]);
                *counts.entry(key).or_insert(0) += freqs[w];
                push_place(places.entry(key).or_default(), w as u32);
            }
        }
        let heap = counts
            .iter()
            .map(|(&pair, &count)| (count, Reverse(pair)))
            .collect();
        Trainer {
            words,
            freqs,
            counts,
            places,
            heap,
            lens: vec![1; 256],
        }
    }

    /// Runs up to `max_merges` merges and returns them.
    fn run(mut self, max_merges: usize) -> Vec<(u32, u32)> {
        let mut merges = Vec::new();
        let mut total_bytes = 256;
        while merges.len() < max_merges {
            let Some((count, Reverse(pair))) = self.heap.pop() else {
                break;
            };
            let current = self.counts.get(&pair).copied().unwrap_or(0);
            if count != current {
                if current > 0 {
                    self.heap.push((current, Reverse(pair)));
                }
                continue;
            }
            let len = self.lens[pair.0 as usize] + self.lens[pair.1 as usize];
            if count < 2 || total_bytes + len > MAX_TOKEN_BYTES {
                break;
            }
            total_bytes += len;
            self.lens.push(len);
            let id = 256 + merges.len() as u32;
            merges.push(pair);
            self.merge(pair, id);
        }
        merges
    }

    /// Replaces `pair` by `id` in every chunk containing it, updating counts, places and heap.
    fn merge(&mut self, pair: (u32, u32), id: u32) {
        let places = self.places.remove(&pair).unwrap_or_default();
        let mut created: Vec<(u32, u32)> = Vec::new();
        for w in places {
            let word = &mut self.words[w as usize];
            if !word.windows(2).any(|p| (p[0], p[1]) == pair) {
                continue;
            }
            let f = self.freqs[w as usize];
            for p in word.windows(2) {
                *self.counts.get_mut(&(p[0], p[1])).expect("counted pair") -= f;
            }
            merge_pair(word, pair, id);
            for p in word.windows(2) {
                let key = (p[0], p[1]);
                *self.counts.entry(key).or_insert(0) += f;
                if key.0 == id || key.1 == id {
                    push_place(self.places.entry(key).or_default(), w);
                    created.push(key);
                }
            }
        }
        self.counts.remove(&pair);
        created.sort_unstable();
        created.dedup();
        for key in created {
            self.heap.push((self.counts[&key], Reverse(key)));
        }
    }
}

/// Appends chunk `w` to a place list unless it is already last (lists are built in increasing
/// chunk order, so this keeps them free of repeats).
fn push_place(list: &mut Vec<u32>, w: u32) {
    if list.last() != Some(&w) {
        list.push(w);
    }
}

/// Replaces the non-overlapping occurrences of `pair` in `word` by `id`, left to right.
fn merge_pair(word: &mut Vec<u32>, pair: (u32, u32), id: u32) {
    let mut read = 0;
    let mut write = 0;
    while read < word.len() {
        if read + 1 < word.len() && (word[read], word[read + 1]) == pair {
            word[write] = id;
            read += 2;
        } else {
            word[write] = word[read];
            read += 1;
        }
        write += 1;
    }
    word.truncate(write);
}

/// FxHash (rustc's hasher): hashing short keys (id pairs, chunks) dominates training and
/// encoding, and SipHash's flooding resistance buys nothing here. Iteration order of maps is
/// never used where it could change a result.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

const FX_K: u64 = 0xf135_7aea_2e62_a9c5;

impl FxHasher {
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(26) ^ x).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests;
