//! The transformer: parameter count, gradients against finite differences, the KV cache
//! against the full forward pass, decoding against brute force, sampling's law, training
//! (it learns; bit-identical for any thread count) and refused configurations.

use super::*;
use crate::rng::stream;

fn rng(seed: u64) -> ChainRng {
    ChainRng::for_chain(seed, stream::TEST, 0)
}

fn tiny() -> Config {
    Config {
        vocab: 7,
        context: 6,
        width: 8,
        layers: 2,
        heads: 2,
    }
}

/// A model with parameters large enough (N(0, 0.3^2), norms around 1) that every path of the
/// gradient matters.
fn scrambled(config: Config, seed: u64) -> Transformer {
    let mut r = rng(seed);
    let mut model = Transformer::new(config, &mut r).unwrap();
    let n = model.flat_parameters().len();
    let normal = StandardNormal::new();
    let mut values: Vec<f32> = (0..n)
        .map(|_| (0.3 * normal.sample(&mut r)) as f32)
        .collect();
    // Norm gains near 1 (the plain group ends with the final norm's gamma and beta).
    let d = config.width;
    let gamma_at = n - 2 * d;
    for v in &mut values[gamma_at..gamma_at + d] {
        *v += 1.0;
    }
    model.set_flat_parameters(&values).unwrap();
    model
}

fn sequences(seed: u64, count: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut r = rng(seed);
    (0..count)
        .map(|_| {
            (0..len)
                .map(|_| crate::rng::below(&mut r, vocab as u64) as u32)
                .collect()
        })
        .collect()
}

fn refs(s: &[Vec<u32>]) -> Vec<&[u32]> {
    s.iter().map(Vec::as_slice).collect()
}

#[test]
fn parameter_count_is_the_formula() {
    for config in [
        tiny(),
        Config {
            vocab: 4096,
            context: 128,
            width: 128,
            layers: 2,
            heads: 4,
        },
    ] {
        let mut model = Transformer::new(config, &mut rng(1)).unwrap();
        assert_eq!(model.parameters(), config.parameters());
    }
    // The default model: (4096 + 1) 128 + 128 * 128 + 2 (12 * 128^2 + 13 * 128) + 2 * 128.
    assert_eq!(
        Config {
            vocab: 4096,
            context: 128,
            width: 128,
            layers: 2,
            heads: 4
        }
        .parameters(),
        937_600
    );
}

/// The directional derivative g . v of the analytic gradient against the central difference
/// of the loss (in f64 from f32 logits) along v, for a random direction v restricted to each
/// parameter slice in turn: every slice's gradient is checked. Tolerance: 1e-3 |d| + 2e-5,
/// where the f32 forward's rounding gives differences within 1e-5 of each other (measured:
/// largest error 9.7e-6 over the 84 checks, smallest |d| 3.3e-3), so a 1% error in any slice's
/// gradient fails; every direction must move the loss (|d| > 1e-3).
#[test]
fn gradient_matches_finite_differences_on_every_parameter_slice() {
    let config = tiny();
    for seed in 0..3 {
        let data = sequences(seed + 10, 3, 5, config.vocab);
        let data = refs(&data);
        let mut model = scrambled(config, seed);
        model.zero_grad();
        model.loss_and_gradients(&data);
        let gradient = model.flat_gradients();
        let theta = model.flat_parameters();
        let lengths: Vec<usize> = {
            let (decay, plain) = model.parameter_groups();
            decay.iter().chain(&plain).map(|(p, _)| p.len()).collect()
        };
        // Embeddings 2; per layer 4 matrices, 4 biases, 2 norms of 2; the final norm's 2.
        assert_eq!(lengths.len(), 2 + 12 * config.layers + 2);
        let mut r = rng(seed + 100);
        let mut start = 0;
        for (slice, &len) in lengths.iter().enumerate() {
            let mut v = vec![0.0f32; theta.len()];
            for x in &mut v[start..start + len] {
                *x = (2.0 * r.next_f64() - 1.0) as f32;
            }
            start += len;
            let analytic: f64 = gradient
                .iter()
                .zip(&v)
                .map(|(&g, &v)| f64::from(g) * f64::from(v))
                .sum();
            let h = 1e-2f32;
            let at = |sign: f32| {
                let moved: Vec<f32> = theta
                    .iter()
                    .zip(&v)
                    .map(|(&t, &v)| t + sign * h * v)
                    .collect();
                let mut m = model.clone();
                m.set_flat_parameters(&moved).unwrap();
                -m.log_probs(&data).iter().sum::<f64>() / 15.0
            };
            // Richardson extrapolation of two central differences: error O(h^4).
            let d1 = (at(1.0) - at(-1.0)) / (2.0 * f64::from(h));
            let at2 = |sign: f32| {
                let moved: Vec<f32> = theta
                    .iter()
                    .zip(&v)
                    .map(|(&t, &v)| t + sign * 2.0 * h * v)
                    .collect();
                let mut m = model.clone();
                m.set_flat_parameters(&moved).unwrap();
                -m.log_probs(&data).iter().sum::<f64>() / 15.0
            };
            let d2 = (at2(1.0) - at2(-1.0)) / (4.0 * f64::from(h));
            let fd = (4.0 * d1 - d2) / 3.0;
            let err = (analytic - fd).abs();
            assert!(
                err <= 1e-3 * fd.abs() + 2e-5 && fd.abs() > 1e-3,
                "seed {seed}, slice {slice}: analytic {analytic}, finite difference {fd}"
            );
        }
    }
}

