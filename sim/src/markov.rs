//! Ensembles of the categorical resampling chain (Wright–Fisher; theory:
//! `collapse_analysis::markov`, derivation: `proofs/markov.md`). Each chain keeps only its
//! surviving categories, as distinct (category, count) pairs: a lost category never returns, so
//! extinct categories cost nothing.

use crate::SimError;
use crate::progress::Progress;
use crate::rng::{ChainRng, stream};
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
    let pool = crate::ensemble_pool(config.chains, MAX_CHAINS, config.threads)?;
    Ok(pool.install(|| run(spec, config)))
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

fn run(spec: &MarkovSpec, config: &MarkovConfig) -> MarkovRun {
    let start = Instant::now();
    let m = u64::from(spec.samples);
    // Generation 0: the initial probabilities (nearest doubles), with their tail sums.
    let initial = spec.probabilities(128).to_f64();
    let positive: Vec<(u32, f64)> = initial
        .iter()
        .enumerate()
        .filter(|&(_, &p)| p > 0.0)
        .map(|(i, &p)| (i as u32, p))
        .collect();
    let mut tails = vec![0.0; positive.len()];
    let mut acc = 0.0;
    for (t, &(_, p)) in tails.iter_mut().zip(&positive).rev() {
        acc += p;
        *t = acc;
    }
    let mut chains: Vec<Chain> = (0..config.chains)
        .into_par_iter()
        .map(|c| Chain {
            rng: ChainRng::for_chain(config.seed, stream::MARKOV, c),
            alive: Vec::new(),
            next: Vec::new(),
            absorbed_at: (positive.len() <= 1).then_some(0),
        })
        .collect();
    // Generation 0 is the same for every chain.
    let initial_stats = {
        let (mut sum_sq, mut entropy, mut largest) = (0.0, 0.0, 0.0f64);
        for &(_, p) in &positive {
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
    };
    let mut rows = Vec::with_capacity(spec.generations as usize + 1);
    rows.push(initial_stats);
    let mut progress = Progress::new(u64::from(spec.generations), config.progress);
    let method = config.method;
    let logs = CountLogs::new(m);
    let inputs = RunInputs {
        m,
        method,
        positive: &positive,
        tails: &tails,
        logs: &logs,
    };
    for n in 1..=spec.generations {
        let blocks: Vec<BlockStats> = chains
            .par_chunks_mut(CHUNK)
            // Scratch buffers per rayon split, not per block: their contents never reach the
            // results (every entry is written before it is read).
            .map_init(Scratch::default, |scratch, block| {
                advance_block(block, n, &inputs, scratch)
            })
            .collect();
        let total = blocks
            .iter()
            .fold(BlockStats::default(), |acc, b| acc.merge(b));
        rows.push(MarkovGenerationStats {
            n,
            surviving: summary(&total.acc[0]),
            heterozygosity: summary(&total.acc[1]),
            entropy: summary(&total.acc[2]),
            largest: summary(&total.acc[3]),
            absorbed_fraction: total.absorbed as f64 / config.chains as f64,
        });
        progress.set(u64::from(n));
    }
    progress.finish();
    let absorption_times: Vec<Option<u32>> = chains.iter().map(|c| c.absorbed_at).collect();
    let times: Vec<f64> = absorption_times
        .iter()
        .flatten()
        .map(|&t| f64::from(t))
        .collect();
    let mean_absorption_time =
        (!times.is_empty()).then(|| summary(&Accumulator::from_slice(&times)));
    let mut survivors = vec![0u64; spec.categories as usize];
    for chain in &chains {
        for &(category, _) in &chain.alive {
            survivors[category as usize] += 1;
        }
    }
    MarkovRun {
        spec: spec.clone(),
        config: config.clone(),
        rows,
        absorption_times,
        mean_absorption_time,
        final_survival: survivors
            .iter()
            .map(|&s| s as f64 / config.chains as f64)
            .collect(),
        seconds: start.elapsed().as_secs_f64(),
    }
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
