//! `collapse simulate --out FILE.parquet` and `collapse merge --out`: a run's per-generation
//! statistics as one long table (generation, quantity, mean, stderr; stderr is NaN where a
//! quantity has none, as for quantiles and fractions). The same run gives the same bytes, so a
//! merged sharded run can be compared with the single run byte for byte.

use crate::ReportError;
use collapse_sim::gaussian::GaussianRun;
use collapse_sim::gmm::GmmRun;
use collapse_sim::markov::MarkovRun;
use collapse_sim::mvn::MvnRun;
use collapse_sim::stats::Summary;
use polars::prelude::*;
use std::path::Path;

/// Rows of the long table.
#[derive(Default)]
struct Long {
    generation: Vec<u64>,
    quantity: Vec<String>,
    mean: Vec<f64>,
    stderr: Vec<f64>,
}

impl Long {
    fn push(&mut self, n: u64, quantity: &str, mean: f64, stderr: f64) {
        self.generation.push(n);
        self.quantity.push(quantity.to_string());
        self.mean.push(mean);
        self.stderr.push(stderr);
    }

    fn summary(&mut self, n: u64, quantity: &str, s: Summary) {
        self.push(n, quantity, s.mean, s.stderr);
    }

    fn frame(self) -> Result<DataFrame, ReportError> {
        let height = self.generation.len();
        Ok(DataFrame::new(
            height,
            vec![
                Column::new("generation".into(), self.generation),
                Column::new("quantity".into(), self.quantity),
                Column::new("mean".into(), self.mean),
                Column::new("stderr".into(), self.stderr),
            ],
        )?)
    }
}

fn write(path: &Path, long: Long) -> Result<(), ReportError> {
    let mut df = long.frame()?;
    crate::table::write_atomic(path, |w| {
        ParquetWriter::new(w).finish(&mut df)?;
        Ok(())
    })
}

fn gaussian_long(run: &GaussianRun) -> Long {
    let mut t = Long::default();
    for row in &run.rows {
        let n = row.n;
        t.summary(n, "variance", row.variance);
        t.summary(n, "sigma", row.sigma);
        t.push(
            n,
            "log_variance",
            row.log_variance.mean,
            row.log_variance.stderr,
        );
        t.push(
            n,
            "var_log_variance",
            row.log_variance.variance,
            row.log_variance.variance_stderr,
        );
        t.summary(n, "mean_sq_error", row.mean_sq_error);
        t.summary(n, "w2_sq", row.w2_sq);
        t.push(n, "q1_variance", row.variance_quartiles[0], f64::NAN);
        t.push(n, "median_variance", row.variance_quartiles[1], f64::NAN);
        t.push(n, "q3_variance", row.variance_quartiles[2], f64::NAN);
        t.push(n, "median_w2_sq", row.w2_sq_quartiles[1], f64::NAN);
        t.push(n, "collapsed_fraction", row.collapsed_fraction, f64::NAN);
    }
    t
}

pub fn write_gaussian(run: &GaussianRun, path: &Path) -> Result<(), ReportError> {
    write(path, gaussian_long(run))
}

pub fn write_markov(run: &MarkovRun, path: &Path) -> Result<(), ReportError> {
    let mut t = Long::default();
    for row in &run.rows {
        let n = u64::from(row.n);
        t.summary(n, "surviving", row.surviving);
        t.summary(n, "heterozygosity", row.heterozygosity);
        t.summary(n, "entropy", row.entropy);
        t.summary(n, "largest", row.largest);
        t.push(n, "absorbed_fraction", row.absorbed_fraction, f64::NAN);
    }
    // The last generation's per-category survival, and the mean absorption time.
    let last = u64::from(run.spec.generations);
    for (i, s) in run.final_survival.iter().enumerate() {
        t.push(last, &format!("survival_{i}"), *s, f64::NAN);
    }
    if let Some(s) = run.mean_absorption_time {
        t.summary(last, "absorption_time", s);
    }
    write(path, t)
}

pub fn write_mvn(run: &MvnRun, path: &Path) -> Result<(), ReportError> {
    let mut t = Long::default();
    for row in &run.rows {
        for (name, s) in row.named() {
            t.summary(row.n, name, s);
        }
        for (name, q) in ["q1_w2_sq", "median_w2_sq", "q3_w2_sq"]
            .iter()
            .zip(row.w2_sq_quartiles)
        {
            t.push(row.n, name, q, f64::NAN);
        }
    }
    write(path, t)
}

pub fn write_gmm(run: &GmmRun, path: &Path) -> Result<(), ReportError> {
    let mut t = Long::default();
    for row in &run.rows {
        let n = row.n;
        t.summary(n, "l2_sq", row.l2_sq);
        t.summary(n, "heldout_loglik", row.heldout_loglik);
        t.summary(n, "distance", row.distance);
        t.summary(n, "min_eigenvalue", row.min_eigenvalue);
        t.summary(n, "max_eigenvalue", row.max_eigenvalue);
        t.summary(n, "min_weight", row.min_weight);
        t.push(n, "vanished_fraction", row.vanished_fraction, f64::NAN);
        t.summary(n, "em_iterations", row.em_iterations);
        t.push(
            n,
            "unconverged_fraction",
            row.unconverged_fraction,
            f64::NAN,
        );
    }
    write(path, t)
}
