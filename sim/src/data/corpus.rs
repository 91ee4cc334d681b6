//! Real text corpora: documents of UTF-8 text in one checksummed file, a deterministic split by
//! document, and the conversions from the package files.
//!
//! # The corpus file (`NAME.corpus`)
//!
//! Little-endian integers.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `CLCORPUS` |
//! | 8 | 32 | SHA-256 of every byte from offset 40 to the end |
//! | 40 | 4 | format version, 1 |
//! | 44 | 4 | zero |
//! | 48 | 8 | n, the number of documents |
//! | 56 | 8·(n+1) | byte offsets of the documents in the text: 0, end of document 0, ..., total |
//! | 56 + 8·(n+1) | total | the text, UTF-8, document after document |
//!
//! The file's length is exactly what the header and the last offset imply; the hash covers the
//! header fields too, so any changed byte is detected.

use super::{DataError, format_error, hex, io_error, sha256};
use std::path::Path;

/// First 8 bytes of a corpus file.
pub const MAGIC: [u8; 8] = *b"CLCORPUS";
/// The format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Bytes before the offsets.
const HEADER_LEN: usize = 56;
/// Offset of the first hashed byte.
const HASHED_FROM: usize = 40;

/// Which part of a corpus a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Train,
    Validation,
    Test,
}

impl Part {
    /// The split by document index: index 8 of every ten is validation, index 9 test, the rest
    /// training (80 / 10 / 10). Both corpora list their documents by genre or book, so every
    /// part spans all of them.
    pub fn of(document: usize) -> Part {
        match document % 10 {
            8 => Part::Validation,
            9 => Part::Test,
            _ => Part::Train,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Validation => "validation",
            Part::Test => "test",
        }
    }
}

/// Documents of text, in the order of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    text: String,
    /// `ends[i]` is the byte offset where document i ends (document i starts at `ends[i - 1]`,
    /// or 0).
    ends: Vec<usize>,
}

impl Corpus {
    /// A corpus of the given documents (each may be any UTF-8 text, even empty).
    pub fn new<S: AsRef<str>>(documents: &[S]) -> Corpus {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(documents.len());
        for d in documents {
            text.push_str(d.as_ref());
            ends.push(text.len());
        }
        Corpus { text, ends }
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Document `i`.
    pub fn document(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// The documents of one part, in order.
    pub fn part(&self, part: Part) -> impl Iterator<Item = &str> {
        (0..self.len())
            .filter(move |&i| Part::of(i) == part)
            .map(|i| self.document(i))
    }

    /// Documents in `part`.
    pub fn part_len(&self, part: Part) -> usize {
        (0..self.len()).filter(|&i| Part::of(i) == part).count()
    }

    /// Whitespace-separated words, summed over the documents.
    pub fn words(&self) -> usize {
        (0..self.len())
            .map(|i| self.document(i).split_whitespace().count())
            .sum()
    }

    /// Bytes of text.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The file's bytes (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.len();
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * (n + 1) + self.text.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[0; 32]);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(n as u64).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        for &e in &self.ends {
            out.extend_from_slice(&(e as u64).to_le_bytes());
        }
        out.extend_from_slice(self.text.as_bytes());
        let hash = sha256(&out[HASHED_FROM..]);
        out[MAGIC.len()..HASHED_FROM].copy_from_slice(&hash);
        out
    }

    /// The hash stored in this corpus's file (hex): the pinned value of a data set.
    pub fn sha256_hex(&self) -> String {
        hex(&self.to_bytes()[MAGIC.len()..HASHED_FROM])
    }

    /// Writes the file atomically.
    pub fn write(&self, path: &Path) -> Result<(), DataError> {
        super::write_atomic(path, &self.to_bytes())
    }
}

/// Reads and checks a corpus file; also returns its stored hash (hex).
pub fn read_hashed(path: &Path) -> Result<(Corpus, String), DataError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    parse(&bytes, path)
}

