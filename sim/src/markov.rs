//! Ensembles of the categorical resampling chain (Wright–Fisher; theory:
//! `collapse_analysis::markov`, derivation: `proofs/markov.md`). Each chain keeps only its
//! surviving categories, as distinct (category, count) pairs: a lost category never returns, so
//! extinct categories cost nothing.

use crate::SimError;
use crate::progress::Progress;
use crate::rng::{ChainRng, stream};
use crate::shard::{self, Assemble, ChainRange, Layout, PieceSink, Words};
use crate::stats::{Accumulator, Summary};
use collapse_analysis::markov::theory::MarkovSpec;
use rayon::prelude::*;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkovMethod {
    /// The multinomial by conditional binomials over the surviving categories.
    Binomial,
    /// M category labels drawn from an alias table, then counted (the literal path).
    Labels,
}

impl MarkovMethod {
    pub fn parse(text: &str) -> Result<MarkovMethod, SimError> {
        match text {
            "binomial" => Ok(MarkovMethod::Binomial),
            "labels" => Ok(MarkovMethod::Labels),
            other => Err(SimError::Invalid {
                what: "method",
                why: format!("'{other}' (expected binomial or labels)"),
            }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            MarkovMethod::Binomial => "binomial",
            MarkovMethod::Labels => "labels",
        }
    }
}

/// Largest ensemble accepted.
pub const MAX_CHAINS: u64 = 10_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct MarkovConfig {
    pub chains: u64,
    pub seed: u64,
    pub method: MarkovMethod,
    /// Worker threads (None: rayon's default). Results do not depend on it.
    pub threads: Option<usize>,
    /// Show a progress bar on a terminal for runs longer than a second.
    pub progress: bool,
}

impl MarkovConfig {
    pub fn new(chains: u64, seed: u64, method: MarkovMethod) -> MarkovConfig {
        MarkovConfig {
            chains,
            seed,
            method,
            threads: None,
            progress: false,
        }
    }
}

/// Statistics over chains at generation n.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovGenerationStats {
    pub n: u32,
    /// Number of categories with positive probability.
    pub surviving: Summary,
    /// 1 - sum p_i^2.
    pub heterozygosity: Summary,
    /// -sum p_i ln p_i (nats).
    pub entropy: Summary,
    /// max p_i.
    pub largest: Summary,
    /// Fraction of chains that are a point mass.
    pub absorbed_fraction: f64,
}

#[derive(Debug, Clone)]
pub struct MarkovRun {
    pub spec: MarkovSpec,
    pub config: MarkovConfig,
    pub rows: Vec<MarkovGenerationStats>,
    /// Absorption time of each chain, None if not absorbed by generation N.
    pub absorption_times: Vec<Option<u32>>,
    /// Mean and s.e. of the absorption time over the chains absorbed by N (None if none).
    pub mean_absorption_time: Option<Summary>,
    /// Per category: the fraction of chains in which it survives at generation N.
    pub final_survival: Vec<f64>,
    pub seconds: f64,
}

/// A binomial(n, p) variate (`crate::binomial`: inversion below mean 10, else BTRD).
#[inline]
pub fn binomial(rng: &mut ChainRng, n: u64, p: f64) -> u64 {
    crate::binomial::sample(rng, n, p)
}

/// Surviving categories of a chain: distinct (category, count) pairs, counts > 0.
type Alive = Vec<(u32, u32)>;

/// One Multinomial(M, w / sum w) draw over `weights` = (category, w > 0) pairs, by
/// conditional binomials; the categories with positive counts go to `out` in order.
pub fn multinomial(rng: &mut ChainRng, m: u64, weights: &[(u32, f64)], out: &mut Vec<(u32, u32)>) {
    let mut tails = vec![0.0; weights.len()];
    let mut acc = 0.0;
    for (t, &(_, w)) in tails.iter_mut().zip(weights).rev() {
        acc += w;
        *t = acc;
    }
    conditional_binomials(
        rng,
        m,
        weights.iter().zip(&tails).map(|(&(c, w), &t)| (c, w, t)),
        out,
    );
}

