//! A seed's checkpoint: one file per seed, rewritten atomically after every generation and,
//! within a generation, at most every `Control::checkpoint_every`.
//!
//! Layout (little-endian): magic `CLVAECK1`, version u32, seed u64, the spec's identity
//! (length u64 + UTF-8), completed generations u64, then per generation its metrics and its
//! model's parameters, then a flag u8 and (flag 1) the generation in training: epochs done,
//! parameters, Adam's step count and moments, examples, seconds, last loss; last a CRC-32 of
//! everything before it.

use super::{GenerationMetrics, Partial, SeedState};
use crate::files::write_atomic;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CLVAECK1";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot {action} checkpoint {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is damaged ({why}); delete it to start this seed again")]
    Corrupt { path: PathBuf, why: String },
    #[error(
        "checkpoint {path} belongs to another run ({found}); use another --out folder or delete it"
    )]
    OtherRun { path: PathBuf, found: String },
    #[error("checkpoint {path} exists: pass --resume to continue that run, or delete it")]
    Exists { path: PathBuf },
}

/// The checkpoint file of seed `seed` in `dir`.
pub fn path(dir: &Path, seed: u64) -> PathBuf {
    dir.join(format!("seed-{seed}.ckpt"))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn f64s(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for &x in v {
            self.f64(x);
        }
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A length prefix, checked against the bytes left (`width` bytes per element).
    fn len(&mut self, width: usize) -> Result<usize, String> {
        let n = self.u64()?;
        if n > (self.rest.len() / width) as u64 {
            return Err(format!("a length of {n} exceeds the file"));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len(1)?;
        self.take(n)
    }
    fn f32s(&mut self) -> Result<Vec<f32>, String> {
        let n = self.len(4)?;
        Ok(self
            .take(4 * n)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
    fn f64s(&mut self) -> Result<Vec<f64>, String> {
        let n = self.len(8)?;
        (0..n).map(|_| self.f64()).collect()
    }
}

fn encode(identity: &str, seed: u64, state: &SeedState) -> Vec<u8> {
    let mut w = Writer(MAGIC.to_vec());
    w.0.extend_from_slice(&VERSION.to_le_bytes());
    w.u64(seed);
    w.bytes(identity.as_bytes());
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
            w.u64(p.adam_steps);
            w.u64(p.moments.len() as u64);
            for (m, v) in &p.moments {
                w.f32s(m);
                w.f32s(v);
            }
            w.u64(p.examples);
            w.f64(p.seconds);
            w.f64(p.last_loss);
        }
    }
    let crc = crc32fast::hash(&w.0);
    w.0.extend_from_slice(&crc.to_le_bytes());
    w.0
}

fn decode(bytes: &[u8], identity: &str, seed: u64) -> Result<SeedState, Decoded> {
    let corrupt = |why: String| Decoded::Corrupt(why);
    if bytes.len() < MAGIC.len() + 8 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a VAE checkpoint".into()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut r = Reader { rest: &body[8..] };
    let version = u32::from_le_bytes(r.take(4).map_err(corrupt)?.try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(corrupt(format!("version {version}, expected {VERSION}")));
    }
    let found_seed = r.u64().map_err(corrupt)?;
    let found = String::from_utf8_lossy(r.bytes().map_err(corrupt)?).into_owned();
    if found_seed != seed || found != identity {
        return Err(Decoded::OtherRun(format!("seed {found_seed}, {found}")));
    }
    let read = |r: &mut Reader| -> Result<SeedState, String> {
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
                let adam_steps = r.u64()?;
                let count = r.len(16)?;
                let moments = (0..count)
                    .map(|_| Ok((r.f32s()?, r.f32s()?)))
                    .collect::<Result<Vec<_>, String>>()?;
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
        if !r.rest.is_empty() {
            return Err(format!("{} bytes after the end", r.rest.len()));
        }
        Ok(SeedState {
            models,
            metrics,
            partial,
        })
    };
    read(&mut r).map_err(corrupt)
}

enum Decoded {
    Corrupt(String),
    OtherRun(String),
}

/// Writes `state` atomically.
pub(crate) fn save(
    path: &Path,
    identity: &str,
    seed: u64,
    state: &SeedState,
) -> Result<(), CheckpointError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            action: "create the folder of",
            path: path.into(),
            source,
        })?;
    }
    write_atomic(path, &encode(identity, seed, state)).map_err(|source| CheckpointError::Io {
        action: "write",
        path: path.into(),
        source,
    })
}

/// The saved state of this run's seed, if any: refused without `resume`, if damaged, or if it
/// belongs to another spec or seed.
pub(crate) fn load(
    path: &Path,
    identity: &str,
    seed: u64,
    resume: bool,
) -> Result<Option<SeedState>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Io {
                action: "read",
                path: path.into(),
                source,
            });
        }
    };
    if !resume {
        return Err(CheckpointError::Exists { path: path.into() });
    }
    decode(&bytes, identity, seed)
        .map(Some)
        .map_err(|d| match d {
            Decoded::Corrupt(why) => CheckpointError::Corrupt {
                path: path.into(),
                why,
            },
            Decoded::OtherRun(found) => CheckpointError::OtherRun {
                path: path.into(),
                found,
            },
        })
}
