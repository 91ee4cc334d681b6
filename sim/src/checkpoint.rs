//! Checkpoint files of the learned models: one file per seed, written atomically, read back
//! only for the same run and seed.
//!
//! Layout (little-endian): an 8-byte magic, version u32, seed u64, the run's identity
//! (length u64 + UTF-8), the model's payload, then a CRC-32 of everything before it.

use crate::files::write_atomic;
use crate::nn::Moments;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How a learned model's run (`vae`, `lm`) is checkpointed, stopped and watched; `E` is its
/// progress event.
pub struct Control<'a, E> {
    /// Folder of the checkpoint files (None: no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the seeds' checkpoints (else an existing one is refused).
    pub resume: bool,
    /// Least time between two checkpoints within a generation (one is always written when a
    /// generation ends).
    pub checkpoint_every: Duration,
    /// Set (by a signal handler) to stop at the next place a checkpoint can be written
    /// (an epoch, a training step, a batch of prompts), after writing it.
    pub stop: &'a AtomicBool,
    pub progress: &'a mut (dyn FnMut(E) + Send),
}

impl<'a, E> Control<'a, E> {
    /// No checkpoints: a stop request ends the run with nothing saved.
    pub fn in_memory(stop: &'a AtomicBool, progress: &'a mut (dyn FnMut(E) + Send)) -> Self {
        Control {
            checkpoint_dir: None,
            resume: false,
            checkpoint_every: Duration::ZERO,
            stop,
            progress,
        }
    }
}

/// What distinguishes one model's checkpoints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    pub magic: &'static [u8; 8],
    pub version: u32,
    /// "a VAE checkpoint", for the refusal of another file.
    pub what: &'static str,
}

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

pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn f64s(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for &x in v {
            self.f64(x);
        }
    }
    pub fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    /// Adam's state: step count, then per parameter slice its two moments.
    pub fn adam(&mut self, steps: u64, moments: &[Moments]) {
        self.u64(steps);
        self.u64(moments.len() as u64);
        for (m, v) in moments {
            self.f32s(m);
            self.f32s(v);
        }
    }
}

pub(crate) struct Reader<'a> {
    pub rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A length prefix, checked against the bytes left (`width` bytes per element).
    pub fn len(&mut self, width: usize) -> Result<usize, String> {
        let n = self.u64()?;
        if n > (self.rest.len() / width) as u64 {
            return Err(format!("a length of {n} exceeds the file"));
        }
        Ok(n as usize)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len(1)?;
        self.take(n)
    }
    pub fn f32s(&mut self) -> Result<Vec<f32>, String> {
        let n = self.len(4)?;
        Ok(self
            .take(4 * n)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
    pub fn f64s(&mut self) -> Result<Vec<f64>, String> {
        let n = self.len(8)?;
        (0..n).map(|_| self.f64()).collect()
    }
    pub fn u32s(&mut self) -> Result<Vec<u32>, String> {
        let n = self.len(4)?;
        Ok(self
            .take(4 * n)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
    /// What [`Writer::adam`] wrote.
    pub fn adam(&mut self) -> Result<(u64, Vec<Moments>), String> {
        let steps = self.u64()?;
        let moments = (0..self.len(16)?)
            .map(|_| Ok((self.f32s()?, self.f32s()?)))
            .collect::<Result<_, String>>()?;
        Ok((steps, moments))
    }
}

/// The framed bytes of a checkpoint: header, `payload`, CRC-32.
fn encode(format: Format, identity: &str, seed: u64, payload: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer(format.magic.to_vec());
    w.0.extend_from_slice(&format.version.to_le_bytes());
    w.u64(seed);
    w.bytes(identity.as_bytes());
    payload(&mut w);
    let crc = crc32fast::hash(&w.0);
    w.0.extend_from_slice(&crc.to_le_bytes());
    w.0
}

fn decode<T>(
    format: Format,
    bytes: &[u8],
    identity: &str,
    seed: u64,
    payload: impl FnOnce(&mut Reader) -> Result<T, String>,
) -> Result<T, Decoded> {
    let corrupt = |why: String| Decoded::Corrupt(why);
    if bytes.len() < format.magic.len() + 8 || &bytes[..8] != format.magic {
        return Err(corrupt(format!("not {}", format.what)));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut r = Reader { rest: &body[8..] };
    let version = u32::from_le_bytes(r.take(4).map_err(corrupt)?.try_into().expect("4 bytes"));
    if version != format.version {
        return Err(corrupt(format!(
            "version {version}, expected {}",
            format.version
        )));
    }
    let found_seed = r.u64().map_err(corrupt)?;
    let found = String::from_utf8_lossy(r.bytes().map_err(corrupt)?).into_owned();
    if found_seed != seed || found != identity {
        return Err(Decoded::OtherRun(format!("seed {found_seed}, {found}")));
    }
    let value = payload(&mut r).map_err(corrupt)?;
    if !r.rest.is_empty() {
        return Err(corrupt(format!("{} bytes after the end", r.rest.len())));
    }
    Ok(value)
}

enum Decoded {
    Corrupt(String),
    OtherRun(String),
}

/// Writes the checkpoint atomically.
pub(crate) fn save(
    path: &Path,
    format: Format,
    identity: &str,
    seed: u64,
    payload: impl FnOnce(&mut Writer),
) -> Result<(), CheckpointError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            action: "create the folder of",
            path: path.into(),
            source,
        })?;
    }
    write_atomic(path, &encode(format, identity, seed, payload)).map_err(|source| {
        CheckpointError::Io {
            action: "write",
            path: path.into(),
            source,
        }
    })
}

/// The saved state of this run's seed, if any: refused without `resume`, if damaged, or if it
/// belongs to another spec or seed.
pub(crate) fn load<T>(
    path: &Path,
    format: Format,
    identity: &str,
    seed: u64,
    resume: bool,
    payload: impl FnOnce(&mut Reader) -> Result<T, String>,
) -> Result<Option<T>, CheckpointError> {
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
    decode(format, &bytes, identity, seed, payload)
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
