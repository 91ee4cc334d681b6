//! A language-model run's checkpoints (framing in `crate::checkpoint`).
//!
//! Seed file (`seed-N.ckpt`), rewritten after every generation, after a transformer's
//! generation 0 is trained, and within a generation at most every `Control::checkpoint_every`.
//! Payload: completed generations u64, then per generation its metrics; the synthetic sets the
//! next generations train on (count u64, then per set its blocks as u32 lists); a flag u8 and
//! (1) generation 0's parameters; a flag u8 and the generation in progress: (1) training: its
//! index, [`SavedTraining`]; (2) continuing the prompts: its index, a flag and (1) its
//! parameters, the continuations so far.
//!
//! Base file (`base.ckpt`, a transformer's): a flag u8 and (0) the trained base's parameters,
//! or (1) its training so far. It is a function of the settings in its identity, so a run
//! (or a shard) picks it up with or without `--resume`.

use super::transformer::{TrainingRun, Transformer};
use super::{GenerationMetrics, RANK_BINS};
use crate::SimError;
pub use crate::checkpoint::CheckpointError;
use crate::checkpoint::{Format, Reader, Writer};
use crate::nn::Moments;
use std::path::{Path, PathBuf};

const FORMAT: Format = Format {
    magic: b"CLLMCKP1",
    version: 2,
    what: "a language-model checkpoint",
};

const BASE_FORMAT: Format = Format {
    magic: b"CLLMBAS1",
    version: 1,
    what: "a language-model base checkpoint",
};

/// What a seed has done: its finished generations, the synthetic sets kept for the next and a
/// transformer's generation 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SeedState {
    pub generations: Vec<GenerationMetrics>,
    pub sets: Vec<Vec<Vec<u32>>>,
    pub zero: Option<Vec<f32>>,
}

/// A training run paused between steps: steps done, the model's parameters, the optimizer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SavedTraining {
    pub step: usize,
    pub params: Vec<f32>,
    pub optimizer: [(u64, Vec<Moments>); 2],
}

impl SavedTraining {
    pub fn of(model: &mut Transformer, run: &TrainingRun) -> SavedTraining {
        SavedTraining {
            step: run.step,
            params: model.flat_parameters(),
            optimizer: run.optimizer.state(),
        }
    }

    /// Puts the saved state into `model` and `run` (a new run of the same settings).
    pub fn restore(self, model: &mut Transformer, run: &mut TrainingRun) -> Result<(), SimError> {
        model.set_flat_parameters(&self.params)?;
        run.step = self.step;
        run.optimizer.restore(self.optimizer);
        Ok(())
    }
}

/// The generation in progress.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Partial {
    Training {
        generation: usize,
        saved: SavedTraining,
    },
    /// Trained (a transformer's parameters; an n-gram is fitted again), continuing prompts.
    Continuing {
        generation: usize,
        params: Option<Vec<f32>>,
        blocks: Vec<Vec<u32>>,
    },
}

impl Partial {
    pub fn generation(&self) -> usize {
        match self {
            Partial::Training { generation, .. } | Partial::Continuing { generation, .. } => {
                *generation
            }
        }
    }
}

/// A transformer base, trained or in training.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BaseState {
    Trained(Vec<f32>),
    Training(SavedTraining),
}

fn encode_training(w: &mut Writer, t: &SavedTraining) {
    w.u64(t.step as u64);
    w.f32s(&t.params);
    for (steps, moments) in &t.optimizer {
        w.adam(*steps, moments);
    }
}

fn decode_training(r: &mut Reader) -> Result<SavedTraining, String> {
    Ok(SavedTraining {
        step: r.u64()? as usize,
        params: r.f32s()?,
        optimizer: [r.adam()?, r.adam()?],
    })
}

