//! The VAE experiment on real digits (`collapse_sim::vae`): a run's tables (`vae.parquet`,
//! `summary.parquet`), its sample grids as PNG files, and the report section (latent std,
//! held-out -ELBO and class entropy over generations beside the paper's recorded run).

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure, band, level};
use crate::report::Scale;
use crate::section::{Block, Section, TextTable, render_figures};
use crate::table::{
    fmt_sig, io_err, mean_se, moved, sig, sync_and_rename, temp_path, write_atomic,
};
use collapse_sim::data::Digits;
use collapse_sim::vae::{
    Arch, Control, DataSplit, Event, GRID_IMAGES, GenerationMetrics, LATENT, MeanError, VaeError,
    VaeRun, VaeSpec, simulate,
};
use plotters::prelude::*;
use polars::prelude::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// The data set of the section.
pub const DATA: &str = "mnist5k";

/// Latent std of generations 0-4 recorded in the paper's notebook (one of its five runs; the
/// five spanned 0.674-0.700 at generation 0 and 0.428-0.467 at generation 4).
pub const PAPER_LATENT_STD: [f64; 5] = [0.674, 0.608, 0.527, 0.468, 0.433];

/// Images per side of a grid.
const TILES: usize = 8;
const _: () = assert!(TILES * TILES == GRID_IMAGES);
/// Gap between the images of a grid (image pixels) and its grey level.
const GAP: usize = 2;
const GAP_GREY: u8 = 128;
/// Every grid pixel becomes SCALE x SCALE pixels of the PNG.
const SCALE: usize = 2;

// ---------------------------------------------------------------------------------------------
// Writers

/// The long table of a run: one row per (seed, generation, metric); the per-seed quantities
/// (classifier accuracy, the real held-out images' latent mean and std) have no generation.
fn long_frame(run: &VaeRun) -> Result<DataFrame, ReportError> {
    let mut rows = Vec::new();
    let mut push = |s: u64, g: Option<u64>, m: &str, v: f64| rows.push((s, g, m.to_string(), v));
    for s in &run.seeds {
        push(s.seed, None, "classifier_accuracy", s.classifier_accuracy);
        push(s.seed, None, "real_latent_mean", s.real_latent_mean);
        push(s.seed, None, "real_latent_std", s.real_latent_std);
        for m in &s.generations {
            let g = Some(m.generation as u64);
            for (name, v) in scalars(m) {
                push(s.seed, g, name, v);
            }
            for (c, &f) in m.class_fractions.iter().enumerate() {
                push(s.seed, g, &format!("class_fraction_{c}"), f);
            }
        }
    }
    crate::table::long_frame(rows)
}

