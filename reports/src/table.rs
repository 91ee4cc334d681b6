//! Long-form theory-vs-simulation tables: one row per (experiment, quantity, generation).
//!
//! Long form keeps every comparison in one schema, so Parquet/CSV consumers can filter
//! and pivot without knowing which experiments exist.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::ReportError;

/// One row of the long-form comparison table.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    /// Experiment name, e.g. "gaussian-unbiased-sufficient".
    pub experiment: String,
    /// Compared quantity, e.g. "variance", "log_variance", "w2_sq".
    pub quantity: String,
    pub generation: u64,
    /// `None` where no closed form exists (quantiles).
    pub theory: Option<f64>,
    pub empirical: f64,
    /// Standard error of `empirical`; NaN where not defined.
    pub stderr: f64,
    /// `None` where theory and simulation are not compared.
    pub z: Option<f64>,
    /// False when the Monte Carlo mean cannot estimate this at the run's size (heavy tail).
    pub mc_feasible: bool,
    /// "exact" | "sufficient".
    pub method: String,
    /// "unbiased" | "mle".
    pub estimator: String,
    /// e.g. "constant", "power:1.5".
    pub schedule: String,
    /// Samples per generation (M).
    pub samples: u64,
    /// Independent chains (R).
    pub chains: u64,
    pub seed: u64,
}

/// Column names of [`comparison_frame`], in order (also the CSV header).
pub const COLUMNS: [&str; 14] = [
    "experiment",
    "quantity",
    "generation",
    "theory",
    "empirical",
    "stderr",
    "z",
    "mc_feasible",
    "method",
    "estimator",
    "schedule",
    "samples",
    "chains",
    "seed",
];

/// Build the comparison DataFrame; row order is the input order, so output is deterministic.
pub fn comparison_frame(rows: &[ComparisonRow]) -> Result<DataFrame, ReportError> {
    fn strs<'a>(
        rows: &'a [ComparisonRow],
        f: impl Fn(&'a ComparisonRow) -> &'a str,
    ) -> Vec<&'a str> {
        rows.iter().map(f).collect()
    }
    fn u64s(rows: &[ComparisonRow], f: impl Fn(&ComparisonRow) -> u64) -> Vec<u64> {
        rows.iter().map(f).collect()
    }
    let col = |i: usize| PlSmallStr::from_static(COLUMNS[i]);
    let columns = vec![
        Column::new(col(0), strs(rows, |r| &r.experiment)),
        Column::new(col(1), strs(rows, |r| &r.quantity)),
        Column::new(col(2), u64s(rows, |r| r.generation)),
        Column::new(col(3), rows.iter().map(|r| r.theory).collect::<Vec<_>>()),
        Column::new(col(4), rows.iter().map(|r| r.empirical).collect::<Vec<_>>()),
        Column::new(col(5), rows.iter().map(|r| r.stderr).collect::<Vec<_>>()),
        Column::new(col(6), rows.iter().map(|r| r.z).collect::<Vec<_>>()),
        Column::new(
            col(7),
            rows.iter().map(|r| r.mc_feasible).collect::<Vec<_>>(),
        ),
        Column::new(col(8), strs(rows, |r| &r.method)),
        Column::new(col(9), strs(rows, |r| &r.estimator)),
        Column::new(col(10), strs(rows, |r| &r.schedule)),
        Column::new(col(11), u64s(rows, |r| r.samples)),
        Column::new(col(12), u64s(rows, |r| r.chains)),
        Column::new(col(13), u64s(rows, |r| r.seed)),
    ];
    Ok(DataFrame::new(rows.len(), columns)?)
}

/// Write the frame as Parquet and CSV, each atomically (temp file, fsync, rename), so a
/// crash or error never leaves a half-written table where a reader expects a whole one.
pub fn write_frame(
    df: &mut DataFrame,
    parquet_path: &Path,
    csv_path: &Path,
) -> Result<(), ReportError> {
    write_atomic(parquet_path, |w| {
        ParquetWriter::new(w).finish(df)?;
        Ok(())
    })?;
    write_atomic(csv_path, |w| {
        CsvWriter::new(w).include_header(true).finish(df)?;
        Ok(())
    })
}