/// Parses a whole corpus file; `path` only names it in errors. Refuses a wrong magic, a wrong
/// length, a hash that does not match, offsets out of order and text that is not UTF-8.
pub fn parse(bytes: &[u8], path: &Path) -> Result<(Corpus, String), DataError> {
    let found = bytes.len() as u64;
    let magic_len = MAGIC.len().min(bytes.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
        });
    }
    let truncated = |expected: u128| DataError::Truncated {
        path: path.to_path_buf(),
        found,
        expected: u64::try_from(expected).unwrap_or(u64::MAX),
    };
    if bytes.len() < HEADER_LEN + 8 {
        return Err(truncated((HEADER_LEN + 8) as u128));
    }
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let n = u64_at(48);
    let offsets_end = HEADER_LEN as u128 + 8 * (u128::from(n) + 1);
    if u128::from(found) < offsets_end {
        return Err(truncated(offsets_end));
    }
    let offsets_end = offsets_end as usize;
    let total = u64_at(offsets_end - 8);
    let expected = offsets_end as u128 + u128::from(total);
    if u128::from(found) < expected {
        return Err(truncated(expected));
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
    let header = |why: String| DataError::Header {
        path: path.to_path_buf(),
        why,
    };
    let version = u32::from_le_bytes(bytes[40..44].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(header(format!(
            "format version {version}, this program reads {VERSION}"
        )));
    }
    let text = std::str::from_utf8(&bytes[offsets_end..])
        .map_err(|e| header(format!("the text is not UTF-8 ({e})")))?;
    if u64_at(HEADER_LEN) != 0 {
        return Err(header("the first offset is not 0".into()));
    }
    let mut ends = Vec::with_capacity(n as usize);
    let mut previous = 0;
    for i in 0..n as usize {
        let end = u64_at(HEADER_LEN + 8 * (i + 1)) as usize;
        if end < previous || !text.is_char_boundary(end) {
            return Err(header(format!(
                "document {i} ends at {end}, before its start or inside a character"
            )));
        }
        ends.push(end);
        previous = end;
    }
    Ok((
        Corpus {
            text: text.to_string(),
            ends,
        },
        hex(stored),
    ))
}

/// Whether `name` is a Brown Corpus sample file (`ca01` ... `cr09`).
fn is_brown_sample(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 4
        && b[0] == b'c'
        && (b'a'..=b'r').contains(&b[1])
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
}

/// The Brown Corpus from its tagged sample files (`(path, bytes)`; files that are not samples,
/// such as `README`, are skipped): each `word/tag` token becomes `word` (the text before the
/// last `/`), the words of a line are joined by one space and the non-empty lines by a newline.
/// Documents are the samples in order of file name.
pub fn brown(files: &[(&str, &[u8])]) -> Result<Corpus, DataError> {
    let mut samples: Vec<(&str, &[u8])> = files
        .iter()
        .filter(|(path, _)| is_brown_sample(path.rsplit('/').next().unwrap_or(path)))
        .copied()
        .collect();
    samples.sort_by_key(|(path, _)| path.rsplit('/').next().unwrap_or(path).to_string());
    if samples.is_empty() {
        return Err(format_error(
            "Brown Corpus",
            "no sample files (ca01 ... cr09)",
        ));
    }
    let mut documents = Vec::with_capacity(samples.len());
    for (path, bytes) in samples {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| format_error(path, format!("not UTF-8 ({e})")))?;
        let mut doc = String::new();
        for (number, line) in text.lines().enumerate() {
            let mut words = Vec::new();
            for token in line.split_whitespace() {
                match token.rsplit_once('/') {
                    Some((word, tag)) if !word.is_empty() && !tag.is_empty() => words.push(word),
                    _ => {
                        return Err(format_error(
                            path,
                            format!("line {}: '{token}' is not word/tag", number + 1),
                        ));
                    }
                }
            }
            if !words.is_empty() {
                if !doc.is_empty() {
                    doc.push('\n');
                }
                doc.push_str(&words.join(" "));
            }
        }
        documents.push(doc);
    }
    Ok(Corpus::new(&documents))
}

/// The King James Bible from `kjv.jsonl` (one verse per line: `book`, `chapter`, `verse`,
/// `text`): one document per chapter, its verses in order joined by one space. Verses must
/// number 1, 2, ... within each chapter, and a chapter must not recur.
pub fn kjv(name: &str, jsonl: &[u8]) -> Result<Corpus, DataError> {
    let text =
        std::str::from_utf8(jsonl).map_err(|e| format_error(name, format!("not UTF-8 ({e})")))?;
    let mut documents: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut current: Option<(String, u64)> = None;
    let mut next_verse = 1;
    for (number, line) in text.lines().enumerate() {
        let bad = |why: String| format_error(name, format!("line {}: {why}", number + 1));
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let (Some(book), Some(chapter), Some(verse), Some(words)) = (
            v["book"].as_str(),
            v["chapter"].as_u64(),
            v["verse"].as_u64(),
            v["text"].as_str(),
        ) else {
            return Err(bad("needs book, chapter, verse and text".into()));
        };
        let key = (book.to_string(), chapter);
        if current.as_ref() != Some(&key) {
            if !seen.insert(key.clone()) {
                return Err(bad(format!("{book} {chapter} appears twice")));
            }
            current = Some(key);
            documents.push(String::new());
            next_verse = 1;
        }
        if verse != next_verse {
            return Err(bad(format!(
                "{book} {chapter}:{verse} where verse {next_verse} was expected"
            )));
        }
        next_verse += 1;
        let doc = documents.last_mut().expect("a chapter was started");
        if !doc.is_empty() {
            doc.push(' ');
        }
        doc.push_str(words.trim());
    }
    if documents.is_empty() {
        return Err(format_error(name, "no verses"));
    }
    Ok(Corpus::new(&documents))
}
