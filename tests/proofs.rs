//! The derivations in `proofs/` and the tests that check them agree (issue 4).
//!
//! Every `proofs/*.md` is parsed. A claim is a line that starts (after an optional `- `) with
//! `**Claim <file>.<section>.<index>.**`, where `<file>` is the Markdown file's stem. It is
//! closed by the next `Checked by:` line (the innermost open claim first), which is either
//! `Checked by: (none yet)` or `Checked by:` alone followed by bullets whose first code span is
//! `path/from/repo/root.rs: test_fn`. The test fails, naming the file and the label, when
//!
//! - a claim has no `Checked by:` before the next heading or the end of the file;
//! - a claim says `(none yet)` and is not on [`NOT_YET_CHECKED`], or is on it and has a check,
//!   or [`NOT_YET_CHECKED`] names a label that does not exist;
//! - a check names a file that does not exist, or a function that is not a `#[test]` in that
//!   file (`#[test]` functions in `mod tests` and in `proptest!` blocks count; `#[ignore]`d ones
//!   do not);
//! - two claims share a label;
//! - a Rust source file under `analysis/`, `sim/`, `src/`, `reports/`, `tests/` or `benches/`,
//!   or a proofs file, mentions a label (`claim <stem>.S.I`, or `<stem>.S.I` for the stem of a
//!   proofs file) that is not a claim;
//! - a code span in a proofs file names a `path.rs` that does not exist, or `path.rs: name`
//!   where the file has no `fn name`.
//!
//! Only std is used; files are read relative to `CARGO_MANIFEST_DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Claims that no test checks yet. Each is marked `Checked by: (none yet)` in its Markdown file,
/// so the gap stays visible there; listing it here keeps the suite green while it is open. The
/// cross-check fails if a label here is not a claim, or if its claim gains a check (then delete
/// the line). Each entry says what a test would have to assert.
const NOT_YET_CHECKED: &[(&str, &str)] = &[];

/// Directories whose Rust sources may mention claim labels.
const SOURCE_DIRS: &[&str] = &["analysis", "sim", "src", "reports", "tests", "benches"];

#[derive(Debug, Clone, PartialEq)]
enum Checks {
    /// `Checked by:` with these (path, test function, line) items.
    Tests(Vec<(String, String, usize)>),
    /// `Checked by: (none yet)`.
    NoneYet,
    /// No `Checked by:` at all (already reported as a problem).
    Missing,
}

#[derive(Debug, Clone)]
struct Claim {
    label: String,
    file: String,
    line: usize,
    checks: Checks,
}

/// What one Markdown file says.
#[derive(Debug, Default)]
struct Parsed {
    claims: Vec<Claim>,
    /// Code spans `path.rs: name` outside the check lists: (path, name, line).
    references: Vec<(String, String, usize)>,
    /// Code spans naming a `.rs` file: (path, line).
    files: Vec<(String, usize)>,
    /// Label-like tokens in the text other than claim definitions: (token, after "claim", line).
    mentions: Vec<(String, bool, usize)>,
    /// Structural problems, each naming the file and line.
    problems: Vec<String>,
}

/// The code spans of one line, CommonMark style: a run of n backticks up to the next run of
/// exactly n, with one surrounding space stripped.
fn code_spans(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                let inner: String = chars[i + n..j].iter().collect();
                let trimmed = if inner.len() >= 2 && inner.starts_with(' ') && inner.ends_with(' ')
                {
                    inner[1..inner.len() - 1].to_string()
                } else {
                    inner
                };
                spans.push(trimmed);
                i = j + n;
            }
            None => break,
        }
    }
    spans
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `path/to/file.rs: name` -> (path, name).
fn split_reference(span: &str) -> Option<(String, String)> {
    let (path, name) = span.split_once(": ")?;
    let path_ok = path.ends_with(".rs")
        && !path.starts_with('/')
        && !path.contains("..")
        && !path.contains(char::is_whitespace)
        && !path.contains('`');
    (path_ok && is_identifier(name)).then(|| (path.to_string(), name.to_string()))
}

