//! Pieces of an ensemble: shards, checkpoint units and their exact merge.
//!
//! A run is a pure function of (spec, seed): chain c draws only from its own stream, and every
//! row is a fixed-order reduction over fixed blocks of chains (the process's `Layout::block`).
//! So any split of the chains into *pieces* merges bit for bit, provided each piece computes
//! whole blocks: a piece that owns chains [lo, hi) also runs the other chains of the blocks that
//! range touches (its *span*: at most two partial blocks more) and emits, per generation, the
//! statistics of those blocks and, for its owned chains only, the values a row needs in full
//! (quantiles are not mergeable from summaries). Neighbouring pieces compute their shared block
//! identically; the merge checks that it did.
//!
//! A piece file is one or more records: magic, header (run identity, layout, owned range),
//! payload words, end words, and a CRC-32 of everything before it. Files are written atomically
//! (temporary file, fsync, rename, fsync of the folder).

use crate::SimError;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Chains [start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainRange {
    pub start: u64,
    pub end: u64,
}

impl ChainRange {
    pub fn all(chains: u64) -> ChainRange {
        ChainRange {
            start: 0,
            end: chains,
        }
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Shard `index` of `count` of `chains` chains: [index R / count, (index + 1) R / count).
    pub fn shard(index: u64, count: u64, chains: u64) -> ChainRange {
        let at = |i: u64| (u128::from(i) * u128::from(chains) / u128::from(count)) as u64;
        ChainRange {
            start: at(index),
            end: at(index + 1),
        }
    }
}

impl std::fmt::Display for ChainRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// How a process reduces its chains: chains per block, words per block's statistics, and
/// values per owned chain per generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub block: u64,
    pub block_words: usize,
    pub chain_values: usize,
}

impl Layout {
    /// The block-aligned chains a piece owning `owned` computes.
    pub fn span(&self, owned: ChainRange, chains: u64) -> ChainRange {
        ChainRange {
            start: owned.start / self.block * self.block,
            end: owned
                .end
                .div_ceil(self.block)
                .saturating_mul(self.block)
                .min(chains),
        }
    }

    /// Index of the first block of a span, and the number of blocks in it.
    pub fn blocks(&self, span: ChainRange) -> (u64, u64) {
        (
            span.start / self.block,
            span.end.div_ceil(self.block) - span.start / self.block,
        )
    }
}

/// Where a ranged run sends each generation's partial statistics.
pub trait PieceSink: Send {
    /// Generation n: the statistics of every block of the span in block order (`block_words`
    /// words each), and per value quantity the values of the owned chains in chain order.
    fn generation(&mut self, n: u64, blocks: &[u64], values: &[&[f64]]);
    /// Whether the run should stop at the next generation boundary (a signal arrived).
    fn stopped(&self) -> bool {
        false
    }
}

/// Builds a process's run from the partials of all chains, generation by generation.
pub trait Assemble: Send {
    type Run;
    /// Generation n: every block of the ensemble, and every chain's values.
    fn generation(&mut self, n: u64, blocks: &[u64], values: &[&[f64]]);
    /// The end words of every piece, in chain order.
    fn finish(self, ends: &[&[u64]]) -> Self::Run;
    /// The end words of adjacent pieces as those of the one piece they make (`join`): their
    /// concatenation, unless a process keeps per-piece totals.
    fn join_ends(&self, ends: &[&[u64]]) -> Vec<u64> {
        ends.concat()
    }
}

/// The sink of a piece that covers every chain: it assembles as it goes (the plain run).
pub struct Direct<'a, A: Assemble>(pub &'a mut A);

impl<A: Assemble> PieceSink for Direct<'_, A> {
    fn generation(&mut self, n: u64, blocks: &[u64], values: &[&[f64]]) {
        self.0.generation(n, blocks, values);
    }
}

/// Runs a process over every chain as one piece and assembles it: `piece(owned, sink)` runs
/// the chains of `owned` and returns their end words.
pub fn run_whole<A: Assemble>(
    chains: u64,
    mut assembler: A,
    piece: impl FnOnce(ChainRange, &mut dyn PieceSink) -> Result<Vec<u64>, SimError>,
) -> Result<A::Run, SimError> {
    let ends = piece(ChainRange::all(chains), &mut Direct(&mut assembler))?;
    Ok(assembler.finish(&[&ends]))
}