/// Write the frame as Parquet, atomically.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), ReportError> {
    write_atomic(path, |w| {
        ParquetWriter::new(w).finish(df)?;
        Ok(())
    })
}

/// A frame of four columns named `names`, one row per tuple of `rows`.
pub fn four_columns<A, B, C, D>(
    names: [&str; 4],
    rows: impl IntoIterator<Item = (A, B, C, D)>,
) -> Result<DataFrame, ReportError>
where
    Series: NamedFrom<Vec<A>, [A]>
        + NamedFrom<Vec<B>, [B]>
        + NamedFrom<Vec<C>, [C]>
        + NamedFrom<Vec<D>, [D]>,
{
    let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
    for (w, x, y, z) in rows {
        a.push(w);
        b.push(x);
        c.push(y);
        d.push(z);
    }
    Ok(DataFrame::new(
        a.len(),
        vec![
            Column::new(names[0].into(), a),
            Column::new(names[1].into(), b),
            Column::new(names[2].into(), c),
            Column::new(names[3].into(), d),
        ],
    )?)
}

/// A run's summary table: one row per (generation, metric) with the mean and standard error
/// over seeds.
pub fn summary_frame(
    rows: impl IntoIterator<Item = (u64, String, collapse_sim::stats::MeanError)>,
) -> Result<DataFrame, ReportError> {
    four_columns(
        ["generation", "metric", "mean", "stderr"],
        rows.into_iter()
            .map(|(g, name, m)| (g, name, m.mean, m.stderr)),
    )
}

/// A run's long table: one row per (seed, generation, metric) with its value. `G`, the
/// generation column's type, is `Option<u64>` where some rows (per-seed quantities) have none;
/// `M`, the metric's, `&str` or `String`.
pub fn long_frame<G, M>(
    rows: impl IntoIterator<Item = (u64, G, M, f64)>,
) -> Result<DataFrame, ReportError>
where
    Series: NamedFrom<Vec<G>, [G]> + NamedFrom<Vec<M>, [M]>,
{
    four_columns(["seed", "generation", "metric", "value"], rows)
}

/// Read a Parquet file back (round-trip checks).
pub fn read_parquet(path: &Path) -> Result<DataFrame, ReportError> {
    let file = File::open(path).map_err(io_err(path))?;
    Ok(ParquetReader::new(file).finish()?)
}

/// GitHub-style Markdown table of selected rows, for index.md.
pub fn markdown_table(rows: &[&ComparisonRow]) -> String {
    let mut out =
        String::from("| quantity | generation | theory | empirical | stderr | z | feasible |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|:---:|\n");
    for r in rows {
        let cells = display_cells(r);
        out.push('|');
        for c in &cells {
            out.push(' ');
            out.push_str(&c.replace('|', "\\|"));
            out.push_str(" |");
        }
        out.push('\n');
    }
    out
}