#[test]
fn loss_is_the_mean_negative_log_probability() {
    let config = tiny();
    let data = sequences(4, 4, 6, config.vocab);
    let data = refs(&data);
    let mut model = scrambled(config, 5);
    let loss = model.loss_and_gradients(&data);
    let lp: f64 = model.log_probs(&data).iter().sum();
    assert!(
        (loss + lp / 24.0).abs() < 1e-5 * loss.abs(),
        "{loss} vs {}",
        -lp / 24.0
    );
}

#[test]
fn cached_logits_equal_the_full_forward_pass() {
    let config = tiny();
    let mut model = scrambled(config, 6);
    let seq = sequences(7, 1, 5, config.vocab).pop().unwrap();
    for n in 0..=5 {
        let cached = model.next_logits(&seq[..n]).unwrap();
        // The full pass scores BOS, seq[..n] and one more token: its last row's logits.
        let mut probe = seq[..n].to_vec();
        probe.push(0);
        let (inputs, _, len) = model.inputs_and_targets(&[&probe]);
        model.forward(&inputs, 1, len);
        let full = &model.logits[(len - 1) * config.vocab..len * config.vocab];
        for (c, f) in cached.iter().zip(full) {
            assert!(
                (c - f).abs() <= 1e-5 * (1.0 + f.abs()),
                "prefix {n}: {c} vs {f}"
            );
        }
    }
}

