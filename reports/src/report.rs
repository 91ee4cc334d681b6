//! The report: every experiment of a scale, its tables and figures, and `index.html` (self
//! contained: figures inlined as SVG) and `index.md` listing parameters, seed, scale, runtime
//! and the worst |z| of every theory/simulation pair.

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure};
use crate::gaussian::{Experiment, Outcome, figures, run_experiment};
use crate::markov::MarkovOutcome;
use crate::section::{Section, render_figures as render_all};
use crate::table::{
    ComparisonRow, comparison_frame, fmt_sig, html_escape, html_table, markdown_table,
    write_atomic, write_frame,
};
use collapse_analysis::Estimator;
use collapse_analysis::gaussian::w2_limit;
use collapse_sim::gaussian::Method;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The seed of every report run (changing it is a conscious decision: the report says which).
pub const REPORT_SEED: u64 = 20_240_724;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Seconds: used by tests and CI.
    Smoke,
    /// A few minutes on 2 cores: the main job.
    Default,
    /// Ten times the chains of `default`.
    Paper,
}

impl Scale {
    pub fn parse(text: &str) -> Result<Scale, ReportError> {
        match text {
            "smoke" => Ok(Scale::Smoke),
            "default" => Ok(Scale::Default),
            "paper" => Ok(Scale::Paper),
            other => Err(ReportError::Invalid(format!(
                "invalid scale: '{other}' (expected smoke, default or paper)"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Scale::Smoke => "smoke",
            Scale::Default => "default",
            Scale::Paper => "paper",
        }
    }
    /// (K, M, N, R) of the Zipf experiments of the markov section.
    fn markov_size(self) -> (u64, u64, u64, u64) {
        match self {
            Scale::Smoke => (12, 30, 30, 2_000),
            Scale::Default => (40, 50, 100, 20_000),
            Scale::Paper => (40, 50, 100, 200_000),
        }
    }
    /// Largest M of the exact-vs-diffusion E[T] figure.
    fn markov_largest_samples(self) -> u32 {
        match self {
            Scale::Smoke => 32,
            Scale::Default | Scale::Paper => 256,
        }
    }
    /// (M, N, R) of the Gaussian experiments.
    fn gaussian_size(self) -> (u64, u64, u64) {
        match self {
            Scale::Smoke => (20, 60, 2_000),
            Scale::Default => (100, 2_000, 10_000),
            Scale::Paper => (100, 2_000, 100_000),
        }
    }
}

/// The experiments of a scale: both estimators with both methods at constant M, and the
/// schedule comparison (linear, power:1.5) with the unbiased estimator.
pub fn gaussian_experiments(scale: Scale, seed: u64) -> Result<Vec<Experiment>, ReportError> {
    let (m, n, r) = scale.gaussian_size();
    let mut list = Vec::new();
    for estimator in [Estimator::Unbiased, Estimator::Mle] {
        for method in [Method::Exact, Method::Sufficient] {
            list.push(Experiment::new(
                m, "constant", estimator, method, n, r, seed,
            )?);
        }
    }
    for schedule in ["linear", "power:1.5"] {
        list.push(Experiment::new(
            m,
            schedule,
            Estimator::Unbiased,
            Method::Sufficient,
            n,
            r,
            seed,
        )?);
    }
    Ok(list)
}

/// What a report run produced.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub out_dir: PathBuf,
    pub experiments: usize,
    pub comparisons: usize,
    pub worst_z: f64,
    pub seconds: f64,
    /// Per section: (folder, experiments, compared pairs, worst |z|).
    pub sections: Vec<(String, usize, usize, f64)>,
}

/// Generations shown in the report's tables: 0, 1, 2, 5, 10, 20, 50, ... and N.
pub(crate) fn table_generations(n: u64) -> Vec<u64> {
    let mut g = vec![0];
    let mut decade = 1;
    while decade <= n {
        for k in [1, 2, 5] {
            if k * decade <= n {
                g.push(k * decade);
            }
        }
        decade *= 10;
    }
    if *g.last().unwrap_or(&0) != n {
        g.push(n);
    }
    g
}

const TABLE_QUANTITIES: [&str; 6] = [
    "variance",
    "sigma",
    "log_variance",
    "var_log_variance",
    "mean_sq_error",
    "w2_sq",
];

/// Runs every experiment of `scale` and writes the report under `out_dir`.
pub fn run_report(scale: Scale, out_dir: &Path, seed: u64) -> Result<ReportSummary, ReportError> {
    let start = Instant::now();
    // The VAE's digits and the corpus first: a missing data set fails the report before
    // minutes of work.
    let vae_data = crate::vae::data(scale)?;
    let lm_corpus = crate::lm::corpus()?;
    let dir = out_dir.join("gaussian");
    create_dir(&dir)?;
    let experiments = gaussian_experiments(scale, seed)?;
    let mut outcomes = Vec::new();
    for e in &experiments {
        eprintln!("collapse report: running {} ...", e.name);
        outcomes.push(run_experiment(e)?);
    }
    let all_rows: Vec<ComparisonRow> = outcomes
        .iter()
        .flat_map(|o| o.rows.iter().cloned())
        .collect();
    write_comparison(&dir, &all_rows)?;
    let figure_files = outcomes
        .iter()
        .map(|o| render_all(&dir, figures(o)))
        .collect::<Result<Vec<_>, _>>()?;
    let schedule_stem = "gaussian-schedules-w2_sq".to_string();
    render_all(
        &dir,
        vec![(schedule_stem.clone(), schedule_figure(&outcomes))],
    )?;

    // The categorical chain (Wright–Fisher).
    let markov_dir = out_dir.join("markov");
    create_dir(&markov_dir)?;
    let markov_outcomes =
        crate::markov::run_experiments(&crate::markov::experiments(scale.markov_size(), seed)?)?;
    let markov_rows: Vec<ComparisonRow> = markov_outcomes
        .iter()
        .flat_map(|o| o.rows.iter().cloned())
        .collect();
    write_comparison(&markov_dir, &markov_rows)?;
    let markov_figs = markov_outcomes
        .iter()
        .map(|o| render_all(&markov_dir, crate::markov::figures(o)))
        .collect::<Result<Vec<_>, _>>()?;
    let absorption_stem = "markov-absorption-time-vs-samples".to_string();
    render_all(
        &markov_dir,
        vec![(
            absorption_stem.clone(),
            crate::markov::absorption_vs_samples_figure(scale.markov_largest_samples())?,
        )],
    )?;

    // The d-dimensional Gaussian, the schedules' phase diagram, the data strategies, the
    // Gaussian mixtures and the VAE on real digits.
    let sections: Vec<Section> = vec![
        crate::mvn::section(scale, out_dir, seed)?,
        crate::schedules::section(scale, out_dir, seed)?,
        crate::strategies::section(scale, out_dir, seed)?,
        crate::gmm::section(scale, out_dir, seed)?,
        crate::vae::section(scale, &vae_data, out_dir, seed)?,
        crate::lm::section(
            scale,
            &lm_corpus,
            out_dir,
            seed,
            crate::lm::ReportModel::Ngram,
        )?,
        crate::lm::section(
            scale,
            &lm_corpus,
            out_dir,
            seed,
            crate::lm::ReportModel::Transformer,
        )?,
    ];

    let gaussian_worst = outcomes.iter().map(Outcome::worst_z).fold(0.0, f64::max);
    let markov_worst = markov_outcomes
        .iter()
        .map(MarkovOutcome::worst_z)
        .fold(0.0, f64::max);
    let count = |rows: &[ComparisonRow]| rows.iter().filter(|r| r.z.is_some()).count();
    let mut per_section = vec![
        (
            "gaussian".to_string(),
            outcomes.len(),
            count(&all_rows),
            gaussian_worst,
        ),
        (
            "markov".to_string(),
            markov_outcomes.len(),
            count(&markov_rows),
            markov_worst,
        ),
    ];
    per_section.extend(
        sections
            .iter()
            .map(|s| (s.dir.clone(), s.experiments, s.comparisons, s.worst_z)),
    );
    let seconds = start.elapsed().as_secs_f64();
    let summary = ReportSummary {
        out_dir: out_dir.to_path_buf(),
        experiments: per_section.iter().map(|s| s.1).sum(),
        comparisons: per_section.iter().map(|s| s.2).sum(),
        worst_z: per_section.iter().map(|s| s.3).fold(0.0, f64::max),
        seconds,
        sections: per_section,
    };
    let page = Page {
        scale,
        seed,
        outcomes: &outcomes,
        figs: &figure_files,
        schedule_stem: &schedule_stem,
        markov: &markov_outcomes,
        markov_figs: &markov_figs,
        absorption_stem: &absorption_stem,
        sections: &sections,
        summary: &summary,
    };
    write_text(&out_dir.join("index.md"), &page.markdown())?;
    write_text(&out_dir.join("index.html"), &page.html(out_dir)?)?;
    Ok(summary)
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// A section's long-form table as `comparison.parquet` and `comparison.csv` in `dir`.
fn write_comparison(dir: &Path, rows: &[ComparisonRow]) -> Result<(), ReportError> {
    let mut df = comparison_frame(rows)?;
    write_frame(
        &mut df,
        &dir.join("comparison.parquet"),
        &dir.join("comparison.csv"),
    )
}

fn schedule_figure(outcomes: &[Outcome]) -> Figure {
    let mut curves = Vec::new();
    for o in outcomes.iter().filter(|o| {
        o.experiment.spec.estimator == Estimator::Unbiased
            && o.experiment.config.method == Method::Sufficient
    }) {
        let label = o.experiment.spec.schedule.label();
        let s: Vec<&ComparisonRow> = o.rows.iter().filter(|r| r.quantity == "w2_sq").collect();
        let x: Vec<f64> = s.iter().map(|r| r.generation as f64).collect();
        curves.push(Curve {
            label: format!("{label}: theory"),
            x: x.clone(),
            y: s.iter().map(|r| r.theory.unwrap_or(f64::NAN)).collect(),
            kind: CurveKind::Theory,
        });
        curves.push(Curve {
            label: format!("{label}: ensemble mean"),
            x,
            y: s.iter().map(|r| r.empirical).collect(),
            kind: CurveKind::Empirical {
                stderr: s.iter().map(|r| r.stderr).collect(),
                feasible: s.iter().map(|r| r.mc_feasible).collect(),
            },
        });
    }
    Figure {
        title: "E[W2^2] by sample-size schedule (unbiased, sufficient statistics)".into(),
        x_label: "generation n".into(),
        y_label: "W2^2".into(),
        log_y: true,
        curves,
    }
}

/// The report's headline: version, scale, seed, counts, worst |z| and runtime.
fn summary_line(scale: Scale, seed: u64, summary: &ReportSummary) -> String {
    format!(
        "collapse {} · scale `{}` · seed {} · {} experiments · {} compared pairs · worst |z| = {:.2} · runtime {:.1} s",
        env!("CARGO_PKG_VERSION"),
        scale.name(),
        seed,
        summary.experiments,
        summary.comparisons,
        summary.worst_z,
        summary.seconds
    )
}

/// Per section: experiments, compared pairs and worst |z|.
fn sections_line(summary: &ReportSummary) -> String {
    let parts: Vec<String> = summary
        .sections
        .iter()
        .map(|(name, e, c, w)| {
            format!("{name}: {e} experiments, {c} compared pairs, worst |z| = {w:.2}")
        })
        .collect();
    format!("By section — {}.", parts.join("; "))
}

/// Writes a text file atomically.
fn write_text(path: &Path, text: &str) -> Result<(), ReportError> {
    write_atomic(path, |w| {
        w.write_all(text.as_bytes())
            .map_err(|source| ReportError::Io {
                path: path.display().to_string(),
                source,
            })
    })
}

/// Computed sentences about the heavy tail of one experiment.
fn heavy_tail_note(o: &Outcome) -> String {
    let chains = o.experiment.config.chains;
    let rows = &o.theory.rows;
    let first_bad = |ok: &dyn Fn(&collapse_analysis::gaussian::Feasibility) -> bool| {
        rows.iter().find(|r| !ok(&r.feasibility)).map(|r| r.n)
    };
    let last = rows.last().expect("N >= 1");
    let rv = last.feasibility.variance;
    let mut s = String::new();
    match first_bad(&|f| f.variance_ok(chains)) {
        Some(n) => {
            let _ = write!(
                s,
                "E[sigma_n^2] is not estimable by a mean over {chains} chains from generation {n} on: at n = {} the relative variance of sigma_n^2 is {} (a 10% relative error would need {} chains). ",
                last.n,
                fmt_sig(rv),
                fmt_sig(rv / 0.01)
            );
        }
        None => {
            let _ = write!(
                s,
                "E[sigma_n^2] is estimable at every generation with {chains} chains. "
            );
        }
    }
    if let Some(n) = first_bad(&|f| f.w2_sq_ok(chains)) {
        let _ = write!(s, "E[W2^2] is not estimable from generation {n} on. ");
    }
    s.push_str("Those means live in rare chains; the log-moments, E[sigma_n] where feasible and the quantiles carry the comparison there.");
    s
}

fn limit_note(o: &Outcome) -> String {
    let spec = &o.experiment.spec;
    match w2_limit(&spec.schedule, spec.estimator, spec.sigma, 4096, 128) {
        Ok(l) if l.bounded => match l.limit {
            Some(b) => format!(
                "E[W2^2] stays bounded: limit {} (certified to {} digits).",
                b.to_decimal(b.certified_digits().clamp(1, 12)),
                b.certified_digits().min(40)
            ),
            None => "E[W2^2] stays bounded.".into(),
        },
        Ok(_) => "E[W2^2] grows without bound (sum of 1/M_i diverges).".into(),
        Err(e) => format!("limit not computed: {e}"),
    }
}

fn experiment_header(o: &Outcome) -> (String, Vec<ComparisonRow>) {
    let e = &o.experiment;
    let header = format!(
        "estimator {}, method {}, schedule {}, M = {}, N = {}, R = {} chains, seed {}; runtime {:.1} s; {} compared pairs, worst |z| = {:.2}. {} {}",
        e.spec.estimator.name(),
        e.config.method.name(),
        e.spec.schedule.label(),
        e.spec.schedule.base,
        e.spec.generations,
        e.config.chains,
        e.config.seed,
        o.seconds,
        o.rows.iter().filter(|r| r.z.is_some()).count(),
        o.worst_z(),
        heavy_tail_note(o),
        limit_note(o),
    );
    let gens = table_generations(e.spec.generations);
    let gens = &gens;
    let rows: Vec<ComparisonRow> = TABLE_QUANTITIES
        .iter()
        .flat_map(|q| {
            o.rows
                .iter()
                .filter(move |r| r.quantity == *q && gens.contains(&r.generation))
                .cloned()
        })
        .collect();
    (header, rows)
}

const INTRO: &str = "Each generation of a 1-D Gaussian is re-fitted (sample mean and variance) to samples of the previous generation (Shumailov et al., The Curse of Recursion). Theory: exact closed forms in arbitrary precision (collapse-analysis, derivations in proofs/gaussian.md). Simulation: ensembles of independent chains (collapse-sim), `exact` (draw all M samples) or `sufficient` (draw the fitted statistics from their exact law). z = (ensemble mean - theory) / standard error, computed only where the Monte Carlo mean can estimate the theory at the run's size (mc_feasible); elsewhere the mean is shown but not compared, because E[sigma_n^2] and E[W2^2] are carried by astronomically rare chains once n >> M.";

const MARKOV_INTRO: &str = "A categorical distribution over K categories is re-estimated each generation from M draws of the previous one (the paper's first theoretical case; the neutral Wright–Fisher model). Theory: the two-type chain of each category against the rest, exact (rationals or MPFR enclosures; proofs/markov.md): expected survivors, heterozygosity (1-1/M)^n (1 - sum q^2), each category's survival by its initial rank, and for two categories the absorption-time distribution and E[T]. Simulation: conditional binomials over the surviving categories, or M labels from an alias table. The rare categories (the tail) are lost first; every chain ends in a point mass.";

/// Header sentence and table rows of one markov experiment.
fn markov_header(o: &MarkovOutcome) -> (String, Vec<ComparisonRow>) {
    let e = &o.experiment;
    let absorbed = o.run.absorption_times.iter().flatten().count();
    let mut header = format!(
        "K = {}, init {}, M = {}, N = {}, R = {} chains, method {}, seed {}; runtime {:.1} s; {} compared pairs, worst |z| = {:.2}; {} of {} chains absorbed by n = {}.",
        e.spec.categories,
        e.spec.initial.label(),
        e.spec.samples,
        e.spec.generations,
        e.config.chains,
        e.config.method.name(),
        e.config.seed,
        o.seconds,
        o.rows.iter().filter(|r| r.z.is_some()).count(),
        o.worst_z(),
        absorbed,
        e.config.chains,
        e.spec.generations,
    );
    let a = &o.theory.absorption;
    match &a.expected_time {
        Some(t) => {
            let _ = write!(
                header,
                " Exact E[T] = {}, diffusion approximation {} (gap {:.2}%).",
                fmt_sig(t.to_f64()),
                fmt_sig(a.expected_time_diffusion),
                100.0 * (a.expected_time_diffusion / t.to_f64() - 1.0)
            );
        }
        None => {
            let _ = write!(
                header,
                " Diffusion approximation of E[T] (Littler): {}.",
                fmt_sig(a.expected_time_diffusion)
            );
        }
    }
    let gens = table_generations(u64::from(e.spec.generations));
    let rows = ["surviving", "heterozygosity", "absorbed"]
        .iter()
        .flat_map(|q| {
            o.rows
                .iter()
                .filter(|r| r.quantity == *q && gens.contains(&r.generation))
                .cloned()
                .collect::<Vec<_>>()
        })
        .chain(
            o.rows
                .iter()
                .filter(|r| {
                    r.quantity.starts_with("survival_rank_") || r.quantity == "absorption_time"
                })
                .cloned(),
        )
        .collect();
    (header, rows)
}

/// Everything the index pages show.
struct Page<'a> {
    scale: Scale,
    seed: u64,
    outcomes: &'a [Outcome],
    /// Per outcome: (file stem, title) of each figure.
    figs: &'a [Vec<(String, String)>],
    schedule_stem: &'a str,
    markov: &'a [MarkovOutcome],
    /// Per markov outcome: (file stem, title) of each figure.
    markov_figs: &'a [Vec<(String, String)>],
    absorption_stem: &'a str,
    /// The sections in generic form (mvn, schedules, strategies).
    sections: &'a [Section],
    summary: &'a ReportSummary,
}

impl Page<'_> {
    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# collapse report\n");
        let _ = writeln!(s, "{}\n", summary_line(self.scale, self.seed, self.summary));
        let _ = writeln!(s, "{}\n", sections_line(self.summary));
        let _ = writeln!(
            s,
            "Tables: `gaussian/comparison.parquet` and `gaussian/comparison.csv` (long form: experiment, quantity, generation, theory, empirical, stderr, z, mc_feasible, parameters).\n"
        );
        let _ = writeln!(s, "## Gaussian recursion\n\n{INTRO}\n");
        let _ = writeln!(s, "![schedules](gaussian/{}.png)\n", self.schedule_stem);
        for (o, files) in self.outcomes.iter().zip(self.figs) {
            let (header, rows) = experiment_header(o);
            let _ = writeln!(s, "### {}\n\n{header}\n", o.experiment.name);
            let refs: Vec<&ComparisonRow> = rows.iter().collect();
            let _ = writeln!(s, "{}\n", markdown_table(&refs));
            for (stem, title) in files {
                let _ = writeln!(s, "![{title}](gaussian/{stem}.png)\n");
            }
        }
        let _ = writeln!(
            s,
            "## Categorical resampling (Wright–Fisher)\n\n{MARKOV_INTRO}\n"
        );
        let _ = writeln!(
            s,
            "Tables: `markov/comparison.parquet` and `markov/comparison.csv`.\n\n![E[T] vs M](markov/{}.png)\n",
            self.absorption_stem
        );
        for (o, files) in self.markov.iter().zip(self.markov_figs) {
            let (header, rows) = markov_header(o);
            let _ = writeln!(s, "### {}\n\n{header}\n", o.experiment.name);
            let refs: Vec<&ComparisonRow> = rows.iter().collect();
            let _ = writeln!(s, "{}\n", markdown_table(&refs));
            for (stem, title) in files {
                let _ = writeln!(s, "![{title}](markov/{stem}.png)\n");
            }
        }
        for section in self.sections {
            s.push_str(&section.markdown());
        }
        s
    }

