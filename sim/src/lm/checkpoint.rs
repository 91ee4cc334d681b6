//! A language-model seed's checkpoint (framing in `crate::checkpoint`), rewritten after every
//! generation.
//!
//! Payload: completed generations u64, then per generation its metrics; then the synthetic
//! sets the next generations train on (count u64, then per set its blocks: count u64, per block
//! its tokens as u64 count + u32 each).

use super::{GenerationMetrics, RANK_BINS};
pub use crate::checkpoint::CheckpointError;
use crate::checkpoint::{Format, Reader, Writer};
use std::path::Path;

const FORMAT: Format = Format {
    magic: b"CLLMCKP1",
    version: 1,
    what: "a language-model checkpoint",
};

/// What a seed has done: its finished generations and the synthetic sets kept for the next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeedState {
    pub generations: Vec<GenerationMetrics>,
    pub sets: Vec<Vec<Vec<u32>>>,
}

fn encode(w: &mut Writer, state: &SeedState) {
    w.u64(state.generations.len() as u64);
    for m in &state.generations {
        w.u64(m.generation as u64);
        w.f64(m.test_perplexity);
        w.f64s(&m.synthetic_log10_perplexity);
        w.f64(m.synthetic_perplexity_median);
        w.f64(m.synthetic_perplexity_p95);
        w.f64s(&m.distinct);
        w.f64(m.seq_rep_4);
        w.u64(m.surviving_types as u64);
        w.f64s(&m.survival_by_rank);
        w.bytes(m.sample_prompt.as_bytes());
        w.bytes(m.sample_continuation.as_bytes());
    }
    w.u64(state.sets.len() as u64);
    for set in &state.sets {
        w.u64(set.len() as u64);
        for block in set {
            w.u64(block.len() as u64);
            for &t in block {
                w.0.extend_from_slice(&t.to_le_bytes());
            }
        }
    }
}

fn decode(r: &mut Reader) -> Result<SeedState, String> {
    let text = |r: &mut Reader| -> Result<String, String> {
        String::from_utf8(r.bytes()?.to_vec()).map_err(|_| "a sample is not UTF-8".to_string())
    };
    let count = r.len(8)?;
    let mut generations = Vec::with_capacity(count);
    for _ in 0..count {
        let generation = r.u64()? as usize;
        let test_perplexity = r.f64()?;
        let synthetic_log10_perplexity = r.f64s()?;
        let synthetic_perplexity_median = r.f64()?;
        let synthetic_perplexity_p95 = r.f64()?;
        let distinct: [f64; 4] = r
            .f64s()?
            .try_into()
            .map_err(|_| "distinct-n needs 4 values".to_string())?;
        let seq_rep_4 = r.f64()?;
        let surviving_types = r.u64()? as usize;
        let survival_by_rank = r.f64s()?;
        if survival_by_rank.len() != RANK_BINS {
            return Err(format!("{} rank bins", survival_by_rank.len()));
        }
        generations.push(GenerationMetrics {
            generation,
            test_perplexity,
            synthetic_log10_perplexity,
            synthetic_perplexity_median,
            synthetic_perplexity_p95,
            distinct,
            seq_rep_4,
            surviving_types,
            survival_by_rank,
            sample_prompt: text(r)?,
            sample_continuation: text(r)?,
        });
    }
    let sets = (0..r.len(8)?)
        .map(|_| {
            (0..r.len(8)?)
                .map(|_| {
                    let n = r.len(4)?;
                    Ok(r.take(4 * n)?
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                        .collect())
                })
                .collect::<Result<Vec<Vec<u32>>, String>>()
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SeedState { generations, sets })
}

/// Writes `state` atomically.
pub(crate) fn save(
    path: &Path,
    identity: &str,
    seed: u64,
    state: &SeedState,
) -> Result<(), CheckpointError> {
    crate::checkpoint::save(path, FORMAT, identity, seed, |w| encode(w, state))
}

/// The saved state of this run's seed, if any (see `crate::checkpoint::load`).
pub(crate) fn load(
    path: &Path,
    identity: &str,
    seed: u64,
    resume: bool,
) -> Result<Option<SeedState>, CheckpointError> {
    crate::checkpoint::load(path, FORMAT, identity, seed, resume, decode)
}