/// Beam search by brute force: every beam's log-probabilities from a fresh full forward pass.
fn brute_beam(
    model: &mut Transformer,
    prompt: &[u32],
    new: usize,
    beams: usize,
    penalty: f64,
) -> Vec<u32> {
    let vocab = model.config().vocab;
    let mut live: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
    for _ in 0..new {
        let mut candidates = Vec::new();
        for (b, (tokens, score)) in live.iter().enumerate() {
            let mut text = prompt.to_vec();
            text.extend(tokens);
            let mut probe = text.clone();
            probe.push(0);
            let lps: Vec<f64> = (0..vocab as u32)
                .map(|w| {
                    *probe.last_mut().unwrap() = w;
                    model.log_probs(&[&probe])[0]
                })
                .collect();
            let base = model.log_probs(&[&text])[0];
            for w in 0..vocab as u32 {
                let lp = lps[w as usize] - base;
                let s = if text.contains(&w) { lp * penalty } else { lp };
                candidates.push((score + s, b, w));
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        live = candidates[..beams.min(candidates.len())]
            .iter()
            .map(|&(s, b, w)| {
                let mut t = live[b].0.clone();
                t.push(w);
                (t, s)
            })
            .collect();
    }
    live.swap_remove(0).0
}

#[test]
fn beam_search_equals_brute_force() {
    let config = tiny();
    for seed in 0..6u64 {
        let mut model = scrambled(config, 20 + seed);
        let prompt = sequences(seed, 1, 2, config.vocab).pop().unwrap();
        for (beams, penalty) in [(1, 1.0), (2, 3.0), (3, 1.5), (5, 3.0)] {
            let got = model.beam_search(&prompt, 4, beams, penalty).unwrap();
            let want = brute_beam(&mut model, &prompt, 4, beams, penalty);
            assert_eq!(got, want, "seed {seed}, {beams} beams, penalty {penalty}");
        }
    }
}

#[test]
fn greedy_and_single_beam_agree_and_top_k_one_is_greedy() {
    let config = tiny();
    let model = scrambled(config, 31);
    let greedy = Sampling {
        temperature: 0.0,
        ..Sampling::PLAIN
    };
    let top1 = Sampling {
        top_k: 1,
        ..Sampling::PLAIN
    };
    let tiny_p = Sampling {
        top_p: 1e-9,
        ..Sampling::PLAIN
    };
    let prompt = [1, 2];
    let g = model.sample(&prompt, 4, greedy, &mut rng(0)).unwrap();
    assert_eq!(g, model.beam_search(&prompt, 4, 1, 1.0).unwrap());
    assert_eq!(g, model.sample(&prompt, 4, top1, &mut rng(1)).unwrap());
    assert_eq!(g, model.sample(&prompt, 4, tiny_p, &mut rng(2)).unwrap());
}

/// Pearson's chi-square statistic of first-token counts against the softmax (with top-k
/// applied), compared with the 1 - 1e-6 quantile of its law (false-alarm rate 1e-6).
#[test]
fn sampling_follows_the_softmax() {
    let config = tiny();
    let model = scrambled(config, 41);
    let logits = model.next_logits(&[3]).unwrap();
    let draws = 20_000usize;
    for (temperature, top_k) in [(1.0, 0usize), (0.7, 0), (1.0, 4)] {
        let sampling = Sampling {
            temperature,
            top_k,
            top_p: 1.0,
        };
        let mut counts = vec![0usize; config.vocab];
        let mut r = rng(50);
        for _ in 0..draws {
            counts[model.sample(&[3], 1, sampling, &mut r).unwrap()[0] as usize] += 1;
        }
        let mut order: Vec<usize> = (0..config.vocab).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let kept = if top_k == 0 { config.vocab } else { top_k };
        let weights: Vec<f64> = (0..config.vocab)
            .map(|w| {
                if order[..kept].contains(&w) {
                    (f64::from(logits[w]) / temperature).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut chi2 = 0.0;
        for w in 0..config.vocab {
            let expected = draws as f64 * weights[w] / total;
            if expected == 0.0 {
                assert_eq!(counts[w], 0, "a token outside the top {top_k} was drawn");
            } else {
                chi2 += (counts[w] as f64 - expected).powi(2) / expected;
            }
        }
        let df = (kept - 1) as f64;
        let bound = statrs::distribution::ContinuousCDF::inverse_cdf(
            &statrs::distribution::ChiSquared::new(df).unwrap(),
            1.0 - 1e-6,
        );
        assert!(
            chi2 < bound,
            "temperature {temperature}, top-k {top_k}: chi2 {chi2} >= {bound}"
        );
    }
}

fn trained(threads: usize) -> (Vec<u32>, Vec<f64>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let config = Config {
            vocab: 12,
            context: 16,
            width: 16,
            layers: 2,
            heads: 2,
        };
        let mut model = Transformer::new(config, &mut rng(9)).unwrap();
        // A deterministic language: token i + 1 follows token i (mod 12).
        let data: Vec<Vec<u32>> = (0..24u32)
            .map(|s| (0..12).map(|i| (s + i) % 12).collect())
            .collect();
        let data = refs(&data);
        let training = Training {
            epochs: 60,
            batch: 8,
            lr: 3e-3,
            weight_decay: 0.01,
            clip: 1.0,
        };
        let mut losses = Vec::new();
        let done = model
            .train(
                &data,
                training,
                &|e| rng(1000 + e as u64),
                &mut |s: StepReport| {
                    losses.push(s.loss);
                    true
                },
            )
            .unwrap();
        assert!(done);
        let bits = model
            .flat_parameters()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        (bits, losses)
    })
}

#[test]
fn training_learns_and_is_bit_identical_for_any_thread_count() {
    let (one, losses) = trained(1);
    let (three, losses3) = trained(3);
    assert_eq!(one, three);
    assert_eq!(losses, losses3);
    // From ln 12 = 2.48 at the start to a language whose only uncertainty is the first token
    // (ln 12 / 12 = 0.21 nats per token): below 0.4.
    assert!(losses[0] > 2.2, "initial loss {}", losses[0]);
    let last = losses[losses.len() - 1];
    assert!(last < 0.4, "final loss {last}");
}

#[test]
fn learning_rate_warms_up_then_decays_to_a_tenth() {
    let t = Training {
        epochs: 1,
        batch: 1,
        lr: 1e-3,
        weight_decay: 0.0,
        clip: 1.0,
    };
    let total = 1000;
    assert_eq!(Training::warmup(total), 100);
    assert!((t.rate(0, total) - 1e-5).abs() < 1e-9);
    assert!((t.rate(99, total) - 1e-3).abs() < 1e-9);
    assert!((t.rate(999, total) - 1e-4).abs() < 1e-7);
    let rates: Vec<f32> = (100..total).map(|s| t.rate(s, total)).collect();
    assert!(rates.windows(2).all(|w| w[1] <= w[0]));
}

#[test]
fn bad_configurations_and_prompts_are_refused() {
    let ok = tiny();
    for (config, what) in [
        (Config { heads: 3, ..ok }, "heads"),
        (Config { heads: 0, ..ok }, "heads"),
        (Config { width: 0, ..ok }, "width"),
        (Config { layers: 0, ..ok }, "layers"),
        (Config { context: 0, ..ok }, "context"),
        (Config { vocab: 1, ..ok }, "vocab"),
    ] {
        let err = Transformer::new(config, &mut rng(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{config:?}: {err}");
    }
    let model = Transformer::new(ok, &mut rng(0)).unwrap();
    let err = model
        .beam_search(&[1, 2, 3], 4, 2, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than the model's 6"), "{err}");
    assert!(model.sample(&[9], 1, Sampling::PLAIN, &mut rng(0)).is_err());
    let hot = Sampling {
        temperature: f64::NAN,
        ..Sampling::PLAIN
    };
    assert!(model.sample(&[1], 1, hot, &mut rng(0)).is_err());
    assert!(
        Optimizer::new(Training {
            epochs: 1,
            batch: 1,
            lr: f32::NAN,
            weight_decay: 0.0,
            clip: 1.0
        })
        .is_err()
    );
}
