//! A report section in a generic form (heading, introduction, blocks of text, tables and figures),
//! rendered to both `index.md` and `index.html`. The `mvn`, `schedules`, `strategies` and `gmm`
//! sections are built this way; each writes its own files under `<out>/<dir>/`.

use crate::ReportError;
use crate::figure::{Figure, render};
use crate::table::{ComparisonRow, html_escape, html_table, markdown_table};
use std::fmt::Write as _;
use std::path::Path;

/// A plain table of text cells (e.g. the schedule classification).
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn markdown(&self) -> String {
        let esc = |c: &str| c.replace('|', "\\|");
        let mut s = String::from("|");
        for h in &self.header {
            let _ = write!(s, " {} |", esc(h));
        }
        s.push_str("\n|");
        for _ in &self.header {
            s.push_str("---|");
        }
        s.push('\n');
        for row in &self.rows {
            s.push('|');
            for c in row {
                let _ = write!(s, " {} |", esc(c));
            }
            s.push('\n');
        }
        s
    }

    pub fn html(&self) -> String {
        let mut s = String::from("<table>\n<thead>\n<tr>");
        for h in &self.header {
            let _ = write!(s, "<th>{}</th>", html_escape(h));
        }
        s.push_str("</tr>\n</thead>\n<tbody>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for c in row {
                let _ = write!(s, "<td>{}</td>", html_escape(c));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</tbody>\n</table>\n");
        s
    }
}

/// One part of a section: a heading, a paragraph, then optional tables and figures.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// `###` heading (empty: none).
    pub name: String,
    pub text: String,
    pub text_table: Option<TextTable>,
    /// Selected comparison rows (rendered like the Gaussian section's tables).
    pub rows: Vec<ComparisonRow>,
    /// (file stem, title) of figures in the section's folder.
    pub figures: Vec<(String, String)>,
}

/// A rendered section of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Folder under the report's output directory, e.g. "mvn".
    pub dir: String,
    /// `##` heading.
    pub title: String,
    pub intro: String,
    /// Data files of the section (relative to its folder), listed under the introduction.
    pub files: Vec<String>,
    pub blocks: Vec<Block>,
    pub experiments: usize,
    /// Pairs with a z-score.
    pub comparisons: usize,
    /// Largest |z| among them (0 if none).
    pub worst_z: f64,
    pub seconds: f64,
}

impl Section {
    /// A section whose data files are its comparison table (`comparison.parquet`, `.csv`) and
    /// whose z summary is that of `rows`, timed from `start`.
    pub fn compared(
        (dir, title, intro): (&str, &str, &str),
        blocks: Vec<Block>,
        experiments: usize,
        rows: &[ComparisonRow],
        start: std::time::Instant,
    ) -> Section {
        let (comparisons, worst_z) = z_stats(rows);
        Section {
            dir: dir.into(),
            title: title.into(),
            intro: intro.into(),
            files: vec!["comparison.parquet".into(), "comparison.csv".into()],
            blocks,
            experiments,
            comparisons,
            worst_z,
            seconds: start.elapsed().as_secs_f64(),
        }
    }
}

/// (count of z-scored rows, largest |z|).
pub fn z_stats(rows: &[ComparisonRow]) -> (usize, f64) {
    rows.iter()
        .filter_map(|r| r.z)
        .fold((0, 0.0), |(n, w), z| (n + 1, f64::max(w, z.abs())))
}

/// Renders each (stem, figure) to `dir/stem.svg` and `dir/stem.png`; returns (stem, title).
pub fn render_figures(
    dir: &Path,
    figures: Vec<(String, Figure)>,
) -> Result<Vec<(String, String)>, ReportError> {
    figures
        .into_iter()
        .map(|(stem, fig)| {
            render(
                &fig,
                &dir.join(format!("{stem}.svg")),
                &dir.join(format!("{stem}.png")),
            )?;
            Ok((stem, fig.title))
        })
        .collect()
}

impl Section {
    /// One line for the report's summary: experiments, pairs, worst |z| and runtime.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} experiments, {} compared pairs, worst |z| = {:.2}, {:.1} s",
            self.dir, self.experiments, self.comparisons, self.worst_z, self.seconds
        )
    }

    fn files_line(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("`{}/{f}`", self.dir))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## {}\n\n{}\n", self.title, self.intro);
        let _ = writeln!(
            s,
            "{} experiments, {} compared pairs, worst |z| = {:.2}, runtime {:.1} s. Tables: {}.\n",
            self.experiments,
            self.comparisons,
            self.worst_z,
            self.seconds,
            self.files_line()
        );
        for b in &self.blocks {
            if !b.name.is_empty() {
                let _ = writeln!(s, "### {}\n", b.name);
            }
            if !b.text.is_empty() {
                let _ = writeln!(s, "{}\n", b.text);
            }
            if let Some(t) = &b.text_table {
                let _ = writeln!(s, "{}", t.markdown());
            }
            if !b.rows.is_empty() {
                let refs: Vec<&ComparisonRow> = b.rows.iter().collect();
                let _ = writeln!(s, "{}", markdown_table(&refs));
            }
            for (stem, title) in &b.figures {
                let _ = writeln!(s, "![{title}]({}/{stem}.png)\n", self.dir);
            }
        }
        s
    }

    /// The section as HTML, figures inlined from the SVG files under `out_dir/dir`.
    pub fn html(&self, out_dir: &Path) -> Result<String, ReportError> {
        let dir = out_dir.join(&self.dir);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<h2>{}</h2><p class=\"note\">{}</p>",
            html_escape(&self.title),
            html_escape(&self.intro)
        );
        let files: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("<code>{}/{}</code>", self.dir, html_escape(f)))
            .collect();
        let _ = writeln!(
            s,
            "<p>{} experiments, {} compared pairs, worst |z| = {:.2}, runtime {:.1} s. Tables: {}.</p>",
            self.experiments,
            self.comparisons,
            self.worst_z,
            self.seconds,
            files.join(", ")
        );
        for b in &self.blocks {
            if !b.name.is_empty() {
                let _ = writeln!(s, "<h3>{}</h3>", html_escape(&b.name));
            }
            if !b.text.is_empty() {
                let _ = writeln!(s, "<p class=\"note\">{}</p>", html_escape(&b.text));
            }
            if let Some(t) = &b.text_table {
                s.push_str(&t.html());
            }
            if !b.rows.is_empty() {
                let refs: Vec<&ComparisonRow> = b.rows.iter().collect();
                s.push_str(&html_table(&refs));
            }
            for (stem, _) in &b.figures {
                let _ = writeln!(s, "<figure>{}</figure>", inline_svg(&dir, stem)?);
            }
        }
        Ok(s)
    }
}

/// The SVG file `dir/stem.svg` for inlining (an XML declaration dropped: inline SVG starts at
/// `<svg`).
pub fn inline_svg(dir: &Path, stem: &str) -> Result<String, ReportError> {
    let path = dir.join(format!("{stem}.svg"));
    let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text
        .find("<svg")
        .map(|i| text[i..].to_string())
        .unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables_escape() {
        let t = TextTable {
            header: vec!["a|b".into(), "c".into()],
            rows: vec![vec!["<x>".into(), "1".into()]],
        };
        let md = t.markdown();
        assert!(md.starts_with("| a\\|b | c |\n|---|---|\n| <x> | 1 |"));
        let html = t.html();
        assert!(html.contains("<td>&lt;x&gt;</td>") && !html.contains("<x>"));
    }
}