/// The scalar metrics of a generation, in table order.
fn scalars(m: &GenerationMetrics) -> [(&'static str, f64); 8] {
    [
        ("latent_std", m.latent_std),
        ("latent_mean", m.latent_mean),
        ("heldout_neg_elbo", m.heldout_neg_elbo),
        ("train_neg_elbo", m.train_neg_elbo),
        ("class_entropy", m.class_entropy),
        ("pixel_std", m.pixel_std),
        ("examples", m.examples as f64),
        ("seconds", m.seconds),
    ]
}

/// Metrics of `summary.parquet` per generation: mean and standard error over seeds.
fn summary_metrics(run: &VaeRun, g: usize) -> Vec<(String, MeanError)> {
    let over = |f: &dyn Fn(&GenerationMetrics) -> f64| {
        let v: Vec<f64> = run.seeds.iter().map(|s| f(&s.generations[g])).collect();
        MeanError::of(&v)
    };
    let mut out: Vec<(String, MeanError)> = [
        "latent_std",
        "latent_mean",
        "heldout_neg_elbo",
        "train_neg_elbo",
        "class_entropy",
        "pixel_std",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| (name.to_string(), over(&|m| scalars(m)[i].1)))
    .collect();
    let classes = run
        .seeds
        .first()
        .map_or(0, |s| s.generations[g].class_fractions.len());
    for c in 0..classes {
        out.push((
            format!("class_fraction_{c}"),
            over(&|m| m.class_fractions[c]),
        ));
    }
    out
}

fn summary_frame(run: &VaeRun) -> Result<DataFrame, ReportError> {
    let generations = run.seeds.iter().map(|s| s.generations.len()).min();
    crate::table::summary_frame((0..generations.unwrap_or(0)).flat_map(|g| {
        summary_metrics(run, g)
            .into_iter()
            .map(move |(name, m)| (g as u64, name, m))
    }))
}

/// File of the grid of `seed` at `generation`, relative to the run's folder.
pub fn grid_file(seed: u64, generation: usize) -> String {
    format!("grids/seed-{seed}-gen-{generation}.png")
}

/// Pixel size (width, height) of the PNG of a grid of `rows` x `cols` images.
pub fn grid_size(rows: usize, cols: usize) -> (usize, usize) {
    let side = |n: usize| SCALE * (TILES * n + (TILES - 1) * GAP);
    (side(cols), side(rows))
}

/// The 64 images of a grid tiled 8 x 8 with grey gaps and scaled up, as RGB bytes.
fn mosaic(grid: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>, ReportError> {
    let p = rows * cols;
    if p == 0 || grid.len() != GRID_IMAGES * p {
        return Err(ReportError::Invalid(format!(
            "a sample grid of {rows} x {cols} images needs {} grey levels, got {}",
            GRID_IMAGES * p,
            grid.len()
        )));
    }
    let w = TILES * cols + (TILES - 1) * GAP;
    let h = TILES * rows + (TILES - 1) * GAP;
    let mut grey = vec![GAP_GREY; w * h];
    for (k, image) in grid.chunks(p).enumerate() {
        let (y0, x0) = ((k / TILES) * (rows + GAP), (k % TILES) * (cols + GAP));
        for (r, line) in image.chunks(cols).enumerate() {
            grey[(y0 + r) * w + x0..][..cols].copy_from_slice(line);
        }
    }
    let (sw, sh) = grid_size(rows, cols);
    let mut rgb = Vec::with_capacity(sw * sh * 3);
    for y in 0..sh {
        for x in 0..sw {
            let v = grey[(y / SCALE) * w + x / SCALE];
            rgb.extend_from_slice(&[v, v, v]);
        }
    }
    Ok(rgb)
}

/// Encodes RGB pixels as a PNG at `path`, atomically (the encoder picks the format from the
/// extension, so the temporary name ends in .png).
fn write_png(path: &Path, (w, h): (usize, usize), rgb: &[u8]) -> Result<(), ReportError> {
    let png_err =
        |e: &dyn std::fmt::Display| ReportError::Figure(format!("{}: {e}", path.display()));
    let (w, h) = (w as u32, h as u32);
    let tmp = temp_path(path, ".png")?;
    let drawn = (|| {
        let mut backend = BitMapBackend::new(&tmp, (w, h));
        backend
            .blit_bitmap((0, 0), (w, h), rgb)
            .map_err(|e| png_err(&e))?;
        backend.present().map_err(|e| png_err(&e))
    })();
    if let Err(e) = drawn.and_then(|()| sync_and_rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Writes a run into `dir` (created if missing), each file atomically: `vae.parquet` (seed,
/// generation, metric, value), `summary.parquet` (generation, metric, mean, stderr over seeds)
/// and `grids/seed-<S>-gen-<G>.png` per seed and generation. Returns the paths written.
pub fn write_run(run: &VaeRun, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let grids = dir.join("grids");
    std::fs::create_dir_all(&grids).map_err(io_err(&grids))?;
    let mut written = Vec::new();
    let path = dir.join("vae.parquet");
    crate::table::write_parquet(&mut long_frame(run)?, &path)?;
    written.push(path);
    let path = dir.join("summary.parquet");
    crate::table::write_parquet(&mut summary_frame(run)?, &path)?;
    written.push(path);
    let size = grid_size(run.rows, run.cols);
    for s in &run.seeds {
        for m in &s.generations {
            let path = dir.join(grid_file(s.seed, m.generation));
            write_png(&path, size, &mosaic(&m.grid, run.rows, run.cols)?)?;
            written.push(path);
        }
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// The report section

/// The spec of a scale and the images of mnist5k it uses (None: all). One MLP epoch over the
/// 4500 training images took about 0.7 s on 2 busy cores (6260 examples/s), so `default`
/// (3 seeds x 5 generations x 15 epochs) took 173 s with evaluation: 2-3 minutes.
pub fn spec(scale: Scale, seed: u64) -> (VaeSpec, Option<usize>) {
    match scale {
        Scale::Smoke => (
            VaeSpec {
                eval_images: 200,
                seed,
                ..VaeSpec::new(Arch::Mlp, 3, 1, 2)
            },
            Some(600),
        ),
        Scale::Default => (
            VaeSpec {
                eval_images: 1000,
                seed,
                ..VaeSpec::new(Arch::Mlp, 5, 15, 3)
            },
            None,
        ),
        Scale::Paper => (
            VaeSpec {
                seed,
                ..VaeSpec::new(Arch::Paper, 5, 30, 5)
            },
            None,
        ),
    }
}

/// The data of a scale, loaded before any experiment runs so that a missing data set fails the
/// report at once (the loader's message names `collapse data fetch mnist5k`).
pub fn data(scale: Scale) -> Result<DataSplit, ReportError> {
    let digits = collapse_sim::data::load(DATA)
        .map_err(|e| ReportError::Invalid(format!("vae section: {e}")))?;
    let digits = match spec(scale, 0).1 {
        Some(count) => spread(&digits, count)?,
        None => digits,
    };
    Ok(DataSplit::new(DATA, digits)?)
}

/// `count` images evenly spaced over `digits`, all training images (mnist5k is grouped by
/// class: its first 600 images are 500 zeros and 100 ones).
fn spread(digits: &Digits, count: usize) -> Result<Digits, ReportError> {
    let n = digits.len();
    if count >= n {
        return Ok(digits.clone());
    }
    let picked: Vec<usize> = (0..count).map(|k| k * n / count).collect();
    let images = picked
        .iter()
        .flat_map(|&i| digits.image(i).iter().copied())
        .collect();
    let labels = picked.iter().map(|&i| digits.labels[i]).collect();
    Digits::new(digits.rows, digits.cols, images, labels, count)
        .map_err(|e| ReportError::Invalid(format!("vae section: {e}")))
}

fn vae_err(e: VaeError) -> ReportError {
    match e {
        VaeError::Sim(e) => ReportError::Sim(e),
        other => ReportError::Invalid(format!("vae section: {other}")),
    }
}

/// Rounded to `digits` significant digits.
fn figures(run: &VaeRun) -> Vec<(String, Figure)> {
    let rows = run.summary();
    let g = rows.len();
    let pick = |f: &dyn Fn(&collapse_sim::vae::SummaryRow) -> MeanError| -> Vec<MeanError> {
        rows.iter().map(f).collect()
    };
    let seeds = run.seeds.len();
    let real = MeanError::of(
        &run.seeds
            .iter()
            .map(|s| s.real_latent_std)
            .collect::<Vec<_>>(),
    );
    let paper: Vec<f64> = PAPER_LATENT_STD.iter().copied().take(g).collect();
    let latent = Figure {
        title: "Latent std of generated images (generation-0 encoder)".into(),
        x_label: "generation".into(),
        y_label: "std of latent means".into(),
        log_y: false,
        curves: vec![
            band(
                &format!("this run: mean ± 2 s.e. over {seeds} seeds"),
                &pick(&|r| r.latent_std),
            ),
            Curve {
                label: "paper's recorded run (notebook)".into(),
                x: (0..paper.len()).map(|g| g as f64).collect(),
                y: paper,
                kind: CurveKind::Bound,
            },
            level(
                format!("real held-out images: {}", sig(real.mean, 3)),
                real.mean,
                g,
            ),
        ],
    };
    let train: Vec<MeanError> = (0..g)
        .map(|k| {
            let v: Vec<f64> = run
                .seeds
                .iter()
                .map(|s| s.generations[k].train_neg_elbo)
                .collect();
            MeanError::of(&v)
        })
        .collect();
    let elbo = Figure {
        title: "Negative ELBO per image".into(),
        x_label: "generation".into(),
        y_label: "-ELBO (nats per image)".into(),
        log_y: false,
        curves: vec![
            band("held-out real images", &pick(&|r| r.heldout_neg_elbo)),
            band("own training data (last epoch)", &train),
        ],
    };
    let entropy = Figure {
        title: "Class entropy of generated images (classifier on real digits)".into(),
        x_label: "generation".into(),
        y_label: "entropy (nats)".into(),
        log_y: false,
        curves: vec![
            band(
                &format!("mean ± 2 s.e. over {seeds} seeds"),
                &pick(&|r| r.class_entropy),
            ),
            level("ln 10: ten equal classes".into(), 10f64.ln(), g),
        ],
    };
    vec![
        ("vae-latent-std".into(), latent),
        ("vae-heldout-neg-elbo".into(), elbo),
        ("vae-class-entropy".into(), entropy),
    ]
}

fn summary_table(run: &VaeRun) -> TextTable {
    let header = [
        "generation",
        "latent std",
        "paper's recorded latent std",
        "latent mean",
        "held-out −ELBO (nats)",
        "class entropy (nats)",
        "pixel std",
    ]
    .map(String::from)
    .to_vec();
    let rows = run
        .summary()
        .iter()
        .map(|r| {
            vec![
                r.generation.to_string(),
                mean_se(r.latent_std),
                PAPER_LATENT_STD
                    .get(r.generation)
                    .map_or("—".into(), |v| fmt_sig(*v)),
                mean_se(r.latent_mean),
                mean_se(r.heldout_neg_elbo),
                mean_se(r.class_entropy),
                mean_se(r.pixel_std),
            ]
        })
        .collect();
    TextTable { header, rows }
}

/// Training examples per second of a seed (all generations).
fn examples_per_second(generations: &[GenerationMetrics]) -> f64 {
    let examples: u64 = generations.iter().map(|m| m.examples).sum();
    let seconds: f64 = generations.iter().map(|m| m.seconds).sum();
    examples as f64 / seconds
}

fn seed_table(run: &VaeRun) -> TextTable {
    let header = [
        "seed",
        "classifier held-out accuracy",
        "latent std of real held-out images",
        "training examples/s",
        "training s",
    ]
    .map(String::from)
    .to_vec();
    let rows = run
        .seeds
        .iter()
        .map(|s| {
            vec![
                s.seed.to_string(),
                sig(s.classifier_accuracy, 4),
                sig(s.real_latent_std, 4),
                sig(examples_per_second(&s.generations), 3),
                sig(s.generations.iter().map(|m| m.seconds).sum(), 3),
            ]
        })
        .collect();
    TextTable { header, rows }
}

/// The protocol and the measured numbers, all computed from the run.
fn protocol_text(run: &VaeRun, split: &DataSplit, subset: Option<usize>) -> String {
    let spec = &run.spec;
    let rows = run.summary();
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    let lg = last.generation;
    let heldout = if split.digits.test().is_empty() {
        "every tenth image: indices 9, 19, ..."
    } else {
        "the data set's test split"
    };
    let images = match subset {
        Some(n) => format!("{n} images spread evenly over {}", run.data),
        None => format!("the {} images of {}", split.digits.len(), run.data),
    };
    let mut s = format!(
        "Protocol: the {} VAE ({} parameters, latent dimension {LATENT}) trained from scratch for {} epoch{} per generation (batch {}, Adam lr {}, weight decay {}), {} generations, {} seeds from seed {}. Data: {images} ({} training and {} held out, {heldout}). Generation 0 trains on the real training images; generation k on {} images per epoch decoded by generation k − 1 from z ~ N(0, I) drawn fresh for every batch (decoder means as intensities). The paper's metric: the standard deviation of all entries of the generation-0 encoder's latent means over {} images decoded by generation k from fresh codes. ",
        spec.arch.name(),
        run.parameters,
        spec.epochs,
        if spec.epochs == 1 { "" } else { "s" },
        spec.batch,
        spec.lr,
        spec.weight_decay,
        spec.generations,
        run.seeds.len(),
        spec.seed,
        run.train_images,
        run.heldout_images,
        run.train_images,
        spec.eval_images,
    );
    let (a, b) = (first.latent_std.mean, last.latent_std.mean);
    let real = MeanError::of(
        &run.seeds
            .iter()
            .map(|s| s.real_latent_std)
            .collect::<Vec<_>>(),
    );
    s.push_str(&format!(
        "Measured (mean ± s.e. over seeds): the latent std {} from {} at generation 0 to {} at generation {lg} ({:+.1}%); the real held-out images give {}. ",
        moved(a, b),
        mean_se(first.latent_std),
        mean_se(last.latent_std),
        100.0 * (b / a - 1.0),
        mean_se(real),
    ));
    if let Some(&paper_last) = PAPER_LATENT_STD.get(lg).filter(|_| lg > 0) {
        let p0 = PAPER_LATENT_STD[0];
        s.push_str(&format!(
            "The paper's recorded run: {} to {} ({:+.1}%). ",
            fmt_sig(p0),
            fmt_sig(paper_last),
            100.0 * (paper_last / p0 - 1.0)
        ));
    }
    let (e0, e1) = (first.heldout_neg_elbo, last.heldout_neg_elbo);
    let (h0, h1) = (first.class_entropy, last.class_entropy);
    let (p0, p1) = (first.pixel_std, last.pixel_std);
    s.push_str(&format!(
        "Held-out −ELBO {} from {} to {} nats per image; class entropy {} from {} to {} nats (ln 10 = {}); pixel std {} from {} to {}.",
        moved(e0.mean, e1.mean),
        mean_se(e0),
        mean_se(e1),
        moved(h0.mean, h1.mean),
        mean_se(h0),
        mean_se(h1),
        sig(10f64.ln(), 4),
        moved(p0.mean, p1.mean),
        mean_se(p0),
        mean_se(p1),
    ));
    s
}

/// The SVG of a grid for the HTML page: a caption and the PNG as a data URI.
fn grid_svg(png: &[u8], (w, h): (usize, usize), caption: &str) -> String {
    let top = 26;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\"><text x=\"0\" y=\"18\" font-family=\"sans-serif\" font-size=\"16\">{}</text><image x=\"0\" y=\"{top}\" width=\"{w}\" height=\"{h}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/></svg>\n",
        h + top,
        h + top,
        crate::table::html_escape(caption),
        base64(png)
    )
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let byte = |i: usize| u32::from(c.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            s.push(if i <= c.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    s
}

pub const INTRO: &str = "The paper's VAE experiment on real digits: a VAE is trained on the real images (generation 0), and every later generation is a fresh VAE trained only on images decoded by the previous one. The paper measures the collapse in the latent space of the generation-0 encoder: as the generations forget the tails, the generated images' latent means crowd together and their standard deviation falls. Beside it: the held-out −ELBO on real images, the class entropy of the generated images (a classifier trained on the real digits), the pixels' spread, and a grid of 64 images decoded from the same codes in every generation.";

/// Runs the VAE experiment of `scale` on `data` and writes `<out>/vae/`: the tables, the grids,
/// the figures and, for the HTML page, the first seed's grids as SVG.
pub fn section(
    scale: Scale,
    data: &DataSplit,
    out_dir: &Path,
    seed: u64,
) -> Result<Section, ReportError> {
    let start = Instant::now();
    let dir = out_dir.join("vae");
    crate::report::create_dir(&dir)?;
    let (spec, subset) = spec(scale, seed);
    eprintln!(
        "collapse report: running vae-{} ({} seeds x {} generations x {} epochs) ...",
        spec.arch.name(),
        spec.seeds,
        spec.generations,
        spec.epochs
    );
    let stop = AtomicBool::new(false);
    let mut progress = |e: Event| {
        if let Event::Generation {
            seed,
            generation,
            latent_std,
            heldout_neg_elbo,
        } = e
        {
            eprintln!(
                "collapse report: vae seed {seed} generation {generation}: latent std {}, held-out -ELBO {}",
                sig(latent_std, 4),
                sig(heldout_neg_elbo, 5)
            );
        }
    };
    let mut control = Control::in_memory(&stop, &mut progress);
    let run = simulate(&spec, data, &mut control).map_err(vae_err)?;
    write_run(&run, &dir)?;

    let size = grid_size(run.rows, run.cols);
    let mut grids = Vec::new();
    let first = &run.seeds[0];
    for m in &first.generations {
        let file = grid_file(first.seed, m.generation);
        let png = dir.join(&file);
        let bytes = std::fs::read(&png).map_err(io_err(&png))?;
        let caption = format!("generation {} (seed {})", m.generation, first.seed);
        let stem = file.trim_end_matches(".png").to_string();
        let svg = dir.join(format!("{stem}.svg"));
        write_atomic(&svg, |w| {
            w.write_all(grid_svg(&bytes, size, &caption).as_bytes())
                .map_err(io_err(&svg))
        })?;
        grids.push((stem, caption));
    }

    let examples: u64 = run
        .seeds
        .iter()
        .flat_map(|s| &s.generations)
        .map(|m| m.examples)
        .sum();
    let seconds: f64 = run
        .seeds
        .iter()
        .flat_map(|s| &s.generations)
        .map(|m| m.seconds)
        .sum();
    let blocks = vec![
        Block {
            name: "Latent collapse".into(),
            text: protocol_text(&run, data, subset),
            text_table: Some(summary_table(&run)),
            rows: Vec::new(),
            figures: render_figures(&dir, figures(&run))?,
        },
        Block {
            name: "Seeds".into(),
            text: format!(
                "{} parameters; {} training examples in {} s of training ({} examples/s over all seeds and generations; evaluation not included). The classifier behind the class metrics is trained on the real training images of each seed:",
                run.parameters,
                examples,
                sig(seconds, 3),
                sig(examples as f64 / seconds, 3)
            ),
            text_table: Some(seed_table(&run)),
            rows: Vec::new(),
            figures: Vec::new(),
        },
        Block {
            name: "Samples".into(),
            text: format!(
                "Seed {}: 64 images decoded by each generation from the same 64 codes (8 x 8, decoder means as grey levels). Every seed's grids are in `vae/grids/`.",
                first.seed
            ),
            text_table: None,
            rows: Vec::new(),
            figures: grids,
        },
    ];
    Ok(Section {
        dir: "vae".into(),
        title: "VAE generations on real digits (vae)".into(),
        intro: INTRO.into(),
        files: vec![
            "vae.parquet".into(),
            "summary.parquet".into(),
            "grids/".into(),
        ],
        blocks,
        experiments: 1,
        comparisons: 0,
        worst_z: 0.0,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::read_parquet;
    use collapse_sim::vae::SeedRun;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "collapse-reports-vae-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A run of 2 seeds x 2 generations of 3 x 2 images, every value distinct.
    fn hand_made() -> VaeRun {
        let (rows, cols) = (3, 2);
        let seeds = (0..2u64)
            .map(|s| {
                let generations = (0..2usize)
                    .map(|g| {
                        let x = (10 * s as usize + g) as f64;
                        let mut fractions = vec![0.0; 10];
                        fractions[g] = 0.25 + 0.01 * s as f64;
                        fractions[9] = 1.0 - fractions[g];
                        GenerationMetrics {
                            generation: g,
                            latent_mean: 0.01 * x,
                            latent_std: 0.7 - 0.05 * x,
                            heldout_neg_elbo: 100.0 + x,
                            train_neg_elbo: 90.0 + x,
                            class_fractions: fractions,
                            class_entropy: 2.0 - 0.1 * x,
                            pixel_std: 0.3 + 0.001 * x,
                            grid: (0..GRID_IMAGES * rows * cols)
                                .map(|i| ((i * 7 + 31 * g + 101 * s as usize) % 256) as u8)
                                .collect(),
                            examples: 4500 * (g as u64 + 1),
                            seconds: 1.5 + x,
                        }
                    })
                    .collect();
                SeedRun {
                    seed: 40 + s,
                    classifier_accuracy: 0.9 + 0.01 * s as f64,
                    real_latent_mean: 0.02 * s as f64,
                    real_latent_std: 0.8 - 0.01 * s as f64,
                    generations,
                }
            })
            .collect();
        VaeRun {
            spec: VaeSpec::new(Arch::Mlp, 2, 1, 2),
            data: "hand-made".into(),
            rows,
            cols,
            parameters: 1234,
            train_images: 9,
            heldout_images: 1,
            seeds,
        }
    }

    fn strings(df: &DataFrame, name: &str) -> Vec<String> {
        let c = df.column(name).unwrap().str().unwrap();
        c.iter().map(|v| v.unwrap().to_string()).collect()
    }

    fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
        let c = df.column(name).unwrap().f64().unwrap();
        c.iter().map(|v| v.unwrap()).collect()
    }

    fn integers(df: &DataFrame, name: &str) -> Vec<Option<u64>> {
        df.column(name).unwrap().u64().unwrap().iter().collect()
    }

    #[test]
    fn tables_round_trip() {
        let run = hand_made();
        let dir = scratch("tables");
        let written = write_run(&run, &dir).unwrap();
        assert_eq!(written.len(), 2 + 4);
        assert!(written.iter().all(|p| p.starts_with(&dir) && p.exists()));

        let long = read_parquet(&dir.join("vae.parquet")).unwrap();
        let names: Vec<&str> = long.get_column_names().iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["seed", "generation", "metric", "value"]);
        // Per seed: 3 seed rows, then per generation 8 scalars and 10 class fractions.
        assert_eq!(long.height(), 2 * (3 + 2 * (8 + 10)));
        let (seed, generation) = (integers(&long, "seed"), integers(&long, "generation"));
        let (metric, value) = (strings(&long, "metric"), floats(&long, "value"));
        let mut expected = Vec::new();
        for s in &run.seeds {
            expected.push((
                s.seed,
                None,
                "classifier_accuracy".to_string(),
                s.classifier_accuracy,
            ));
            expected.push((
                s.seed,
                None,
                "real_latent_mean".to_string(),
                s.real_latent_mean,
            ));
            expected.push((
                s.seed,
                None,
                "real_latent_std".to_string(),
                s.real_latent_std,
            ));
            for m in &s.generations {
                let g = Some(m.generation as u64);
                for (name, v) in [
                    ("latent_std", m.latent_std),
                    ("latent_mean", m.latent_mean),
                    ("heldout_neg_elbo", m.heldout_neg_elbo),
                    ("train_neg_elbo", m.train_neg_elbo),
                    ("class_entropy", m.class_entropy),
                    ("pixel_std", m.pixel_std),
                    ("examples", m.examples as f64),
                    ("seconds", m.seconds),
                ] {
                    expected.push((s.seed, g, name.to_string(), v));
                }
                for (c, &f) in m.class_fractions.iter().enumerate() {
                    expected.push((s.seed, g, format!("class_fraction_{c}"), f));
                }
            }
        }
        for (i, (s, g, m, v)) in expected.into_iter().enumerate() {
            assert_eq!(
                (seed[i], generation[i], &metric[i]),
                (Some(s), g, &m),
                "row {i}"
            );
            assert_eq!(value[i].to_bits(), v.to_bits(), "row {i}: {m}");
        }

        let summary = read_parquet(&dir.join("summary.parquet")).unwrap();
        let names: Vec<&str> = summary
            .get_column_names()
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(names, ["generation", "metric", "mean", "stderr"]);
        assert_eq!(summary.height(), 2 * (6 + 10));
        let (generation, metric) = (
            integers(&summary, "generation"),
            strings(&summary, "metric"),
        );
        let (mean, stderr) = (floats(&summary, "mean"), floats(&summary, "stderr"));
        let rows = run.summary();
        let find = |g: u64, name: &str| {
            let i = (0..summary.height())
                .find(|&i| generation[i] == Some(g) && metric[i] == name)
                .unwrap_or_else(|| panic!("{name} at {g}"));
            (mean[i], stderr[i])
        };
        for r in &rows {
            let g = r.generation as u64;
            for (name, m) in [
                ("latent_std", r.latent_std),
                ("latent_mean", r.latent_mean),
                ("heldout_neg_elbo", r.heldout_neg_elbo),
                ("class_entropy", r.class_entropy),
                ("pixel_std", r.pixel_std),
            ] {
                assert_eq!(find(g, name), (m.mean, m.stderr), "{name} at {g}");
            }
        }
        // Two seeds: latent std 0.7 and 0.2 at generation 0; the fraction of class 1 at
        // generation 1 is 0.25 and 0.26.
        let (m, se) = find(0, "latent_std");
        assert!(
            (m - 0.45).abs() < 1e-12 && (se - 0.25).abs() < 1e-12,
            "{m} {se}"
        );
        let (m, se) = find(1, "class_fraction_1");
        assert!(
            (m - 0.255).abs() < 1e-12 && (se - 0.005).abs() < 1e-12,
            "{m} {se}"
        );
        assert_eq!(find(1, "class_fraction_0"), (0.0, 0.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn grids_are_pngs_of_the_tiled_images() {
        let run = hand_made();
        let dir = scratch("grids");
        write_run(&run, &dir).unwrap();
        let (rows, cols) = (run.rows, run.cols);
        let (w, h) = grid_size(rows, cols);
        assert_eq!((w, h), (2 * (8 * 2 + 7 * 2), 2 * (8 * 3 + 7 * 2)));
        for s in &run.seeds {
            for m in &s.generations {
                let path = dir.join(grid_file(s.seed, m.generation));
                let (pw, ph, rgb) = png::decode(&std::fs::read(&path).unwrap());
                assert_eq!((pw as usize, ph as usize), (w, h), "{}", path.display());
                // Pixel (x, y) shows image k's pixel (r, c), or the gap.
                for y in 0..h {
                    for x in 0..w {
                        let (gy, gx) = (y / SCALE, x / SCALE);
                        let (ty, r) = (gy / (rows + GAP), gy % (rows + GAP));
                        let (tx, c) = (gx / (cols + GAP), gx % (cols + GAP));
                        let want = if r < rows && c < cols {
                            m.grid[(ty * TILES + tx) * rows * cols + r * cols + c]
                        } else {
                            GAP_GREY
                        };
                        let at = 3 * (y * w + x);
                        assert_eq!(rgb[at..at + 3], [want; 3], "({x}, {y})");
                    }
                }
            }
        }
        // No temporaries left.
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("grids"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_grid_is_refused() {
        let mut run = hand_made();
        run.seeds[1].generations[1].grid.pop();
        let dir = scratch("bad");
        assert!(matches!(
            write_run(&run, &dir),
            Err(ReportError::Invalid(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn smoke_spec_is_small_and_valid() {
        for scale in [Scale::Smoke, Scale::Default, Scale::Paper] {
            spec(scale, 1).0.validate().unwrap();
        }
        let (s, images) = spec(Scale::Smoke, 7);
        assert_eq!(
            (s.generations, s.epochs, s.seeds, s.eval_images, s.seed),
            (3, 1, 2, 200, 7)
        );
        assert_eq!(images, Some(600));
        assert_eq!(spec(Scale::Paper, 7).0.arch, Arch::Paper);
    }

    /// A PNG reader for the tests (8-bit RGB, as the bitmap encoder writes): chunk CRCs,
    /// zlib (inflate and Adler-32) and the scanline filters.
    mod png {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut c = !0u32;
            for &b in bytes {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }

        /// (width, height, RGB bytes).
        pub fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
            assert_eq!(bytes[..8], [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
            let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let (mut at, mut header, mut idat) = (8, None, Vec::new());
            loop {
                let len = be(&bytes[at..]) as usize;
                let body = &bytes[at + 4..at + 8 + len];
                assert_eq!(crc32(body), be(&bytes[at + 8 + len..]), "chunk CRC");
                let (kind, data) = body.split_at(4);
                match kind {
                    b"IHDR" => header = Some((be(data), be(&data[4..]), data[8], data[9])),
                    b"IDAT" => idat.extend_from_slice(data),
                    b"IEND" => break,
                    _ => {}
                }
                at += 12 + len;
            }
            let (w, h, depth, colour) = header.expect("IHDR");
            assert_eq!((depth, colour), (8, 2), "8-bit RGB");
            assert_eq!(idat[0] & 0x0f, 8, "deflate");
            let raw = inflate(&idat[2..]);
            let tail = &idat[idat.len() - 4..];
            assert_eq!(adler32(&raw), be(tail), "Adler-32");
            let stride = 3 * w as usize;
            assert_eq!(raw.len(), h as usize * (stride + 1));
            let mut out = vec![0u8; h as usize * stride];
            for y in 0..h as usize {
                let filter = raw[y * (stride + 1)];
                for x in 0..stride {
                    let v = raw[y * (stride + 1) + 1 + x];
                    let a = if x >= 3 { out[y * stride + x - 3] } else { 0 };
                    let b = if y > 0 { out[(y - 1) * stride + x] } else { 0 };
                    let c = if x >= 3 && y > 0 {
                        out[(y - 1) * stride + x - 3]
                    } else {
                        0
                    };
                    let predicted = match filter {
                        0 => 0,
                        1 => a,
                        2 => b,
                        3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                        4 => {
                            let p = i16::from(a) + i16::from(b) - i16::from(c);
                            let (pa, pb, pc) = (
                                (p - i16::from(a)).abs(),
                                (p - i16::from(b)).abs(),
                                (p - i16::from(c)).abs(),
                            );
                            if pa <= pb && pa <= pc {
                                a
                            } else if pb <= pc {
                                b
                            } else {
                                c
                            }
                        }
                        f => panic!("filter {f}"),
                    };
                    out[y * stride + x] = v.wrapping_add(predicted);
                }
            }
            (w, h, out)
        }

        fn adler32(bytes: &[u8]) -> u32 {
            let (mut a, mut b) = (1u32, 0u32);
            for &x in bytes {
                a = (a + u32::from(x)) % 65521;
                b = (b + a) % 65521;
            }
            (b << 16) | a
        }

        struct Bits<'a> {
            data: &'a [u8],
            pos: usize,
        }

        impl Bits<'_> {
            fn bits(&mut self, n: u32) -> usize {
                let mut v = 0;
                for i in 0..n {
                    let bit = (self.data[self.pos >> 3] >> (self.pos & 7)) & 1;
                    v |= usize::from(bit) << i;
                    self.pos += 1;
                }
                v
            }
        }

        /// Canonical Huffman code: codes per length and symbols in code order.
        struct Code {
            counts: [usize; 16],
            symbols: Vec<usize>,
        }

        impl Code {
            fn new(lengths: &[usize]) -> Code {
                let mut counts = [0; 16];
                for &l in lengths {
                    counts[l] += 1;
                }
                counts[0] = 0;
                let mut symbols = Vec::new();
                for len in 1..16 {
                    symbols.extend((0..lengths.len()).filter(|&s| lengths[s] == len));
                }
                Code { counts, symbols }
            }

            fn symbol(&self, bits: &mut Bits) -> usize {
                let (mut code, mut first, mut index) = (0, 0, 0);
                for len in 1..16 {
                    code |= bits.bits(1);
                    let count = self.counts[len];
                    if code < first + count {
                        return self.symbols[index + code - first];
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                panic!("invalid Huffman code");
            }
        }

        const LENGTH_BASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LENGTH_EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DIST_EXTRA: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        fn inflate(data: &[u8]) -> Vec<u8> {
            let mut bits = Bits { data, pos: 0 };
            let mut out: Vec<u8> = Vec::new();
            loop {
                let last = bits.bits(1) == 1;
                let (lit, dist) = match bits.bits(2) {
                    0 => {
                        let at = bits.pos.div_ceil(8);
                        let len = usize::from(u16::from_le_bytes([data[at], data[at + 1]]));
                        out.extend_from_slice(&data[at + 4..at + 4 + len]);
                        bits.pos = 8 * (at + 4 + len);
                        if last {
                            return out;
                        }
                        continue;
                    }
                    1 => {
                        let mut l = vec![8; 288];
                        l[144..256].fill(9);
                        l[256..280].fill(7);
                        (Code::new(&l), Code::new(&[5; 30]))
                    }
                    2 => {
                        let (hlit, hdist) = (bits.bits(5) + 257, bits.bits(5) + 1);
                        let hclen = bits.bits(4) + 4;
                        let mut cl = [0; 19];
                        for &i in &ORDER[..hclen] {
                            cl[i] = bits.bits(3);
                        }
                        let cl = Code::new(&cl);
                        let mut lengths = Vec::new();
                        while lengths.len() < hlit + hdist {
                            match cl.symbol(&mut bits) {
                                s @ 0..=15 => lengths.push(s),
                                16 => {
                                    let prev = *lengths.last().expect("a length to repeat");
                                    let n = 3 + bits.bits(2);
                                    lengths.extend(std::iter::repeat_n(prev, n));
                                }
                                17 => {
                                    let n = 3 + bits.bits(3);
                                    lengths.extend(std::iter::repeat_n(0, n));
                                }
                                _ => {
                                    let n = 11 + bits.bits(7);
                                    lengths.extend(std::iter::repeat_n(0, n));
                                }
                            }
                        }
                        (Code::new(&lengths[..hlit]), Code::new(&lengths[hlit..]))
                    }
                    _ => panic!("reserved block type"),
                };
                loop {
                    let s = lit.symbol(&mut bits);
                    if s < 256 {
                        out.push(s as u8);
                        continue;
                    }
                    if s == 256 {
                        break;
                    }
                    let len = LENGTH_BASE[s - 257] + bits.bits(LENGTH_EXTRA[s - 257]);
                    let d = dist.symbol(&mut bits);
                    let back = DIST_BASE[d] + bits.bits(DIST_EXTRA[d]);
                    for _ in 0..len {
                        out.push(out[out.len() - back]);
                    }
                }
                if last {
                    return out;
                }
            }
        }
    }
}
