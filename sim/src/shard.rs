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
    pub payload: Payload,
    pub ends: Vec<u64>,
    /// Where it was read from (for messages).
    pub source: PathBuf,
}

/// A record's per-generation words: in memory, or in its file (read as they are merged, so a
/// merge holds one generation at a time).
#[derive(Debug, Clone)]
pub enum Payload {
    Memory(Vec<u64>),
    /// At `offset` bytes into the record's `source`, `words` words long (checked by its CRC).
    File {
        offset: u64,
        words: u64,
    },
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

/// Payload words per generation of a piece owning `owned`.
fn words_per_generation(run: &RunHeader, owned: ChainRange) -> u64 {
    let layout = run.layout;
    let (_, blocks) = layout.blocks(layout.span(owned, run.chains));
    1 + blocks * layout.block_words as u64 + owned.len() * layout.chain_values as u64
}

/// The record's bytes up to its payload: magic, header, owned chains, payload length.
fn record_head(run: &RunHeader, command: &str, owned: ChainRange) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + command.len() + run.identity.len());
    out.extend_from_slice(MAGIC);
    for text in [&run.version, &run.process, &run.identity, command] {
        out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    let words = words_per_generation(run, owned) * (run.generations + 1);
    for x in [
        run.chains,
        run.generations,
        run.layout.block,
        run.layout.block_words as u64,
        run.layout.chain_values as u64,
        owned.start,
        owned.end,
        words,
    ] {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Writes one record as it is produced (header, payload words, end words, CRC-32) to a
/// temporary file that `finish` syncs and renames into place: a killed writer leaves only the
/// temporary file, which readers never take for a record.
pub struct RecordWriter {
    out: std::io::BufWriter<File>,
    crc: crc32fast::Hasher,
    tmp: PathBuf,
    path: PathBuf,
    expected: u64,
    written: u64,
    error: Option<std::io::Error>,
    bytes: Vec<u8>,
    done: bool,
}

use crate::files::temp_beside;

impl RecordWriter {
    pub fn create(
        path: &Path,
        run: &RunHeader,
        command: &str,
        owned: ChainRange,
    ) -> Result<RecordWriter, ShardError> {
        let (_, tmp) = temp_beside(path);
        let file = File::create(&tmp).map_err(io_error(&tmp))?;
        let mut w = RecordWriter {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            tmp,
            path: path.to_path_buf(),
            expected: words_per_generation(run, owned) * (run.generations + 1),
            written: 0,
            error: None,
            bytes: Vec::with_capacity(1 << 16),
            done: false,
        };
        let head = record_head(run, command, owned);
        w.raw(&head);
        Ok(w)
    }

    fn raw(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            self.crc.update(bytes);
            if let Err(e) = self.out.write_all(bytes) {
                self.error = Some(e);
            }
        }
    }

    /// Payload words, in order.
    pub fn words(&mut self, words: impl IntoIterator<Item = u64>) {
        let mut bytes = std::mem::take(&mut self.bytes);
        for w in words {
            bytes.extend_from_slice(&w.to_le_bytes());
            self.written += 1;
            if bytes.len() >= 1 << 16 {
                self.raw(&bytes);
                bytes.clear();
            }
        }
        self.raw(&bytes);
        bytes.clear();
        self.bytes = bytes;
    }

    /// Whether a write failed (the run should stop; `finish` reports it).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The end words and the CRC; then sync, rename into place and sync the folder.
    pub fn finish(mut self, ends: &[u64]) -> Result<(), ShardError> {
        if self.written != self.expected && self.error.is_none() {
            return Err(ShardError::Bad {
                path: self.path.clone(),
                why: format!(
                    "the run wrote {} payload words where {} were due",
                    self.written, self.expected
                ),
            });
        }
        self.raw(&(ends.len() as u64).to_le_bytes());
        self.words(ends.iter().copied());
        let crc = self.crc.clone().finalize();
        self.raw(&crc.to_le_bytes());
        if let Some(e) = self.error.take() {
            return Err(io_error(&self.tmp)(e));
        }
        let (dir, _) = temp_beside(&self.path);
        let out = std::mem::replace(
            &mut self.out,
            std::io::BufWriter::new(File::open("/dev/null").map_err(io_error(&self.tmp))?),
        );
        let file = out
            .into_inner()
            .map_err(|e| io_error(&self.tmp)(e.into_error()))?;
        file.sync_all().map_err(io_error(&self.tmp))?;
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(io_error(&self.path))?;
        self.done = true;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&dir))
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A sink that streams a piece's partials into a record file.
pub struct FileSink<'a> {
    pub writer: RecordWriter,
    stop: &'a AtomicBool,
}

