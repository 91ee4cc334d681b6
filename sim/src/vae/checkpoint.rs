//! A VAE seed's checkpoint (framing in `crate::checkpoint`), rewritten after every generation
//! and, within a generation, at most every `Control::checkpoint_every`.
//!
//! Payload: completed generations u64, then per generation its metrics and its model's
//! parameters, then a flag u8 and (flag 1) the generation in training: epochs done,
//! parameters, Adam's step count and moments, examples, seconds, last loss.

use super::{GenerationMetrics, Partial, SeedState};
pub use crate::checkpoint::{CheckpointError, path};
use crate::checkpoint::{Format, Reader, Writer};
use std::path::Path;

const FORMAT: Format = Format {
    magic: b"CLVAECK1",
    version: 1,
    what: "a VAE checkpoint",
};

fn encode(w: &mut Writer, state: &SeedState) {
    w.u64(state.metrics.len() as u64);
    for (m, params) in state.metrics.iter().zip(&state.models) {
        w.u64(m.generation as u64);
        for v in [
            m.latent_mean,
            m.latent_std,
            m.heldout_neg_elbo,
            m.train_neg_elbo,
        ] {
            w.f64(v);
        }
        w.f64s(&m.class_fractions);
        w.f64(m.class_entropy);
        w.f64(m.pixel_std);
        w.bytes(&m.grid);
        w.u64(m.examples);
        w.f64(m.seconds);
        w.f32s(params);
    }
    match &state.partial {
        None => w.0.push(0),
        Some(p) => {
            w.0.push(1);
            w.u64(p.epochs_done as u64);
            w.f32s(&p.params);
            w.adam(p.adam_steps, &p.moments);
            w.u64(p.examples);
            w.f64(p.seconds);
            w.f64(p.last_loss);
        }
    }
}

fn decode(r: &mut Reader) -> Result<SeedState, String> {
    let completed = r.len(8)?;
    let (mut metrics, mut models) = (Vec::new(), Vec::new());
    for _ in 0..completed {
        let generation = r.u64()? as usize;
        let [latent_mean, latent_std, heldout_neg_elbo, train_neg_elbo] =
            [r.f64()?, r.f64()?, r.f64()?, r.f64()?];
        let class_fractions = r.f64s()?;
        let class_entropy = r.f64()?;
        let pixel_std = r.f64()?;
        let grid = r.bytes()?.to_vec();
        let examples = r.u64()?;
        let seconds = r.f64()?;
        models.push(r.f32s()?);
        metrics.push(GenerationMetrics {
            generation,
            latent_mean,
            latent_std,
            heldout_neg_elbo,
            train_neg_elbo,
            class_fractions,
            class_entropy,
            pixel_std,
            grid,
            examples,
            seconds,
        });
    }
    let partial = match r.take(1)?[0] {
        0 => None,
        1 => {
            let epochs_done = r.u64()? as usize;
            let params = r.f32s()?;
            let (adam_steps, moments) = r.adam()?;
            Some(Partial {
                epochs_done,
                params,
                adam_steps,
                moments,
                examples: r.u64()?,
                seconds: r.f64()?,
                last_loss: r.f64()?,
            })
        }
        other => return Err(format!("bad flag {other}")),
    };
    Ok(SeedState {
        models,
        metrics,
        partial,
    })
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