/// Encodes f64 values as words (their bits).
pub fn push_f64s(out: &mut Vec<u64>, values: &[f64]) {
    out.extend(values.iter().map(|v| v.to_bits()));
}

/// Reads words in order (block statistics, end words).
pub struct Words<'a> {
    words: &'a [u64],
    at: usize,
}

impl<'a> Words<'a> {
    pub fn new(words: &'a [u64]) -> Words<'a> {
        Words { words, at: 0 }
    }
    pub fn u64(&mut self) -> u64 {
        let w = self.words[self.at];
        self.at += 1;
        w
    }
    pub fn f64(&mut self) -> f64 {
        f64::from_bits(self.u64())
    }
    pub fn remaining(&self) -> usize {
        self.words.len() - self.at
    }
}

/// What identifies a run: every piece of one run carries the same header but its owned range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHeader {
    /// The toolkit's version (pieces of different builds are never merged).
    pub version: String,
    pub process: String,
    /// The run's canonical description (spec, seed, method: everything that decides the bits).
    pub identity: String,
    pub chains: u64,
    pub generations: u64,
    pub layout: Layout,
}

/// One piece: its header, owned chains, per-generation payload and end words.
#[derive(Debug, Clone)]
pub struct PieceRecord {
    pub run: RunHeader,
    pub owned: ChainRange,
    /// The command that made it (for `collapse merge`, which rebuilds the run from it; not part
    /// of the identity, so argument order does not matter).
    pub command: String,
    pub payload: Vec<u64>,
    pub ends: Vec<u64>,
    /// Where it was read from (for messages).
    pub source: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Bad { path: PathBuf, why: String },
    #[error("{0}")]
    Set(String),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(
        "interrupted: {saved} of {total} chains are saved in {dir}; run the same command with --resume to continue"
    )]
    Interrupted {
        saved: u64,
        total: u64,
        dir: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ShardError + '_ {
    move |source| ShardError::Io {
        path: path.to_path_buf(),
        source,
    }
}

const MAGIC: &[u8; 8] = b"CLPSPCE1";
/// Largest string or word list a header may declare (a corrupt length is refused, not
/// allocated).
const MAX_LEN: u64 = 1 << 40;

fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_words(out: &mut Vec<u8>, words: &[u64]) {
    put_u64(out, words.len() as u64);
    out.reserve(words.len() * 8);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// The bytes of one record.
pub fn encode(record: &PieceRecord) -> Vec<u8> {
    let run = &record.run;
    let mut out = Vec::with_capacity(128 + 8 * (record.payload.len() + record.ends.len()));
    out.extend_from_slice(MAGIC);
    put_str(&mut out, &run.version);
    put_str(&mut out, &run.process);
    put_str(&mut out, &run.identity);
    put_str(&mut out, &record.command);
    for x in [
        run.chains,
        run.generations,
        run.layout.block,
        run.layout.block_words as u64,
        run.layout.chain_values as u64,
        record.owned.start,
        record.owned.end,
    ] {
        put_u64(&mut out, x);
    }
    put_words(&mut out, &record.payload);
    put_words(&mut out, &record.ends);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.bytes.len() - self.at < n {
            return Err("truncated (the file ends inside a record)".into());
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len(&mut self, unit: u64) -> Result<usize, String> {
        let n = self.u64()?;
        if n > MAX_LEN || n.saturating_mul(unit) > (self.bytes.len() - self.at) as u64 {
            return Err("truncated or corrupt (a length runs past the end)".into());
        }
        Ok(n as usize)
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.len(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "corrupt (a header string)".into())
    }
    fn words(&mut self) -> Result<Vec<u64>, String> {
        let n = self.len(8)?;
        Ok(self
            .take(8 * n)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
}

/// Every record of a piece file, each checked (magic, CRC, consistent lengths).
pub fn read_file(path: &Path) -> Result<Vec<PieceRecord>, ShardError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_error(path))?;
    decode(&bytes, path).map_err(|why| ShardError::Bad {
        path: path.to_path_buf(),
        why,
    })
}

fn decode(bytes: &[u8], path: &Path) -> Result<Vec<PieceRecord>, String> {
    let mut records = Vec::new();
    let mut c = Cursor { bytes, at: 0 };
    if bytes.is_empty() {
        return Err("empty file (not a collapse piece file)".into());
    }
    while c.at < bytes.len() {
        let begin = c.at;
        if c.take(8)? != MAGIC {
            return Err(if begin == 0 {
                "not a collapse piece file (no magic)".into()
            } else {
                "corrupt (a record without magic)".into()
            });
        }
        let version = c.str()?;
        let process = c.str()?;
        let identity = c.str()?;
        let command = c.str()?;
        let mut f = [0u64; 7];
        for x in &mut f {
            *x = c.u64()?;
        }
        let payload = c.words()?;
        let ends = c.words()?;
        let end = c.at;
        let stored = u32::from_le_bytes(c.take(4)?.try_into().unwrap());
        if crc32fast::hash(&bytes[begin..end]) != stored {
            return Err("corrupt (checksum mismatch)".into());
        }
        let [
            chains,
            generations,
            block,
            block_words,
            chain_values,
            start,
            stop,
        ] = f;
        let layout = Layout {
            block,
            block_words: block_words as usize,
            chain_values: chain_values as usize,
        };
        let owned = ChainRange { start, end: stop };
        if block == 0 || owned.is_empty() || owned.end > chains {
            return Err(format!("corrupt (owned chains {owned} of {chains})"));
        }
        let (_, nblocks) = layout.blocks(layout.span(owned, chains));
        let per_gen =
            1 + nblocks as u128 * block_words as u128 + owned.len() as u128 * chain_values as u128;
        if per_gen * (u128::from(generations) + 1) != payload.len() as u128 {
            return Err("corrupt (payload length does not match its header)".into());
        }
        records.push(PieceRecord {
            run: RunHeader {
                version,
                process,
                identity,
                chains,
                generations,
                layout,
            },
            owned,
            command,
            payload,
            ends,
            source: path.to_path_buf(),
        });
    }
    Ok(records)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// folder. A crash leaves either the old file or the new one, never part of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ShardError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_error(path))
}

/// Records that belong together (one run), sorted by owned chains, disjoint and covering every
/// chain; a clear error otherwise.
pub fn check_set(mut records: Vec<PieceRecord>) -> Result<Vec<PieceRecord>, ShardError> {
    let Some(first) = records.first() else {
        return Err(ShardError::Set("no pieces to merge".into()));
    };
    let run = first.run.clone();
    let src = first.source.clone();
    for r in &records {
        let differs = |what: &str| {
            ShardError::Set(format!(
                "{} is not a piece of the same run as {} (its {what} differs)",
                r.source.display(),
                src.display()
            ))
        };
        if r.run.version != run.version {
            return Err(ShardError::Set(format!(
                "{} was written by collapse {} and {} by {}: pieces of different versions are not merged",
                r.source.display(),
                r.run.version,
                src.display(),
                run.version
            )));
        }
        if r.run.process != run.process {
            return Err(differs("process"));
        }
        if r.run.identity != run.identity {
            return Err(differs("spec or seed"));
        }
        if r.run.chains != run.chains || r.run.generations != run.generations {
            return Err(differs("number of chains or generations"));
        }
        if r.run.layout != run.layout {
            return Err(differs("layout"));
        }
    }
    records.sort_by_key(|r| (r.owned.start, r.owned.end));
    let mut covered = 0;
    let mut previous: Option<&PieceRecord> = None;
    for r in &records {
        if r.owned.start < covered {
            let p = previous.expect("a piece before");
            return Err(ShardError::Set(format!(
                "chains {} of {} overlap chains {} of {}",
                r.owned,
                r.source.display(),
                p.owned,
                p.source.display()
            )));
        }
        if r.owned.start > covered {
            return Err(ShardError::Set(format!(
                "chains {} are missing (no piece covers them)",
                ChainRange {
                    start: covered,
                    end: r.owned.start
                }
            )));
        }
        covered = r.owned.end;
        previous = Some(r);
    }
    if covered != run.chains {
        return Err(ShardError::Set(format!(
            "chains {} are missing (no piece covers them)",
            ChainRange {
                start: covered,
                end: run.chains
            }
        )));
    }
    Ok(records)
}

/// Merges a complete set of pieces (`check_set`) into the assembler, generation by generation.
pub fn merge<A: Assemble>(records: &[PieceRecord], mut assembler: A) -> Result<A::Run, ShardError> {
    let run = &records[0].run;
    let layout = run.layout;
    let total_blocks = run.chains.div_ceil(layout.block) as usize;
    let w = layout.block_words;
    let mut blocks = vec![0u64; total_blocks * w];
    let mut filled = vec![usize::MAX; total_blocks];
    let mut values: Vec<Vec<f64>> =
        vec![Vec::with_capacity(run.chains as usize); layout.chain_values];
    let mut cursors = vec![0usize; records.len()];
    for n in 0..=run.generations {
        filled.fill(usize::MAX);
        for v in &mut values {
            v.clear();
        }
        for (i, r) in records.iter().enumerate() {
            let (first, count) = layout.blocks(layout.span(r.owned, run.chains));
            let p = &r.payload[cursors[i]..];
            if p[0] != n {
                return Err(ShardError::Bad {
                    path: r.source.clone(),
                    why: format!("corrupt (generation {} where {n} was expected)", p[0]),
                });
            }
            let words = &p[1..1 + count as usize * w];
            for b in 0..count as usize {
                let k = first as usize + b;
                let new = &words[b * w..(b + 1) * w];
                if filled[k] == usize::MAX {
                    blocks[k * w..(k + 1) * w].copy_from_slice(new);
                    filled[k] = i;
                } else if &blocks[k * w..(k + 1) * w] != new {
                    return Err(ShardError::Set(format!(
                        "block {k} of generation {n} differs between {} and {} (pieces of different builds or machines?)",
                        records[filled[k]].source.display(),
                        r.source.display()
                    )));
                }
            }
            let owned = r.owned.len() as usize;
            let vals =
                &p[1 + count as usize * w..1 + count as usize * w + owned * layout.chain_values];
            for (q, v) in values.iter_mut().enumerate() {
                v.extend(
                    vals[q * owned..(q + 1) * owned]
                        .iter()
                        .map(|&b| f64::from_bits(b)),
                );
            }
            cursors[i] += 1 + count as usize * w + owned * layout.chain_values;
        }
        let slices: Vec<&[f64]> = values.iter().map(|v| v.as_slice()).collect();
        assembler.generation(n, &blocks, &slices);
    }
    let ends: Vec<&[u64]> = records.iter().map(|r| r.ends.as_slice()).collect();
    Ok(assembler.finish(&ends))
}

/// Adjacent units (sorted, tiling one owned range, their inner boundaries on whole blocks) as
/// the record a single piece over their range would have written, bit for bit: a checkpointed
/// shard's file is then the file of the uninterrupted shard.
pub fn join<A: Assemble>(units: &[PieceRecord], assembler: &A) -> PieceRecord {
    let first = &units[0];
    let run = &first.run;
    let layout = run.layout;
    let w = layout.block_words;
    let owned = ChainRange {
        start: first.owned.start,
        end: units[units.len() - 1].owned.end,
    };
    let mut payload = Vec::with_capacity(units.iter().map(|u| u.payload.len()).sum());
    let mut cursors = vec![0usize; units.len()];
    let shape: Vec<(usize, usize)> = units
        .iter()
        .map(|u| {
            let (_, count) = layout.blocks(layout.span(u.owned, run.chains));
            (count as usize * w, u.owned.len() as usize)
        })
        .collect();
    for n in 0..=run.generations {
        payload.push(n);
        for (i, u) in units.iter().enumerate() {
            let at = cursors[i] + 1;
            payload.extend_from_slice(&u.payload[at..at + shape[i].0]);
        }
        for q in 0..layout.chain_values {
            for (i, u) in units.iter().enumerate() {
                let (words, len) = shape[i];
                let at = cursors[i] + 1 + words + q * len;
                payload.extend_from_slice(&u.payload[at..at + len]);
            }
        }
        for (i, &(words, len)) in shape.iter().enumerate() {
            cursors[i] += 1 + words + len * layout.chain_values;
        }
    }
    let ends: Vec<&[u64]> = units.iter().map(|u| u.ends.as_slice()).collect();
    PieceRecord {
        run: run.clone(),
        owned,
        command: first.command.clone(),
        payload,
        ends: assembler.join_ends(&ends),
        source: first.source.clone(),
    }
}

/// A sink that records a piece's partials (for a piece file).
pub struct Recorder<'a> {
    pub words: Vec<u64>,
    stop: &'a AtomicBool,
}

impl<'a> Recorder<'a> {
    pub fn new(stop: &'a AtomicBool) -> Recorder<'a> {
        Recorder {
            words: Vec::new(),
            stop,
        }
    }
}

impl PieceSink for Recorder<'_> {
    fn generation(&mut self, n: u64, blocks: &[u64], values: &[&[f64]]) {
        self.words.push(n);
        self.words.extend_from_slice(blocks);
        for v in values {
            push_f64s(&mut self.words, v);
        }
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A ranged run of a process: runs the chains it is given into a sink, returns their end words.
pub type PieceRun<'a> =
    dyn FnMut(ChainRange, &mut dyn PieceSink) -> Result<Vec<u64>, SimError> + 'a;

/// Runs `owned` as a single piece (a shard without checkpoints); `command` is left empty.
pub fn run_piece(
    run: &RunHeader,
    owned: ChainRange,
    stop: &AtomicBool,
    piece: &mut PieceRun<'_>,
) -> Result<PieceRecord, SimError> {
    let mut recorder = Recorder::new(stop);
    let ends = piece(owned, &mut recorder)?;
    Ok(PieceRecord {
        run: run.clone(),
        owned,
        command: String::new(),
        payload: recorder.words,
        ends,
        source: PathBuf::from("(this run)"),
    })
}

/// Checkpointing: units of chains, each saved as a piece file in `dir` as soon as it is done.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    /// Aim for a unit (and so a checkpoint) about this often.
    pub every: Duration,
    /// Continue from the units in `dir` (without it, a non-empty `dir` is refused).
    pub resume: bool,
    /// The smallest unit in chains (enough blocks to keep every thread busy).
    pub min_unit: u64,
}

const UNIT_PREFIX: &str = "unit-";
const UNIT_SUFFIX: &str = ".piece";

fn unit_path(dir: &Path, owned: ChainRange) -> PathBuf {
    dir.join(format!(
        "{UNIT_PREFIX}{:012}-{:012}{UNIT_SUFFIX}",
        owned.start, owned.end
    ))
}

/// The units already saved in the checkpoint folder (checked against `run` and `owned`);
/// leftover temporary files of a killed write are removed.
fn saved_units(
    cp: &Checkpoint,
    run: &RunHeader,
    owned: ChainRange,
) -> Result<Vec<PieceRecord>, ShardError> {
    let mut units = Vec::new();
    if !cp.dir.exists() {
        return Ok(units);
    }
    let entries = fs::read_dir(&cp.dir).map_err(io_error(&cp.dir))?;
    let mut paths = Vec::new();
    for e in entries {
        let path = e.map_err(io_error(&cp.dir))?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            fs::remove_file(&path).map_err(io_error(&path))?;
        } else if name.starts_with(UNIT_PREFIX) && name.ends_with(UNIT_SUFFIX) {
            paths.push(path);
        }
    }
    paths.sort();
    if !paths.is_empty() && !cp.resume {
        return Err(ShardError::Set(format!(
            "{} holds a checkpoint; pass --resume to continue it, or remove the folder",
            cp.dir.display()
        )));
    }
    for path in paths {
        let records = read_file(&path).map_err(|e| match e {
            ShardError::Bad { path, why } => ShardError::Bad {
                path,
                why: format!(
                    "{why}; refusing the checkpoint (remove this file to recompute its chains)"
                ),
            },
            other => other,
        })?;
        for r in records {
            if r.run != *run {
                return Err(ShardError::Bad {
                    path: path.clone(),
                    why: "a checkpoint of a different run (spec, seed, version or layout differ); refusing it".into(),
                });
            }
            if r.owned.start < owned.start || r.owned.end > owned.end {
                return Err(ShardError::Bad {
                    path: path.clone(),
                    why: format!("holds chains {} outside this run's {owned}", r.owned),
                });
            }
            units.push(r);
        }
    }
    units.sort_by_key(|r| r.owned.start);
    for pair in units.windows(2) {
        if pair[1].owned.start < pair[0].owned.end {
            return Err(ShardError::Bad {
                path: pair[1].source.clone(),
                why: format!("overlaps {}", pair[0].source.display()),
            });
        }
    }
    Ok(units)
}

/// Runs the chains of `owned` in units, saving each unit to the checkpoint folder as it
/// completes and skipping the units already saved there. A stop request abandons the unit in
/// progress at its next generation boundary; everything saved stays valid. Units are sized so
/// one takes about `every` (at least `min_unit` chains, whole blocks after the first).
pub fn run_checkpointed(
    run: &RunHeader,
    command: &str,
    owned: ChainRange,
    cp: &Checkpoint,
    stop: &AtomicBool,
    piece: &mut PieceRun<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<PieceRecord>, ShardError> {
    let mut units = saved_units(cp, run, owned)?;
    let mut gaps = Vec::new();
    let mut at = owned.start;
    for u in &units {
        if u.owned.start > at {
            gaps.push(ChainRange {
                start: at,
                end: u.owned.start,
            });
        }
        at = u.owned.end;
    }
    if at < owned.end {
        gaps.push(ChainRange {
            start: at,
            end: owned.end,
        });
    }
    let block = run.layout.block;
    let mut done: u64 = units.iter().map(|u| u.owned.len()).sum();
    progress(done, owned.len());
    let min_unit = cp.min_unit.max(1);
    let mut size = min_unit;
    for gap in gaps {
        let mut start = gap.start;
        while start < gap.end {
            // Unit ends fall on block boundaries, so no block is computed by two units.
            let end = (start + size)
                .div_ceil(block)
                .saturating_mul(block)
                .min(gap.end);
            let unit = ChainRange { start, end };
            let clock = Instant::now();
            let record = match run_piece(run, unit, stop, piece) {
                Ok(r) => PieceRecord {
                    command: command.to_string(),
                    ..r
                },
                Err(SimError::Interrupted) => {
                    return Err(ShardError::Interrupted {
                        saved: done,
                        total: owned.len(),
                        dir: cp.dir.clone(),
                    });
                }
                Err(e) => return Err(e.into()),
            };
            // Created only now: a run refused before its first unit leaves nothing behind.
            fs::create_dir_all(&cp.dir).map_err(io_error(&cp.dir))?;
            let path = unit_path(&cp.dir, unit);
            write_atomic(&path, &encode(&record))?;
            let seconds = clock.elapsed().as_secs_f64().max(1e-6);
            let rate = unit.len() as f64 / seconds;
            size = ((rate * cp.every.as_secs_f64()) as u64).max(min_unit);
            done += unit.len();
            progress(done, owned.len());
            units.push(PieceRecord {
                source: path,
                ..record
            });
            start = end;
        }
    }
    units.sort_by_key(|r| r.owned.start);
    Ok(units)
}

/// Removes the checkpoint's unit files and then the folder (if empty) after a completed run.
pub fn remove_checkpoint(cp: &Checkpoint) -> Result<(), ShardError> {
    if let Ok(entries) = fs::read_dir(&cp.dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(UNIT_PREFIX) && name.ends_with(UNIT_SUFFIX) {
                fs::remove_file(e.path()).map_err(io_error(&e.path()))?;
            }
        }
    }
    let _ = fs::remove_dir(&cp.dir);
    Ok(())
}

#[cfg(test)]
mod tests;