impl PieceSink for FileSink<'_> {
    fn generation(&mut self, n: u64, blocks: &[u64], values: &[&[f64]]) {
        self.writer.words([n]);
        self.writer.words(blocks.iter().copied());
        for v in values {
            self.writer.words(v.iter().map(|x| x.to_bits()));
        }
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.writer.failed()
    }
}

/// The bytes of one record held in memory.
pub fn encode(record: &PieceRecord) -> Result<Vec<u8>, ShardError> {
    let mut out = record_head(&record.run, &record.command, record.owned);
    let mut reader = WordReader::open(record)?;
    let mut words = Vec::new();
    reader.read(
        words_per_generation(&record.run, record.owned) * (record.run.generations + 1),
        &mut words,
    )?;
    for w in words
        .iter()
        .chain(&[record.ends.len() as u64])
        .chain(&record.ends)
    {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Reads a record's payload words in order.
enum WordReader<'a> {
    Memory(&'a [u64]),
    File {
        reader: std::io::BufReader<File>,
        path: &'a Path,
        bytes: Vec<u8>,
    },
}

impl<'a> WordReader<'a> {
    fn open(record: &'a PieceRecord) -> Result<WordReader<'a>, ShardError> {
        Ok(match &record.payload {
            Payload::Memory(words) => WordReader::Memory(words),
            Payload::File { offset, .. } => {
                let path = record.source.as_path();
                let mut file = File::open(path).map_err(io_error(path))?;
                std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(*offset))
                    .map_err(io_error(path))?;
                WordReader::File {
                    reader: std::io::BufReader::with_capacity(1 << 20, file),
                    path,
                    bytes: Vec::new(),
                }
            }
        })
    }

    /// The next `count` words, replacing `out`'s contents.
    fn read(&mut self, count: u64, out: &mut Vec<u64>) -> Result<(), ShardError> {
        out.clear();
        match self {
            WordReader::Memory(words) => {
                let (head, rest) = words.split_at(count as usize);
                out.extend_from_slice(head);
                *words = rest;
            }
            WordReader::File {
                reader,
                path,
                bytes,
            } => {
                bytes.resize(count as usize * 8, 0);
                reader.read_exact(bytes).map_err(io_error(path))?;
                out.extend(
                    bytes
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
                );
            }
        }
        Ok(())
    }
}

/// Reads with a running CRC and a byte count (for `read_file`'s check).
struct Checked<R> {
    inner: R,
    crc: crc32fast::Hasher,
    at: u64,
    len: u64,
}

impl<R: Read> Checked<R> {
    fn take(&mut self, n: u64, out: &mut Vec<u8>) -> Result<(), String> {
        if self.len - self.at < n {
            return Err("truncated (the file ends inside a record)".into());
        }
        out.resize(n as usize, 0);
        self.inner
            .read_exact(out)
            .map_err(|e| format!("unreadable: {e}"))?;
        self.crc.update(out);
        self.at += n;
        Ok(())
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut b = Vec::new();
        self.take(8, &mut b)?;
        Ok(u64::from_le_bytes(b[..8].try_into().unwrap()))
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.u64()?;
        if n > MAX_LEN {
            return Err("corrupt (a header length)".into());
        }
        let mut b = Vec::new();
        self.take(n, &mut b)?;
        String::from_utf8(b).map_err(|_| "corrupt (a header string)".into())
    }
    /// Skips `n` bytes, hashing them.
    fn skip(&mut self, mut n: u64) -> Result<(), String> {
        let mut b = Vec::new();
        while n > 0 {
            let step = n.min(1 << 20);
            self.take(step, &mut b)?;
            n -= step;
        }
        Ok(())
    }
}

/// Every record of a piece file, each checked (magic, lengths, CRC) in one streaming pass; the
/// payloads stay in the file.
pub fn read_file(path: &Path) -> Result<Vec<PieceRecord>, ShardError> {
    let file = File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut r = Checked {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        at: 0,
        len,
    };
    scan(&mut r, path).map_err(|why| ShardError::Bad {
        path: path.to_path_buf(),
        why,
    })
}

fn scan<R: Read>(r: &mut Checked<R>, path: &Path) -> Result<Vec<PieceRecord>, String> {
    if r.len == 0 {
        return Err("empty file (not a collapse piece file)".into());
    }
    let mut records = Vec::new();
    let mut bytes = Vec::new();
    while r.at < r.len {
        let first = r.at == 0;
        r.crc = crc32fast::Hasher::new();
        if r.len - r.at < 8 {
            return Err("truncated (the file ends inside a record)".into());
        }
        r.take(8, &mut bytes)?;
        if bytes != MAGIC {
            return Err(if first {
                "not a collapse piece file (no magic)".into()
            } else {
                "corrupt (a record without magic)".into()
            });
        }
        let version = r.str()?;
        let process = r.str()?;
        let identity = r.str()?;
        let command = r.str()?;
        let mut f = [0u64; 8];
        for x in &mut f {
            *x = r.u64()?;
        }
        let [
            chains,
            generations,
            block,
            block_words,
            chain_values,
            start,
            stop,
            words,
        ] = f;
        let layout = Layout {
            block,
            block_words: block_words as usize,
            chain_values: chain_values as usize,
        };
        let owned = ChainRange { start, end: stop };
        if block == 0 || owned.is_empty() || owned.end > chains || generations > MAX_LEN {
            return Err(format!("corrupt (owned chains {owned} of {chains})"));
        }
        let run = RunHeader {
            version,
            process,
            identity,
            chains,
            generations,
            layout,
        };
        let due = u128::from(words_per_generation(&run, owned)) * (u128::from(generations) + 1);
        if due != u128::from(words) || words > (r.len - r.at) / 8 {
            return Err("corrupt or truncated (payload length does not match its header)".into());
        }
        let offset = r.at;
        r.skip(words * 8)?;
        let ends_len = r.u64()?;
        if ends_len > (r.len - r.at) / 8 {
            return Err("truncated (the file ends inside a record)".into());
        }
        r.take(ends_len * 8, &mut bytes)?;
        let ends = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let computed = r.crc.clone().finalize();
        let mut stored = [0u8; 4];
        if r.len - r.at < 4 {
            return Err("truncated (the file ends inside a record)".into());
        }
        r.inner
            .read_exact(&mut stored)
            .map_err(|e| format!("unreadable: {e}"))?;
        r.at += 4;
        if u32::from_le_bytes(stored) != computed {
            return Err("corrupt (checksum mismatch)".into());
        }
        records.push(PieceRecord {
            run,
            owned,
            command,
            payload: Payload::File { offset, words },
            ends,
            source: path.to_path_buf(),
        });
    }
    Ok(records)
}

/// Writes `bytes` to `path` atomically (`crate::files::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ShardError> {
    crate::files::write_atomic(path, bytes).map_err(io_error(path))
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

/// Merges a complete set of pieces (`check_set`) into the assembler, generation by generation
/// (reading one generation of every piece at a time).
pub fn merge<A: Assemble>(records: &[PieceRecord], mut assembler: A) -> Result<A::Run, ShardError> {
    let run = &records[0].run;
    let layout = run.layout;
    let total_blocks = run.chains.div_ceil(layout.block) as usize;
    let w = layout.block_words;
    let mut blocks = vec![0u64; total_blocks * w];
    let mut filled = vec![usize::MAX; total_blocks];
    let mut values: Vec<Vec<f64>> =
        vec![Vec::with_capacity(run.chains as usize); layout.chain_values];
    let mut readers = records
        .iter()
        .map(WordReader::open)
        .collect::<Result<Vec<_>, _>>()?;
    let mut p = Vec::new();
    for n in 0..=run.generations {
        filled.fill(usize::MAX);
        for v in &mut values {
            v.clear();
        }
        for (i, r) in records.iter().enumerate() {
            let (first, count) = layout.blocks(layout.span(r.owned, run.chains));
            readers[i].read(words_per_generation(run, r.owned), &mut p)?;
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
            let vals = &p[1 + count as usize * w..];
            for (q, v) in values.iter_mut().enumerate() {
                v.extend(
                    vals[q * owned..(q + 1) * owned]
                        .iter()
                        .map(|&b| f64::from_bits(b)),
                );
            }
        }
        let slices: Vec<&[f64]> = values.iter().map(|v| v.as_slice()).collect();
        assembler.generation(n, &blocks, &slices);
    }
    let ends: Vec<&[u64]> = records.iter().map(|r| r.ends.as_slice()).collect();
    Ok(assembler.finish(&ends))
}

/// Adjacent units (sorted, tiling one owned range, their inner boundaries on whole blocks)
/// written to `path` as the record a single piece over their range would have written, bit for
/// bit: a checkpointed shard's file is then the file of the uninterrupted shard.
pub fn join_to_file<A: Assemble>(
    units: &[PieceRecord],
    assembler: &A,
    path: &Path,
) -> Result<(), ShardError> {
    let first = &units[0];
    let run = &first.run;
    let layout = run.layout;
    let owned = ChainRange {
        start: first.owned.start,
        end: units[units.len() - 1].owned.end,
    };
    let mut writer = RecordWriter::create(path, run, &first.command, owned)?;
    let mut readers = units
        .iter()
        .map(WordReader::open)
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts: Vec<Vec<u64>> = vec![Vec::new(); units.len()];
    for n in 0..=run.generations {
        for (i, u) in units.iter().enumerate() {
            readers[i].read(words_per_generation(run, u.owned), &mut parts[i])?;
        }
        writer.words([n]);
        for (u, p) in units.iter().zip(&parts) {
            let (_, count) = layout.blocks(layout.span(u.owned, run.chains));
            writer.words(
                p[1..1 + count as usize * layout.block_words]
                    .iter()
                    .copied(),
            );
        }
        for q in 0..layout.chain_values {
            for (u, p) in units.iter().zip(&parts) {
                let (_, count) = layout.blocks(layout.span(u.owned, run.chains));
                let len = u.owned.len() as usize;
                let at = 1 + count as usize * layout.block_words + q * len;
                writer.words(p[at..at + len].iter().copied());
            }
        }
    }
    let ends: Vec<&[u64]> = units.iter().map(|u| u.ends.as_slice()).collect();
    writer.finish(&assembler.join_ends(&ends))
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
        payload: Payload::Memory(recorder.words),
        ends,
        source: PathBuf::from("(this run)"),
    })
}