/// The same table as HTML, with text escaped.
pub fn html_table(rows: &[&ComparisonRow]) -> String {
    let mut out = String::from("<table>\n<thead>\n<tr>");
    for h in [
        "quantity",
        "generation",
        "theory",
        "empirical",
        "stderr",
        "z",
        "feasible",
    ] {
        out.push_str("<th>");
        out.push_str(h);
        out.push_str("</th>");
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in display_cells(r) {
            out.push_str("<td>");
            out.push_str(&html_escape(&c));
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Cells shared by the Markdown and HTML tables, unescaped.
fn display_cells(r: &ComparisonRow) -> [String; 7] {
    [
        r.quantity.clone(),
        r.generation.to_string(),
        fmt_opt(r.theory),
        fmt_sig(r.empirical),
        fmt_sig(r.stderr),
        fmt_opt(r.z),
        if r.mc_feasible { "yes" } else { "no" }.to_string(),
    ]
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_string(), fmt_sig)
}

/// Six significant digits, `%g` style (trailing zeros trimmed); "—" for NaN.
pub fn fmt_sig(x: f64) -> String {
    if x.is_nan() {
        return "—".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    // The exponent after rounding to 6 digits decides fixed vs scientific, as in C's %g.
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-5..6).contains(&exp) {
        format!("{}e{exp}", trim_zeros(mantissa))
    } else {
        let decimals = (5 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Temporary sibling of `path`: same directory (so the rename is atomic), hidden name
/// ".<file>.tmp" followed by `suffix` (which lets encoders that sniff the extension work).
pub(crate) fn temp_path(path: &Path, suffix: &str) -> Result<PathBuf, ReportError> {
    let name = path
        .file_name()
        .ok_or_else(|| ReportError::Invalid(format!("not a file path: {}", path.display())))?;
    let tmp = format!(".{}.tmp{suffix}", name.to_string_lossy());
    Ok(match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(tmp),
        _ => PathBuf::from(tmp),
    })
}

/// Flush, fsync and rename `tmp` onto `path`; the caller removes `tmp` on error.
pub(crate) fn sync_and_rename(tmp: &Path, path: &Path) -> Result<(), ReportError> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(tmp))?;
    rename_into_place(tmp, path)
}

/// Rename, then (best effort) fsync the directory so the new entry survives a crash too.
fn rename_into_place(tmp: &Path, path: &Path) -> Result<(), ReportError> {
    std::fs::rename(tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Write `path` through a temporary file so readers see either the old or the complete new file.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let tmp = temp_path(path, "")?;
    let result = (|| {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush().map_err(io_err(&tmp))?;
        let file = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        rename_into_place(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// "rose" or "fell" from `a` to `b`.
pub fn moved(a: f64, b: f64) -> &'static str {
    if b > a { "rose" } else { "fell" }
}

/// `x` rounded to `digits` significant digits, as `fmt_sig` prints it.
pub fn sig(x: f64, digits: i32) -> String {
    if !x.is_finite() || x == 0.0 {
        return fmt_sig(x);
    }
    let scale = 10f64.powi(x.abs().log10().floor() as i32 - (digits - 1));
    fmt_sig((x / scale).round() * scale)
}

/// "mean ± stderr" (4 and 2 significant digits), or the mean alone without a standard error.
pub fn mean_se(m: collapse_sim::stats::MeanError) -> String {
    if m.stderr.is_finite() {
        format!("{} ± {}", sig(m.mean, 4), sig(m.stderr, 2))
    } else {
        sig(m.mean, 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(generation: u64, theory: Option<f64>, z: Option<f64>, feasible: bool) -> ComparisonRow {
        ComparisonRow {
            experiment: "gaussian-unbiased-sufficient".into(),
            quantity: "variance".into(),
            generation,
            theory,
            empirical: 0.5 + generation as f64,
            stderr: if generation == 2 { f64::NAN } else { 0.01 },
            z,
            mc_feasible: feasible,
            method: "sufficient".into(),
            estimator: "unbiased".into(),
            schedule: "power:1.5".into(),
            samples: 100,
            chains: 4000,
            seed: 42,
        }
    }

    fn rows() -> Vec<ComparisonRow> {
        vec![
            row(0, Some(1.0), Some(0.0), true),
            row(1, None, None, true),
            row(2, Some(3.25), Some(-1.5), false),
        ]
    }

    /// A fresh directory per test; removed by the test on success.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "collapse-reports-table-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn frame_columns_dtypes_and_nulls() {
        let df = comparison_frame(&rows()).unwrap();
        assert_eq!(df.height(), 3);
        let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
        assert_eq!(names, COLUMNS);
        let dtypes = df.dtypes();
        let expected = [
            DataType::String,
            DataType::String,
            DataType::UInt64,
            DataType::Float64,
            DataType::Float64,
            DataType::Float64,
            DataType::Float64,
            DataType::Boolean,
            DataType::String,
            DataType::String,
            DataType::String,
            DataType::UInt64,
            DataType::UInt64,
            DataType::UInt64,
        ];
        assert_eq!(dtypes, expected);
        assert_eq!(df.column("theory").unwrap().null_count(), 1);
        assert_eq!(df.column("z").unwrap().null_count(), 1);
        assert_eq!(df.column("stderr").unwrap().null_count(), 0);
        let generation = df.column("generation").unwrap().u64().unwrap();
        assert_eq!(
            generation.iter().collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2)]
        );
        let theory = df.column("theory").unwrap().f64().unwrap();
        assert_eq!(theory.get(1), None);
        assert_eq!(theory.get(2), Some(3.25));
        assert!(comparison_frame(&[]).unwrap().height() == 0);
    }

    #[test]
    fn parquet_round_trip_and_csv_header() {
        let dir = scratch("roundtrip");
        let (pq, csv) = (dir.join("cmp.parquet"), dir.join("cmp.csv"));
        let mut df = comparison_frame(&rows()).unwrap();
        write_frame(&mut df, &pq, &csv).unwrap();
        let back = read_parquet(&pq).unwrap();
        assert_eq!(back.schema(), df.schema());
        // NaN != NaN, so compare stderr by bits and the rest with polars' null-aware equality.
        let bits = |d: &DataFrame| -> Vec<Option<u64>> {
            d.column("stderr")
                .unwrap()
                .f64()
                .unwrap()
                .iter()
                .map(|x| x.map(f64::to_bits))
                .collect()
        };
        assert_eq!(bits(&back), bits(&df));
        let no_nan = |d: &DataFrame| d.drop("stderr").unwrap();
        assert!(no_nan(&back).equals_missing(&no_nan(&df)));

        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(text.lines().count(), 4);
        // Only the two outputs remain: no temporary files.
        assert_eq!(entries(&dir), ["cmp.csv", "cmp.parquet"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nonexistent_directory_errors_and_leaves_nothing() {
        let dir = scratch("missing");
        let gone = dir.join("does-not-exist");
        let mut df = comparison_frame(&rows()).unwrap();
        let err = write_frame(&mut df, &gone.join("a.parquet"), &gone.join("a.csv"));
        assert!(matches!(err, Err(ReportError::Io { .. })));
        assert!(!gone.exists());
        assert!(entries(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_removes_temp_file() {
        let dir = scratch("failed");
        let path = dir.join("x.csv");
        let err = write_atomic(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(ReportError::Invalid("boom".into()))
        });
        assert!(err.is_err());
        assert!(entries(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn significant_digits() {
        assert_eq!(fmt_sig(1.0), "1");
        assert_eq!(fmt_sig(0.0), "0");
        assert_eq!(fmt_sig(1.23456789), "1.23457");
        assert_eq!(fmt_sig(-2.5), "-2.5");
        assert_eq!(fmt_sig(123456.7), "123457");
        assert_eq!(fmt_sig(999999.7), "1e6");
        assert_eq!(fmt_sig(1234567.0), "1.23457e6");
        assert_eq!(fmt_sig(0.000123456789), "0.000123457");
        assert_eq!(fmt_sig(1.5e-7), "1.5e-7");
        assert_eq!(fmt_sig(f64::NAN), "—");
        assert_eq!(fmt_sig(f64::INFINITY), "inf");
    }

    #[test]
    fn markdown_formatting() {
        let rs = rows();
        let refs: Vec<&ComparisonRow> = rs.iter().collect();
        let md = markdown_table(&refs);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            "| quantity | generation | theory | empirical | stderr | z | feasible |"
        );
        assert_eq!(lines[1], "|---|---:|---:|---:|---:|---:|:---:|");
        assert_eq!(lines[2], "| variance | 0 | 1 | 0.5 | 0.01 | 0 | yes |");
        assert_eq!(lines[3], "| variance | 1 | — | 1.5 | 0.01 | — | yes |");
        assert_eq!(lines[4], "| variance | 2 | 3.25 | 2.5 | — | -1.5 | no |");
    }

    #[test]
    fn html_escapes_text() {
        let mut r = row(0, None, None, true);
        r.quantity = "a<b & \"c\"".into();
        let html = html_table(&[&r]);
        assert!(html.starts_with("<table>"));
        assert!(html.contains("<td>a&lt;b &amp; &quot;c&quot;</td>"));
        assert!(html.contains("<td>—</td>"));
        assert!(!html.contains("a<b"));
    }
}