    fn html(&self, out_dir: &Path) -> Result<String, ReportError> {
        let svg_in = |dir: &Path, stem: &str| -> Result<String, ReportError> {
            let path = dir.join(format!("{stem}.svg"));
            let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
                path: path.display().to_string(),
                source,
            })?;
            // Drop an XML declaration if present: inline SVG must start at <svg.
            Ok(text
                .find("<svg")
                .map(|i| text[i..].to_string())
                .unwrap_or(text))
        };
        let gaussian_dir = out_dir.join("gaussian");
        let markov_dir = out_dir.join("markov");
        let svg = |stem: &str| svg_in(&gaussian_dir, stem);
        let mut s = String::new();
        s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>collapse report</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;font-size:0.85em;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}figure{margin:1em 0}svg{max-width:100%;height:auto}.note{color:#444}</style></head><body>\n");
        let _ = writeln!(s, "<h1>collapse report</h1>");
        let _ = writeln!(
            s,
            "<p>{}</p>",
            html_escape(&summary_line(self.scale, self.seed, self.summary))
        );
        let _ = writeln!(s, "<p>{}</p>", html_escape(&sections_line(self.summary)));
        let _ = writeln!(
            s,
            "<p>Tables: <code>gaussian/comparison.parquet</code>, <code>gaussian/comparison.csv</code>.</p>"
        );
        let _ = writeln!(
            s,
            "<h2>Gaussian recursion</h2><p class=\"note\">{}</p>",
            html_escape(INTRO)
        );
        let _ = writeln!(s, "<figure>{}</figure>", svg(self.schedule_stem)?);
        for (o, files) in self.outcomes.iter().zip(self.figs) {
            let (header, rows) = experiment_header(o);
            let _ = writeln!(
                s,
                "<h3>{}</h3><p class=\"note\">{}</p>",
                html_escape(&o.experiment.name),
                html_escape(&header)
            );
            let refs: Vec<&ComparisonRow> = rows.iter().collect();
            s.push_str(&html_table(&refs));
            for (stem, _) in files {
                let _ = writeln!(s, "<figure>{}</figure>", svg(stem)?);
            }
        }
        let _ = writeln!(
            s,
            "<h2>Categorical resampling (Wright–Fisher)</h2><p class=\"note\">{}</p><p>Tables: <code>markov/comparison.parquet</code>, <code>markov/comparison.csv</code>.</p>",
            html_escape(MARKOV_INTRO)
        );
        let _ = writeln!(
            s,
            "<figure>{}</figure>",
            svg_in(&markov_dir, self.absorption_stem)?
        );
        for (o, files) in self.markov.iter().zip(self.markov_figs) {
            let (header, rows) = markov_header(o);
            let _ = writeln!(
                s,
                "<h3>{}</h3><p class=\"note\">{}</p>",
                html_escape(&o.experiment.name),
                html_escape(&header)
            );
            let refs: Vec<&ComparisonRow> = rows.iter().collect();
            s.push_str(&html_table(&refs));
            for (stem, _) in files {
                let _ = writeln!(s, "<figure>{}</figure>", svg_in(&markov_dir, stem)?);
            }
        }
        for section in self.sections {
            s.push_str(&section.html(out_dir)?);
        }
        s.push_str("</body></html>\n");
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_generations_are_log_spaced() {
        assert_eq!(table_generations(60), vec![0, 1, 2, 5, 10, 20, 50, 60]);
        assert_eq!(
            table_generations(2000),
            vec![0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
        );
        assert!(Scale::parse("huge").is_err());
    }
}