/// Tokens shaped like labels, `word.N.N...`: (token, preceded by the word "claim"/"claims").
fn label_mentions(line: &str) -> Vec<(String, bool)> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let word_start = bytes[i].is_ascii_lowercase()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !word_start {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_ascii_lowercase() || bytes[j] == b'_') {
            j += 1;
        }
        let mut end = j;
        let mut numbers = 0;
        while end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
            end += 1;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            numbers += 1;
        }
        let clean_end =
            end == bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
        if numbers >= 2 && clean_end {
            let before = line[..i].trim_end().to_ascii_lowercase();
            let after_claim = before.ends_with("claim") || before.ends_with("claims");
            found.push((line[i..end].to_string(), after_claim));
        }
        i = end.max(j);
    }
    found
}

/// A claim line: `**Claim <label>.**`, optionally as a bullet. Returns the label text.
fn claim_label(line: &str) -> Option<&str> {
    let s = line.trim_start();
    let s = s.strip_prefix("- ").unwrap_or(s);
    let rest = s.strip_prefix("**Claim ")?;
    Some(rest.find(".**").map_or(rest, |end| &rest[..end]))
}

fn label_is_well_formed(label: &str, stem: &str) -> bool {
    let parts: Vec<&str> = label.split('.').collect();
    parts.len() == 3
        && parts[0] == stem
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses one proofs file (`file` is its name, e.g. `markov.md`).
fn parse(file: &str, text: &str) -> Parsed {
    let stem = file.strip_suffix(".md").unwrap_or(file);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Parsed::default();
    // Indices into out.claims of the claims still waiting for their `Checked by:`.
    let mut open: Vec<usize> = Vec::new();
    let close_all = |open: &mut Vec<usize>, out: &mut Parsed, why: &str| {
        for &c in open.iter() {
            let claim = &mut out.claims[c];
            claim.checks = Checks::Missing;
            out.problems.push(format!(
                "proofs/{file}:{}: claim {} has no `Checked by:` before {why}",
                claim.line, claim.label
            ));
        }
        open.clear();
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let number = i + 1;
        let trimmed = line.trim_start();
        let mut defined = None;
        if trimmed.starts_with('#') {
            close_all(
                &mut open,
                &mut out,
                &format!("the heading at line {number}"),
            );
        } else if let Some(label) = claim_label(line) {
            if !label_is_well_formed(label, stem) || !trimmed.contains(".**") {
                out.problems.push(format!(
                    "proofs/{file}:{number}: malformed claim label `{label}` \
                     (expected `**Claim {stem}.<section>.<index>.**`)"
                ));
            }
            defined = Some(label.to_string());
            open.push(out.claims.len());
            out.claims.push(Claim {
                label: label.to_string(),
                file: file.to_string(),
                line: number,
                checks: Checks::Missing,
            });
        } else if let Some(rest) = trimmed.strip_prefix("Checked by:") {
            let rest = rest.trim();
            let none_yet = rest.starts_with("(none yet)");
            if !none_yet && !rest.is_empty() {
                out.problems.push(format!(
                    "proofs/{file}:{number}: `Checked by:` must be followed by `(none yet)` or by \
                     nothing (the checks go in bullets below), found `{rest}`"
                ));
            }
            // The bullets that follow, with their continuation lines.
            let mut items = Vec::new();
            let mut j = i + 1;
            while j < lines.len() {
                let t = lines[j].trim_start();
                if t.starts_with("- `") {
                    let first = code_spans(t).into_iter().next().unwrap_or_default();
                    match split_reference(&first) {
                        Some((path, name)) => items.push((path, name, j + 1)),
                        None => out.problems.push(format!(
                            "proofs/{file}:{}: a check must start with \
                             `path/from/repo/root.rs: test_fn`, found `{first}`",
                            j + 1
                        )),
                    }
                } else if t.is_empty()
                    || t.starts_with("- ")
                    || t.starts_with('#')
                    || claim_label(t).is_some()
                    || t.starts_with("Checked by:")
                    || items.is_empty()
                {
                    break;
                }
                j += 1;
            }
            let checks = if none_yet {
                if !items.is_empty() {
                    out.problems.push(format!(
                        "proofs/{file}:{number}: `Checked by: (none yet)` followed by checks"
                    ));
                }
                Checks::NoneYet
            } else {
                if items.is_empty() && rest.is_empty() {
                    out.problems.push(format!(
                        "proofs/{file}:{number}: `Checked by:` names no test"
                    ));
                }
                Checks::Tests(items)
            };
            match open.pop() {
                Some(c) => out.claims[c].checks = checks,
                None => out.problems.push(format!(
                    "proofs/{file}:{number}: `Checked by:` follows no open claim"
                )),
            }
            // Record the references of the lines consumed, then skip them.
            for (k, consumed) in lines.iter().enumerate().take(j).skip(i + 1) {
                record_spans(&mut out, consumed, k + 1, true);
                record_mentions(&mut out, consumed, k + 1, None);
            }
            record_spans(&mut out, line, number, false);
            record_mentions(&mut out, line, number, None);
            i = j;
            continue;
        }
        record_spans(&mut out, line, number, false);
        record_mentions(&mut out, line, number, defined.as_deref());
        i += 1;
    }
    close_all(&mut open, &mut out, "the end of the file");
    out
}

/// Records the code spans of a line: file paths, and `path.rs: name` references (the first span
/// of a check item is validated as a check, so it is skipped here).
fn record_spans(out: &mut Parsed, line: &str, number: usize, check_item: bool) {
    for (k, span) in code_spans(line).into_iter().enumerate() {
        if check_item && k == 0 && line.trim_start().starts_with("- `") {
            continue;
        }
        if let Some((path, name)) = split_reference(&span) {
            out.references.push((path, name, number));
        } else if span.ends_with(".rs")
            && span.contains('/')
            && !span.contains(char::is_whitespace)
            && !span.contains('`')
        {
            out.files.push((span, number));
        }
    }
}

fn record_mentions(out: &mut Parsed, line: &str, number: usize, defined: Option<&str>) {
    let mut skipped = false;
    for (token, after_claim) in label_mentions(line) {
        if !skipped && Some(token.as_str()) == defined {
            skipped = true;
            continue;
        }
        out.mentions.push((token, after_claim, number));
    }
}

/// Finds `fn name(` in a Rust file and says whether it is a test: `Ok(())` for a `#[test]`
/// without `#[ignore]`, otherwise the reason.
fn find_test(source: &str, name: &str) -> Result<(), String> {
    let lines: Vec<&str> = source.lines().collect();
    let signature = format!("fn {name}(");
    let mut seen_fn = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if !t.starts_with(&signature) {
            continue;
        }
        seen_fn = true;
        let mut test = false;
        let mut ignored = false;
        for above in lines[..i].iter().rev() {
            let a = above.trim();
            if a.starts_with("#[test]") {
                test = true;
            } else if a.starts_with("#[ignore") {
                ignored = true;
            } else if !(a.starts_with("#[") || a.starts_with("//")) {
                break;
            }
        }
        if test && !ignored {
            return Ok(());
        }
        if test && ignored {
            return Err(format!(
                "`{name}` is #[ignore]d, so it never runs by default"
            ));
        }
    }
    Err(if seen_fn {
        format!("`fn {name}` is not a #[test]")
    } else {
        format!("no `fn {name}(`")
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Reads repository files on demand (None when missing).
struct Repo {
    root: PathBuf,
    cache: BTreeMap<String, Option<String>>,
}

impl Repo {
    fn new(root: &Path) -> Repo {
        Repo {
            root: root.to_path_buf(),
            cache: BTreeMap::new(),
        }
    }

    fn read(&mut self, path: &str) -> Option<&str> {
        let root = &self.root;
        self.cache
            .entry(path.to_string())
            .or_insert_with(|| fs::read_to_string(root.join(path)).ok())
            .as_deref()
    }
}

/// Everything wrong with `files` (name, text) against the repository at `root`, with the
/// allow-list `allowed` of labels known to lack a test.
fn problems_of(
    files: &[(String, String)],
    repo: &mut Repo,
    allowed: &[(&str, &str)],
    sources: &[(String, String)],
) -> (Vec<Claim>, Vec<String>) {
    let mut problems = Vec::new();
    let mut claims = Vec::new();
    let mut parsed_files = Vec::new();
    for (file, text) in files {
        let parsed = parse(file, text);
        if parsed.claims.is_empty() {
            problems.push(format!("proofs/{file}: holds no claim"));
        }
        problems.extend(parsed.problems.iter().cloned());
        claims.extend(parsed.claims.iter().cloned());
        parsed_files.push((file.clone(), parsed));
    }
    let stems: BTreeSet<String> = files
        .iter()
        .map(|(f, _)| f.strip_suffix(".md").unwrap_or(f).to_string())
        .collect();

    // Unique labels.
    let mut first_seen: BTreeMap<&str, &Claim> = BTreeMap::new();
    for claim in &claims {
        if let Some(earlier) = first_seen.insert(claim.label.as_str(), claim) {
            problems.push(format!(
                "proofs/{}:{}: label {} already used at proofs/{}:{}",
                claim.file, claim.line, claim.label, earlier.file, earlier.line
            ));
        }
    }
    let labels: BTreeSet<&str> = claims.iter().map(|c| c.label.as_str()).collect();

    // Checks and the allow-list.
    let allowed_labels: BTreeSet<&str> = allowed.iter().map(|(l, _)| *l).collect();
    for claim in &claims {
        let at = format!(
            "proofs/{}:{}: claim {}",
            claim.file, claim.line, claim.label
        );
        match &claim.checks {
            Checks::Tests(items) => {
                if allowed_labels.contains(claim.label.as_str()) {
                    problems.push(format!(
                        "{at} now has a check: delete it from NOT_YET_CHECKED in tests/proofs.rs"
                    ));
                }
                for (path, name, line) in items {
                    let where_ = format!("proofs/{}:{line}: claim {}", claim.file, claim.label);
                    match repo.read(path) {
                        None => problems.push(format!(
                            "{where_}: check names `{path}`, which does not exist"
                        )),
                        Some(source) => {
                            if let Err(why) = find_test(source, name) {
                                problems.push(format!("{where_}: check `{path}: {name}`: {why}"));
                            }
                        }
                    }
                }
            }
            Checks::NoneYet => {
                if !allowed_labels.contains(claim.label.as_str()) {
                    problems.push(format!(
                        "{at} has no test (`Checked by: (none yet)`) and is not on NOT_YET_CHECKED"
                    ));
                }
            }
            Checks::Missing => {} // reported by the parser
        }
    }
    for label in &allowed_labels {
        if !labels.contains(label) {
            problems.push(format!(
                "NOT_YET_CHECKED in tests/proofs.rs names {label}, which is not a claim"
            ));
        }
    }

    // References, file names and label mentions inside the proofs.
    for (file, parsed) in &parsed_files {
        for (path, name, line) in &parsed.references {
            let at = format!("proofs/{file}:{line}");
            match repo.read(path) {
                None => problems.push(format!("{at}: `{path}` does not exist")),
                Some(source) => {
                    let has_fn = source.lines().any(|l| {
                        let t = l.trim_start();
                        let t = t
                            .strip_prefix("pub(crate) ")
                            .or_else(|| t.strip_prefix("pub "))
                            .unwrap_or(t);
                        t.starts_with(&format!("fn {name}("))
                            || t.starts_with(&format!("fn {name}<"))
                    });
                    if !has_fn {
                        problems.push(format!("{at}: `{path}` has no `fn {name}`"));
                    }
                }
            }
        }
        for (path, line) in &parsed.files {
            if repo.read(path).is_none() {
                problems.push(format!("proofs/{file}:{line}: `{path}` does not exist"));
            }
        }
        for (token, after_claim, line) in &parsed.mentions {
            problems.extend(mention_problem(
                token,
                *after_claim,
                &stems,
                &labels,
                &format!("proofs/{file}:{line}"),
            ));
        }
    }

    // Label mentions in the Rust sources.
    for (path, text) in sources {
        for (k, line) in text.lines().enumerate() {
            for (token, after_claim) in label_mentions(line) {
                problems.extend(mention_problem(
                    &token,
                    after_claim,
                    &stems,
                    &labels,
                    &format!("{path}:{}", k + 1),
                ));
            }
        }
    }
    (claims, problems)
}

/// A mention is a label reference if it follows "claim" or starts with a proofs file's stem; it
/// must then name an existing claim.
fn mention_problem(
    token: &str,
    after_claim: bool,
    stems: &BTreeSet<String>,
    labels: &BTreeSet<&str>,
    at: &str,
) -> Option<String> {
    let stem = token.split('.').next().unwrap_or("");
    let is_reference = after_claim || stems.contains(stem);
    (is_reference && !labels.contains(token))
        .then(|| format!("{at}: mentions claim {token}, which does not exist in proofs/"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn proofs_files(root: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(root.join("proofs"))
        .expect("proofs/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {name}: {e}"));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn source_files(root: &Path) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    for dir in SOURCE_DIRS {
        rust_files(&root.join(dir), &mut paths);
    }
    paths
        .into_iter()
        .filter_map(|p| {
            let text = fs::read_to_string(&p).ok()?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            Some((rel, text))
        })
        .collect()
}

#[test]
fn every_claim_names_a_real_test_and_every_mention_a_real_claim() {
    let root = root();
    let files = proofs_files(&root);
    assert!(!files.is_empty(), "no proofs/*.md");
    let sources = source_files(&root);
    assert!(
        sources.iter().any(|(p, _)| p.ends_with("proofs.rs")),
        "the source scan missed tests/"
    );
    let mut repo = Repo::new(&root);
    let (claims, problems) = problems_of(&files, &mut repo, NOT_YET_CHECKED, &sources);
    for (file, _) in &files {
        let of_file: Vec<&Claim> = claims.iter().filter(|c| &c.file == file).collect();
        let open = of_file
            .iter()
            .filter(|c| c.checks == Checks::NoneYet)
            .count();
        let tests: usize = of_file
            .iter()
            .map(|c| match &c.checks {
                Checks::Tests(t) => t.len(),
                _ => 0,
            })
            .sum();
        println!(
            "proofs/{file}: {} claims, {open} without a test yet, {tests} checks",
            of_file.len()
        );
    }
    for (label, needed) in NOT_YET_CHECKED {
        println!("not yet checked: {label}: {needed}");
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) between proofs/ and the tests:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The parser on synthetic input: a claim without a check is reported with its file and label,
/// and so are the other defects the cross-check exists for. (Labels are spelled with `@` for
/// the stem, replaced at run time, so that this file itself mentions no nonexistent claim.)
#[test]
fn the_cross_check_reports_what_it_should() {
    let md = |s: &str| s.replace('@', "demo");
    // A claim with no `Checked by:` before the next heading.
    let missing = md("## 1. One\n\n**Claim @.1.1.**\nA statement.\n\n## 2. Two\n");
    let parsed = parse("demo.md", &missing);
    assert_eq!(parsed.claims.len(), 1);
    assert_eq!(parsed.claims[0].checks, Checks::Missing);
    assert!(
        parsed.problems.iter().any(|p| p.contains("proofs/demo.md")
            && p.contains("demo.1.1")
            && p.contains("no `Checked by:`")),
        "{:?}",
        parsed.problems
    );
    // The same at the end of the file, and for an unchecked claim inside a bullet.
    let parsed = parse("demo.md", &md("- **Claim @.1.2.** A bullet claim.\n"));
    assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);

    // A well-formed file: nested claims close innermost first, continuation lines are skipped.
    let good = md(
        "## 1. One\n\n**Claim @.1.1.**\nOuter.\n\n- **Claim @.1.2.** Inner.\n  \
                   Checked by: (none yet)\n\nChecked by:\n- `tests/proofs.rs: \
                   the_cross_check_reports_what_it_should` (this test,\n  over two lines)\n\
                   - `tests/proofs.rs: every_claim_names_a_real_test_and_every_mention_a_real_claim`\n",
    );
    let parsed = parse("demo.md", &good);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert_eq!(parsed.claims[1].checks, Checks::NoneYet);
    match &parsed.claims[0].checks {
        Checks::Tests(items) => assert_eq!(items.len(), 2),
        other => panic!("{other:?}"),
    }
    let mut repo = Repo::new(&root());
    let files = vec![("demo.md".to_string(), good.clone())];
    let allowed = [("demo.1.2", "a synthetic gap")];
    let (_, problems) = problems_of(&files, &mut repo, &allowed, &[]);
    assert!(problems.is_empty(), "{problems:?}");
    // Without the allow-list the (none yet) claim fails; an allow-listed label that does not
    // exist, or that has a check, fails too.
    let (_, problems) = problems_of(&files, &mut repo, &[], &[]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("demo.1.2") && p.contains("NOT_YET_CHECKED"))
    );
    let stale = [("demo.1.2", ""), ("demo.1.1", ""), ("demo.9.9", "")];
    let (_, problems) = problems_of(&files, &mut repo, &stale, &[]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("demo.1.1") && p.contains("now has a check"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("demo.9.9") && p.contains("not a claim"))
    );

    // Checks naming a missing file, a missing function, a helper that is not a test; a
    // duplicate label; a malformed label; text after `Checked by:`; an orphan `Checked by:`.
    let bad = md(
        "## 1. One\n\n**Claim @.1.1.**\nA.\n\nChecked by:\n- `tests/no_such_file.rs: x`\n\
                  - `tests/proofs.rs: no_such_test_function`\n- `tests/proofs.rs: parse`\n\n\
                  **Claim @.1.1.**\nB.\n\nChecked by: something\n\n**Claim @.x.**\nC.\n\n\
                  Checked by: (none yet)\n\nChecked by: (none yet)\n",
    );
    let files = vec![("demo.md".to_string(), bad)];
    let (_, problems) = problems_of(&files, &mut repo, &[("demo.x", "")], &[]);
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has("tests/no_such_file.rs`, which does not exist"),
        "{problems:?}"
    );
    assert!(has("no `fn no_such_test_function(`"), "{problems:?}");
    assert!(has("`fn parse` is not a #[test]"), "{problems:?}");
    assert!(has("label demo.1.1 already used"), "{problems:?}");
    assert!(has("malformed claim label `demo.x`"), "{problems:?}");
    assert!(
        has("must be followed by `(none yet)` or by nothing"),
        "{problems:?}"
    );
    assert!(has("follows no open claim"), "{problems:?}");

    // A source comment naming a label that does not exist (by stem or after "claim"), and one
    // that does.
    let files = vec![("demo.md".to_string(), good)];
    let sources = vec![(
        "src/x.rs".to_string(),
        md("// checks @.1.1\n/// Checks claim @.3.1 and claims @@.2.2\nlet v = \"0.1.0\";\n"),
    )];
    let (_, problems) = problems_of(&files, &mut repo, &allowed, &sources);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("src/x.rs:2") && p.contains("demo.3.1"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("src/x.rs:2") && p.contains("demodemo.2.2"))
    );
}

#[test]
fn code_spans_and_label_tokens() {
    assert_eq!(
        code_spans("a `x.rs: f` and `` `y` `` and `unclosed"),
        vec!["x.rs: f".to_string(), "`y`".to_string()]
    );
    assert_eq!(
        split_reference("sim/src/a.rs: test_1"),
        Some(("sim/src/a.rs".to_string(), "test_1".to_string()))
    );
    assert_eq!(split_reference("power:2"), None);
    assert_eq!(split_reference("a.rs: not an ident"), None);
    let found = label_mentions("see claim gaussian.2.1, markov.10.2. and x1.2.3, e.g. 0.1.0");
    assert_eq!(
        found,
        vec![
            ("gaussian.2.1".to_string(), true),
            ("markov.10.2".to_string(), false)
        ]
    );
}