struct Chain {
    rng: ChainRng,
    alive: Alive,
    next: Alive,
    absorbed_at: Option<u32>,
}

/// One multinomial(M, weights) draw by conditional binomials: category i gets
/// Binomial(remaining draws, w_i / (w_i + ... + w_last)); the last gets the rest. `tail[i]` is
/// w_i + ... + w_last. Zero counts are dropped.
#[inline(always)]
fn conditional_binomials(
    rng: &mut ChainRng,
    m: u64,
    categories: impl Iterator<Item = (u32, f64, f64)>,
    out: &mut Alive,
) {
    out.clear();
    let mut remaining = m;
    let mut peek = categories.peekable();
    while let Some((category, weight, tail)) = peek.next() {
        if remaining == 0 {
            break;
        }
        let count = if peek.peek().is_none() {
            remaining
        } else {
            binomial(rng, remaining, (weight / tail).min(1.0))
        };
        if count > 0 {
            out.push((category, count as u32));
            remaining -= count;
        }
    }
}

/// Vose's alias table over `weights` (positive): per column, the probability of keeping it and
/// its alias.
fn alias_table(weights: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let n = weights.len();
    let total: f64 = weights.iter().sum();
    let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
    let mut alias: Vec<u32> = (0..n as u32).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
    while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
        alias[s] = l as u32;
        prob[l] -= 1.0 - prob[s];
        if prob[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    for i in large.into_iter().chain(small) {
        prob[i] = 1.0;
    }
    (prob, alias)
}

/// M labels from the alias table of `weights`, counted per category.
fn labels(rng: &mut ChainRng, m: u64, categories: &[u32], weights: &[f64], out: &mut Alive) {
    let (prob, alias) = alias_table(weights);
    let n = categories.len();
    let mut counts = vec![0u32; n];
    for _ in 0..m {
        let word = rng.next_u64();
        // Column from the high 32 bits (n <= 2^32), keep-or-alias from the low 32.
        let column = (((word >> 32) * n as u64) >> 32) as usize;
        let u = (word & 0xFFFF_FFFF) as f64 * (1.0 / 4_294_967_296.0);
        let pick = if u < prob[column] {
            column
        } else {
            alias[column] as usize
        };
        counts[pick] += 1;
    }
    out.clear();
    out.extend(
        categories
            .iter()
            .zip(counts)
            .filter(|&(_, c)| c > 0)
            .map(|(&category, c)| (category, c)),
    );
}

/// Chains per parallel block (fixed: block boundaries never depend on the thread count).
const CHUNK: usize = 64;

/// Runs `config.chains` chains of `spec` for N generations.
pub fn simulate(spec: &MarkovSpec, config: &MarkovConfig) -> Result<MarkovRun, SimError> {
    let start = Instant::now();
    let pool = crate::ensemble_pool(config.chains, MAX_CHAINS, config.threads)?;
    // `simulate_piece` without its second computation of the initial law (seconds at large K:
    // exact arithmetic per category), which the chains and row 0 share here.
    let positive = initial_positive(spec);
    let mut run = shard::run_whole(
        config.chains,
        Assembler::with_initial(spec, config, &positive),
        |owned, sink| {
            crate::check_piece(owned, config.chains)?;
            pool.install(|| run(spec, config, &positive, owned, sink))
        },
    )?;
    run.seconds = start.elapsed().as_secs_f64();
    Ok(run)
}

/// How the ensemble reduces (`crate::shard`): blocks of `CHUNK` chains, each block's four
/// accumulators and absorbed count; no per-chain values (the rows are all moments).
pub const LAYOUT: Layout = Layout {
    block: CHUNK as u64,
    block_words: 4 * Accumulator::WORDS + 1,
    chain_values: 0,
};

/// End word of a chain not absorbed by generation N.
const NOT_ABSORBED: u64 = u64::MAX;

/// Runs the chains of `owned` (and the rest of the blocks they touch) into `sink`; returns the
/// end words: per owned chain its absorption time (`NOT_ABSORBED` if none), then per category
/// the number of owned chains in which it survives at N. Merged pieces give the bits of
/// `simulate`.
pub fn simulate_piece(
    spec: &MarkovSpec,
    config: &MarkovConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let pool = crate::ensemble_pool(config.chains, MAX_CHAINS, config.threads)?;
    crate::check_piece(owned, config.chains)?;
    let positive = initial_positive(spec);
    pool.install(|| run(spec, config, &positive, owned, sink))
}

/// Builds a `MarkovRun` from the partials of every chain (`crate::shard`).
pub struct Assembler {
    spec: MarkovSpec,
    config: MarkovConfig,
    /// Row 0: the initial law, the same for every chain (the pieces send no statistics for it).
    initial: MarkovGenerationStats,
    rows: Vec<MarkovGenerationStats>,
}

impl Assembler {
    /// An assembler for the run of `config` on `spec` (it computes the initial law).
    pub fn new(spec: &MarkovSpec, config: &MarkovConfig) -> Assembler {
        Assembler::with_initial(spec, config, &initial_positive(spec))
    }

    /// An assembler given the initial law's positive probabilities (`initial_positive`).
    fn with_initial(
        spec: &MarkovSpec,
        config: &MarkovConfig,
        positive: &[(u32, f64)],
    ) -> Assembler {
        Assembler {
            spec: spec.clone(),
            config: config.clone(),
            initial: initial_row(positive),
            rows: Vec::with_capacity(spec.generations as usize + 1),
        }
    }
}

impl Assemble for Assembler {
    type Run = MarkovRun;

    fn generation(&mut self, n: u64, blocks: &[u64], _values: &[&[f64]]) {
        // Generation 0's blocks are empty statistics: its row is the initial law.
        if n == 0 {
            self.rows.push(self.initial.clone());
            return;
        }
        let mut words = Words::new(blocks);
        let mut stats = Vec::with_capacity(blocks.len() / LAYOUT.block_words);
        while words.remaining() > 0 {
            stats.push(BlockStats::from_words(&mut words));
        }
        let n = u32::try_from(n).expect("N fits in u32 (MarkovSpec)");
        self.rows
            .push(generation_row(n, &stats, self.config.chains));
    }

    /// Absorption times concatenated, survival counts summed.
    fn join_ends(&self, ends: &[&[u64]]) -> Vec<u64> {
        let k = self.spec.categories as usize;
        let mut survivors = vec![0u64; k];
        let mut words = Vec::new();
        for e in ends {
            let (times, counts) = e.split_at(e.len() - k);
            words.extend_from_slice(times);
            for (s, &c) in survivors.iter_mut().zip(counts) {
                *s += c;
            }
        }
        words.extend(survivors);
        words
    }

    fn finish(self, ends: &[&[u64]]) -> MarkovRun {
        let chains = self.config.chains;
        let k = self.spec.categories as usize;
        let mut absorption_times = Vec::with_capacity(chains as usize);
        let mut survivors = vec![0u64; k];
        for e in ends {
            let (times, counts) = e.split_at(e.len() - k);
            absorption_times.extend(
                times
                    .iter()
                    .map(|&t| (t != NOT_ABSORBED).then_some(t as u32)),
            );
            // Integer counts: the same sum in any order.
            for (s, &c) in survivors.iter_mut().zip(counts) {
                *s += c;
            }
        }
        let times: Vec<f64> = absorption_times
            .iter()
            .flatten()
            .map(|&t| f64::from(t))
            .collect();
        let mean_absorption_time =
            (!times.is_empty()).then(|| summary(&Accumulator::from_slice(&times)));
        MarkovRun {
            spec: self.spec,
            config: self.config,
            rows: self.rows,
            absorption_times,
            mean_absorption_time,
            final_survival: survivors
                .iter()
                .map(|&s| s as f64 / chains as f64)
                .collect(),
            seconds: 0.0,
        }
    }
}

/// Hands generation n of a span to the sink: its blocks as words.
fn emit(sink: &mut dyn PieceSink, n: u64, blocks: &[BlockStats]) {
    let mut words = Vec::with_capacity(blocks.len() * LAYOUT.block_words);
    for b in blocks {
        b.push_words(&mut words);
    }
    sink.generation(n, &words, &[]);
}

/// Per chain its absorption time (`NOT_ABSORBED` if none), then per category of the `k` the
/// number of these chains in which it survives.
fn end_words(chains: &[Chain], k: u32) -> Vec<u64> {
    let mut words: Vec<u64> = chains
        .iter()
        .map(|c| c.absorbed_at.map_or(NOT_ABSORBED, u64::from))
        .collect();
    let mut survivors = vec![0u64; k as usize];
    for chain in chains {
        for &(category, _) in &chain.alive {
            survivors[category as usize] += 1;
        }
    }
    words.extend(survivors);
    words
}

/// Per-chain statistics of a state: surviving, heterozygosity, entropy, largest probability.
#[inline(always)]
fn chain_stats(alive: &Alive, m: f64, logs: &CountLogs) -> [f64; 4] {
    let (mut sum_sq, mut entropy, mut largest) = (0u64, 0.0f64, 0u32);
    for &(_, c) in alive {
        sum_sq += u64::from(c) * u64::from(c);
        let p = f64::from(c) / m;
        entropy -= p * (logs.ln(c) - logs.ln_m);
        largest = largest.max(c);
    }
    [
        alive.len() as f64,
        1.0 - sum_sq as f64 / (m * m),
        entropy,
        f64::from(largest) / m,
    ]
}

/// ln c for the counts c = 0..=min(M, 2^20) (a table: the entropy needs one per surviving
/// category per generation), and ln M.
struct CountLogs {
    table: Vec<f64>,
    ln_m: f64,
}

impl CountLogs {
    fn new(m: u64) -> CountLogs {
        let size = m.min(1 << 20) as usize + 1;
        CountLogs {
            table: (0..size).map(|c| crate::vmath::ln(c as f64)).collect(),
            ln_m: crate::vmath::ln(m as f64),
        }
    }

    #[inline(always)]
    fn ln(&self, c: u32) -> f64 {
        match self.table.get(c as usize) {
            Some(&x) => x,
            None => crate::vmath::ln(f64::from(c)),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct BlockStats {
    acc: [Accumulator; 4],
    absorbed: u64,
}

impl BlockStats {
    fn push_words(&self, out: &mut Vec<u64>) {
        for a in &self.acc {
            a.push_words(out);
        }
        out.push(self.absorbed);
    }

    fn from_words(words: &mut Words<'_>) -> BlockStats {
        BlockStats {
            acc: std::array::from_fn(|_| Accumulator::from_words(words)),
            absorbed: words.u64(),
        }
    }

    fn merge(&self, other: &BlockStats) -> BlockStats {
        BlockStats {
            acc: std::array::from_fn(|i| self.acc[i].merge(&other.acc[i])),
            absorbed: self.absorbed + other.absorbed,
        }
    }
}

fn summary(acc: &Accumulator) -> Summary {
    let m = acc.moments();
    Summary {
        mean: m.mean,
        stderr: m.stderr,
    }
}

/// Generation 0's categories of positive probability (nearest doubles), in category order.
fn initial_positive(spec: &MarkovSpec) -> Vec<(u32, f64)> {
    spec.probabilities(128)
        .to_f64()
        .iter()
        .enumerate()
        .filter(|&(_, &p)| p > 0.0)
        .map(|(i, &p)| (i as u32, p))
        .collect()
}

/// Generation 0's row: the initial law, the same for every chain (exact, s.e. 0).
fn initial_row(positive: &[(u32, f64)]) -> MarkovGenerationStats {
    let (mut sum_sq, mut entropy, mut largest) = (0.0, 0.0, 0.0f64);
    for &(_, p) in positive {
        sum_sq += p * p;
        entropy -= p * p.ln();
        largest = largest.max(p);
    }
    let one = |x: f64| Summary {
        mean: x,
        stderr: 0.0,
    };
    MarkovGenerationStats {
        n: 0,
        surviving: one(positive.len() as f64),
        heterozygosity: one(1.0 - sum_sq),
        entropy: one(entropy),
        largest: one(largest),
        absorbed_fraction: if positive.len() <= 1 { 1.0 } else { 0.0 },
    }
}

/// The row of generation n >= 1 from its blocks' statistics, merged in block order (the same
/// bits for any thread count or split into pieces).
fn generation_row(n: u32, blocks: &[BlockStats], chains: u64) -> MarkovGenerationStats {
    let total = blocks
        .iter()
        .fold(BlockStats::default(), |acc, b| acc.merge(b));
    MarkovGenerationStats {
        n,
        surviving: summary(&total.acc[0]),
        heterozygosity: summary(&total.acc[1]),
        entropy: summary(&total.acc[2]),
        largest: summary(&total.acc[3]),
        absorbed_fraction: total.absorbed as f64 / chains as f64,
    }
}

/// Runs the span of `owned` from the initial law's positive probabilities into `sink`; returns
/// the owned chains' end words (`simulate_piece`).
fn run(
    spec: &MarkovSpec,
    config: &MarkovConfig,
    positive: &[(u32, f64)],
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let span = LAYOUT.span(owned, config.chains);
    let offset = (owned.start - span.start) as usize;
    let m = u64::from(spec.samples);
    // Generation 0's tail sums of the initial probabilities.
    let mut tails = vec![0.0; positive.len()];
    let mut acc = 0.0;
    for (t, &(_, p)) in tails.iter_mut().zip(positive).rev() {
        acc += p;
        *t = acc;
    }
    // Chain c draws from stream c whatever piece runs it.
    let mut chains: Vec<Chain> = (span.start..span.end)
        .into_par_iter()
        .map(|c| Chain {
            rng: ChainRng::for_chain(config.seed, stream::MARKOV, c),
            alive: Vec::new(),
            next: Vec::new(),
            absorbed_at: (positive.len() <= 1).then_some(0),
        })
        .collect();
    // Generation 0's row is the initial law (`initial_row`); its blocks are empty statistics,
    // so that every generation has the same number of words.
    let empty = vec![BlockStats::default(); chains.len().div_ceil(CHUNK)];
    emit(sink, 0, &empty);
    let mut progress = Progress::new(u64::from(spec.generations), config.progress);
    let method = config.method;
    let logs = CountLogs::new(m);
    let inputs = RunInputs {
        m,
        method,
        positive,
        tails: &tails,
        logs: &logs,
    };
    for n in 1..=spec.generations {
        if sink.stopped() {
            return Err(SimError::Interrupted);
        }
        let blocks: Vec<BlockStats> = chains
            .par_chunks_mut(CHUNK)
            // Scratch buffers per rayon split, not per block: their contents never reach the
            // results (every entry is written before it is read).
            .map_init(Scratch::default, |scratch, block| {
                advance_block(block, n, &inputs, scratch)
            })
            .collect();
        emit(sink, u64::from(n), &blocks);
        progress.set(u64::from(n));
    }
    progress.finish();
    Ok(end_words(
        &chains[offset..offset + owned.len() as usize],
        spec.categories,
    ))
}

/// What every block needs about the run: M, the sampler, generation 0's positive
/// probabilities with their tail sums, and the table of ln c.
struct RunInputs<'a> {
    m: u64,
    method: MarkovMethod,
    positive: &'a [(u32, f64)],
    tails: &'a [f64],
    logs: &'a CountLogs,
}

/// Advances a block of chains to generation `n` and returns its statistics. On x86-64 with
/// AVX2 and FMA the same code runs compiled for them: `mul_add` in `vmath` is then one
/// instruction instead of a library call (the same bits either way).
fn advance_block(
    block: &mut [Chain],
    n: u32,
    run: &RunInputs,
    scratch: &mut Scratch,
) -> BlockStats {
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::avx2::available() {
        #[target_feature(enable = "avx2,fma")]
        fn with_fma(
            block: &mut [Chain],
            n: u32,
            run: &RunInputs,
            scratch: &mut Scratch,
        ) -> BlockStats {
            advance_block_body(block, n, run, scratch)
        }
        // SAFETY: the CPU has AVX2 and FMA (checked).
        return unsafe { with_fma(block, n, run, scratch) };
    }
    advance_block_body(block, n, run, scratch)
}

#[inline(always)]
fn advance_block_body(
    block: &mut [Chain],
    n: u32,
    run: &RunInputs,
    scratch: &mut Scratch,
) -> BlockStats {
    let RunInputs {
        m,
        method,
        positive,
        tails,
        logs,
    } = *run;
    let mf = m as f64;
    let mut values = [[0.0f64; CHUNK]; 4];
    let mut absorbed = 0;
    for (i, chain) in block.iter_mut().enumerate() {
        let Chain {
            rng,
            alive,
            next,
            absorbed_at,
        } = chain;
        // A point mass stays one: absorbed chains draw nothing.
        if n == 1 {
            step_from_initial(rng, m, positive, tails, method, next);
            std::mem::swap(alive, next);
        } else if alive.len() > 1 {
            step(rng, m, alive, method, scratch, next);
            std::mem::swap(alive, next);
        }
        if alive.len() <= 1 {
            absorbed += 1;
            absorbed_at.get_or_insert(n);
        }
        for (v, x) in values.iter_mut().zip(chain_stats(alive, mf, logs)) {
            v[i] = x;
        }
    }
    let len = block.len();
    BlockStats {
        acc: std::array::from_fn(|q| Accumulator::from_slice(&values[q][..len])),
        absorbed,
    }
}

/// Generation 1 from the initial probabilities.
#[inline(always)]
fn step_from_initial(
    rng: &mut ChainRng,
    m: u64,
    positive: &[(u32, f64)],
    tails: &[f64],
    method: MarkovMethod,
    out: &mut Alive,
) {
    match method {
        MarkovMethod::Binomial => conditional_binomials(
            rng,
            m,
            positive.iter().zip(tails).map(|(&(c, p), &t)| (c, p, t)),
            out,
        ),
        MarkovMethod::Labels => {
            let categories: Vec<u32> = positive.iter().map(|&(c, _)| c).collect();
            let weights: Vec<f64> = positive.iter().map(|&(_, p)| p).collect();
            labels(rng, m, &categories, &weights, out);
        }
    }
}

/// Counts below this are resampled as one group by parent picks (`step_binomial`): a binomial
/// draw costs about as much as 25 picks (measured: 16, 24 and 32 tried on the bench ensemble).
const SMALL_COUNT: u32 = 24;

/// Generation n+1 from the counts of generation n.
#[inline(always)]
fn step(
    rng: &mut ChainRng,
    m: u64,
    alive: &Alive,
    method: MarkovMethod,
    scratch: &mut Scratch,
    out: &mut Alive,
) {
    match method {
        MarkovMethod::Binomial => step_binomial(rng, m, alive, SMALL_COUNT, scratch, out),
        MarkovMethod::Labels => {
            let categories: Vec<u32> = alive.iter().map(|&(c, _)| c).collect();
            let weights: Vec<f64> = alive.iter().map(|&(_, n)| f64::from(n)).collect();
            labels(rng, m, &categories, &weights, out);
        }
    }
}

/// Buffers of `step_binomial`'s small group, reused across chains.
#[derive(Default)]
struct Scratch {
    small: Alive,
    parents: Vec<u32>,
    offspring: Vec<u32>,
}

/// Multinomial(M, count / M) from counts summing to M, exactly. Categories with a count of at
/// least `small_count` draw by conditional binomials, count / (count + later counts) being a
/// ratio of integers rounded once; the categories below it form one group that comes last and
/// so takes the remaining draws, which are then shared within the group by uniform picks among
/// its members' c_1 + ... + c_j individuals (each draw copies a uniformly chosen parent: the
/// Wright–Fisher model's own description). Output: the large categories in input order, then
/// the small ones in input order, zero counts dropped.
#[inline(always)]
fn step_binomial(
    rng: &mut ChainRng,
    m: u64,
    alive: &Alive,
    small_count: u32,
    scratch: &mut Scratch,
    out: &mut Alive,
) {
    out.clear();
    scratch.small.clear();
    let (mut remaining, mut tail) = (m, m);
    for &(category, count) in alive {
        if count < small_count {
            scratch.small.push((category, count));
            continue;
        }
        if remaining == 0 {
            break;
        }
        // The last large category of a state without small ones has count = tail: p = 1.
        // tail <= M < 2^32: the u32 conversion is exact and cheaper than u64's.
        let drawn = binomial(
            rng,
            remaining,
            (f64::from(count) / f64::from(tail as u32)).min(1.0),
        );
        tail -= u64::from(count);
        if drawn > 0 {
            out.push((category, drawn as u32));
            remaining -= drawn;
        }
    }
    // What is left belongs to the small group (tail is now its total).
    match scratch.small.as_slice() {
        _ if remaining == 0 => {}
        [] => unreachable!("counts sum to M"),
        &[(category, _)] => out.push((category, remaining as u32)),
        small => {
            let Scratch {
                parents, offspring, ..
            } = scratch;
            // Every entry is overwritten below.
            parents.resize(tail as usize, 0);
            let mut filled = 0;
            for (member, &(_, count)) in small.iter().enumerate() {
                parents[filled..filled + count as usize].fill(member as u32);
                filled += count as usize;
            }
            let group = tail as u32;
            // Three picks per 64-bit word while the group fits in 21 bits, else two.
            let per_word = if group <= 1 << 21 { 3 } else { 2 };
            offspring.clear();
            offspring.resize(per_word * small.len(), 0);
            if per_word == 3 {
                share_by_picks::<21>(rng, &parents[..group as usize], offspring, remaining);
            } else {
                share_by_picks::<32>(rng, &parents[..group as usize], offspring, remaining);
            }
            // Each member's offspring: the sum of its tallies.
            let (first, rest) = offspring.split_at_mut(small.len());
            for tally in rest.chunks_exact(small.len()) {
                for (total, t) in first.iter_mut().zip(tally) {
                    *total += t;
                }
            }
            out.extend(
                small
                    .iter()
                    .zip(offspring.iter())
                    .filter(|&(_, &c)| c > 0)
                    .map(|(&(category, _), &c)| (category, c)),
            );
        }
    }
}

/// `picks` uniform draws from `parents` (a list of member indices, one entry per individual),
/// tallied per member. Each 64-bit word gives 64 / BITS chunks of BITS bits, the chunk at
/// position j tallied in `tallies[j * members..]` (members = tallies.len() / (64 / BITS)), so
/// that consecutive picks of the same parent do not wait on each other's increment. Lemire:
/// a chunk x maps to (x * group) >> BITS, rejected if (x * group) mod 2^BITS is below
/// 2^BITS mod group (probability below group / 2^BITS), which leaves each parent exactly
/// 2^BITS div group chunks: exactly uniform. Needs group = parents.len() <= 2^BITS.
#[inline(always)]
fn share_by_picks<const BITS: u32>(
    rng: &mut ChainRng,
    parents: &[u32],
    tallies: &mut [u32],
    mut picks: u64,
) {
    let per_word = (64 / BITS) as usize;
    let members = tallies.len() / per_word;
    let group = parents.len() as u64;
    let mask = (1u64 << BITS) - 1;
    debug_assert!(group >= 1 && group <= 1 << BITS);
    debug_assert!(parents.iter().all(|&p| (p as usize) < members));
    let reject_below = ((1u64 << BITS) - group) % group;
    while picks > 0 {
        let word = rng.next_u64();
        for j in 0..per_word {
            let product = ((word >> (j as u32 * BITS)) & mask) * group;
            if product & mask >= reject_below {
                // SAFETY: product >> BITS < group = parents.len(); every entry of `parents` is
                // below `members`, and j < per_word, so the tally index is below tallies.len().
                // Checked indexing here costs a tenth of the step's instructions.
                unsafe {
                    let parent = *parents.get_unchecked((product >> BITS) as usize) as usize;
                    *tallies.get_unchecked_mut(j * members + parent) += 1;
                }
                picks -= 1;
                if picks == 0 {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