fn encode(w: &mut Writer, state: &SeedState, partial: Option<&Partial>) {
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
        encode_blocks(w, set);
    }
    match &state.zero {
        None => w.0.push(0),
        Some(params) => {
            w.0.push(1);
            w.f32s(params);
        }
    }
    match partial {
        None => w.0.push(0),
        Some(Partial::Training { generation, saved }) => {
            w.0.push(1);
            w.u64(*generation as u64);
            encode_training(w, saved);
        }
        Some(Partial::Continuing {
            generation,
            params,
            blocks,
        }) => {
            w.0.push(2);
            w.u64(*generation as u64);
            match params {
                None => w.0.push(0),
                Some(p) => {
                    w.0.push(1);
                    w.f32s(p);
                }
            }
            encode_blocks(w, blocks);
        }
    }
}

fn encode_blocks(w: &mut Writer, blocks: &[Vec<u32>]) {
    w.u64(blocks.len() as u64);
    for block in blocks {
        w.u32s(block);
    }
}

fn decode_blocks(r: &mut Reader) -> Result<Vec<Vec<u32>>, String> {
    (0..r.len(8)?).map(|_| r.u32s()).collect()
}

fn flag(r: &mut Reader) -> Result<u8, String> {
    Ok(r.take(1)?[0])
}

fn decode(r: &mut Reader) -> Result<(SeedState, Option<Partial>), String> {
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
        .map(|_| decode_blocks(r))
        .collect::<Result<Vec<_>, String>>()?;
    let zero = match flag(r)? {
        0 => None,
        1 => Some(r.f32s()?),
        other => return Err(format!("bad flag {other}")),
    };
    let partial = match flag(r)? {
        0 => None,
        1 => Some(Partial::Training {
            generation: r.u64()? as usize,
            saved: decode_training(r)?,
        }),
        2 => {
            let generation = r.u64()? as usize;
            let params = match flag(r)? {
                0 => None,
                1 => Some(r.f32s()?),
                other => return Err(format!("bad flag {other}")),
            };
            Some(Partial::Continuing {
                generation,
                params,
                blocks: decode_blocks(r)?,
            })
        }
        other => return Err(format!("bad flag {other}")),
    };
    Ok((
        SeedState {
            generations,
            sets,
            zero,
        },
        partial,
    ))
}

/// Writes `state` (with the generation in progress, if any) atomically.
pub(crate) fn save(
    path: &Path,
    identity: &str,
    seed: u64,
    state: &SeedState,
    partial: Option<&Partial>,
) -> Result<(), CheckpointError> {
    crate::checkpoint::save(path, FORMAT, identity, seed, |w| encode(w, state, partial))
}

/// The saved state of this run's seed, if any (see `crate::checkpoint::load`).
pub(crate) fn load(
    path: &Path,
    identity: &str,
    seed: u64,
    resume: bool,
) -> Result<Option<(SeedState, Option<Partial>)>, CheckpointError> {
    crate::checkpoint::load(path, FORMAT, identity, seed, resume, decode)
}

/// The base's checkpoint file in `dir`.
pub(crate) fn base_path(dir: &Path) -> PathBuf {
    dir.join("base.ckpt")
}

/// Writes the base's state atomically.
pub(crate) fn save_base(
    path: &Path,
    identity: &str,
    state: &BaseState,
) -> Result<(), CheckpointError> {
    crate::checkpoint::save(
        path,
        BASE_FORMAT,
        identity,
        super::BASE_SEED,
        |w| match state {
            BaseState::Trained(params) => {
                w.0.push(0);
                w.f32s(params);
            }
            BaseState::Training(t) => {
                w.0.push(1);
                encode_training(w, t);
            }
        },
    )
}

/// The base's saved state, if any (a base of other settings is refused).
pub(crate) fn load_base(path: &Path, identity: &str) -> Result<Option<BaseState>, CheckpointError> {
    crate::checkpoint::load(
        path,
        BASE_FORMAT,
        identity,
        super::BASE_SEED,
        true,
        |r| match flag(r)? {
            0 => Ok(BaseState::Trained(r.f32s()?)),
            1 => Ok(BaseState::Training(decode_training(r)?)),
            other => Err(format!("bad flag {other}")),
        },
    )
}