/// Runs `owned` as a single piece streamed into the record file `path` (written atomically).
pub fn run_piece_to_file(
    run: &RunHeader,
    command: &str,
    owned: ChainRange,
    stop: &AtomicBool,
    piece: &mut PieceRun<'_>,
    path: &Path,
) -> Result<PieceRecord, ShardError> {
    let mut sink = FileSink {
        writer: RecordWriter::create(path, run, command, owned)?,
        stop,
    };
    match piece(owned, &mut sink) {
        Ok(ends) => {
            sink.writer.finish(&ends)?;
            let mut records = read_file(path)?;
            Ok(records.remove(0))
        }
        // A write error stops the run as a stop request would: report the write error.
        Err(SimError::Interrupted) if sink.writer.failed() => {
            let e = sink.writer.error.take().expect("failed");
            Err(io_error(path)(e))
        }
        Err(e) => Err(e.into()),
    }
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
            // Created only now: a run refused before its first unit leaves nothing behind.
            fs::create_dir_all(&cp.dir).map_err(io_error(&cp.dir))?;
            let path = unit_path(&cp.dir, unit);
            let record = match run_piece_to_file(run, command, unit, stop, piece, &path) {
                Ok(r) => r,
                Err(ShardError::Sim(SimError::Interrupted)) => {
                    return Err(ShardError::Interrupted {
                        saved: done,
                        total: owned.len(),
                        dir: cp.dir.clone(),
                    });
                }
                Err(e) => return Err(e),
            };
            let seconds = clock.elapsed().as_secs_f64().max(1e-6);
            let rate = unit.len() as f64 / seconds;
            size = ((rate * cp.every.as_secs_f64()) as u64).max(min_unit);
            done += unit.len();
            progress(done, owned.len());
            units.push(record);
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
