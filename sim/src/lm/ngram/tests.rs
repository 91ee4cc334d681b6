use super::*;
use crate::rng::{ChainRng, stream};
use proptest::prelude::*;

/// An independent Kneser–Ney: the formula of the module documentation evaluated from plain
/// lists of padded n-grams by linear scans, no keys, no cached contexts.
struct Reference {
    order: usize,
    vocab: usize,
    /// `grams[k - 1]`: the distinct k-grams of level k with their (continuation) counts.
    grams: Vec<Vec<(Vec<u32>, u64)>>,
}

impl Reference {
    fn new(sequences: &[Vec<u32>], vocab: usize, order: usize) -> Reference {
        let bos = vocab as u32;
        let mut top: Vec<(Vec<u32>, u64)> = Vec::new();
        for s in sequences {
            let mut p = vec![bos; order - 1];
            p.extend_from_slice(s);
            for g in p.windows(order) {
                match top.iter_mut().find(|(x, _)| x == g) {
                    Some(e) => e.1 += 1,
                    None => top.push((g.to_vec(), 1)),
                }
            }
        }
        let mut grams = vec![Vec::new(); order];
        grams[order - 1] = top;
        for k in (1..order).rev() {
            let mut lower: Vec<(Vec<u32>, u64)> = Vec::new();
            for (g, _) in &grams[k] {
                let suffix = &g[1..];
                match lower.iter_mut().find(|(x, _)| x == suffix) {
                    Some(e) => e.1 += 1,
                    None => lower.push((suffix.to_vec(), 1)),
                }
            }
            grams[k - 1] = lower;
        }
        Reference {
            order,
            vocab,
            grams,
        }
    }

    fn discount(&self, k: usize) -> f64 {
        let n1 = self.grams[k - 1].iter().filter(|g| g.1 == 1).count() as f64;
        let n2 = self.grams[k - 1].iter().filter(|g| g.1 == 2).count() as f64;
        if n1 > 0.0 && n2 > 0.0 {
            n1 / (n1 + 2.0 * n2)
        } else {
            0.5
        }
    }

    /// P_k(w | h) with h of k - 1 tokens.
    fn p(&self, k: usize, h: &[u32], w: u32) -> f64 {
        let lower = if k == 1 {
            1.0 / self.vocab as f64
        } else {
            self.p(k - 1, &h[1..], w)
        };
        let after: Vec<&(Vec<u32>, u64)> = self.grams[k - 1]
            .iter()
            .filter(|(g, _)| &g[..k - 1] == h)
            .collect();
        let total: u64 = after.iter().map(|g| g.1).sum();
        if total == 0 {
            return lower;
        }
        let d = self.discount(k);
        let c = after.iter().find(|g| g.0[k - 1] == w).map_or(0, |g| g.1);
        (c as f64 - d).max(0.0) / total as f64 + d * after.len() as f64 / total as f64 * lower
    }

    fn prob(&self, history: &[u32], w: u32) -> f64 {
        let n = self.order - 1;
        let mut h = vec![self.vocab as u32; n.saturating_sub(history.len())];
        h.extend_from_slice(&history[history.len().saturating_sub(n)..]);
        self.p(self.order, &h, w)
    }
}

fn fit(sequences: &[Vec<u32>], vocab: usize, order: usize) -> NGram {
    let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
    NGram::fit(&refs, vocab, order).unwrap()
}

/// Small corpora over a few tokens, with an order, a vocabulary that may exceed the tokens
/// used, and a history (which may hold unseen contexts).
fn corpus() -> impl Strategy<Value = (Vec<Vec<u32>>, usize, usize, Vec<u32>)> {
    (1usize..=6, 1usize..=MAX_ORDER).prop_flat_map(|(vocab, order)| {
        (
            prop::collection::vec(prop::collection::vec(0..vocab as u32, 0..12), 0..5),
            Just(vocab),
            Just(order),
            prop::collection::vec(0..vocab as u32, 0..5),
        )
    })
}

proptest! {
    #[test]
    fn probabilities_match_the_reference_and_sum_to_one((seqs, vocab, order, history) in corpus()) {
        let model = fit(&seqs, vocab, order);
        let reference = Reference::new(&seqs, vocab, order);
        let mut sum = 0.0;
        for w in 0..vocab as u32 {
            let p = model.prob(&history, w);
            let r = reference.prob(&history, w);
            prop_assert!(p > 0.0);
            prop_assert!((p - r).abs() <= 1e-12 * r.max(1e-300), "P({w}) {p} vs {r}");
            sum += p;
        }
        prop_assert!((sum - 1.0).abs() < 1e-12, "sum {sum}");
    }

    #[test]
    fn ranked_gives_every_token_once_in_descending_probability(
        (seqs, vocab, order, history) in corpus()
    ) {
        let model = fit(&seqs, vocab, order);
        let ranked: Vec<(u32, f64)> = model.ranked(&history).collect();
        let mut tokens: Vec<u32> = ranked.iter().map(|r| r.0).collect();
        tokens.sort_unstable();
        prop_assert_eq!(tokens, (0..vocab as u32).collect::<Vec<_>>());
        for pair in ranked.windows(2) {
            prop_assert!(pair[0].1 >= pair[1].1, "{:?}", ranked);
        }
        for &(w, p) in &ranked {
            let exact = model.prob(&history, w);
            prop_assert!((p - exact).abs() <= 1e-12 * exact, "{w}: {p} vs {exact}");
        }
    }

    #[test]
    fn beam_search_equals_scoring_every_token(
        (seqs, vocab, order, prompt) in corpus(),
        beams in 1usize..=4,
        penalty in prop::sample::select(vec![1.0, 2.0, 3.0]),
    ) {
        let model = fit(&seqs, vocab, order);
        let fast = model.beam_search(&prompt, 6, beams, penalty);
        let slow = brute_force_beam_search(&model, &prompt, 6, beams, penalty);
        prop_assert_eq!(fast, slow);
    }
}

/// Beam search scoring all V tokens of every beam, with the same tie rules.
fn brute_force_beam_search(
    model: &NGram,
    prompt: &[u32],
    new_tokens: usize,
    beams: usize,
    penalty: f64,
) -> Vec<u32> {
    let mut live: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
    for _ in 0..new_tokens {
        let mut all = Vec::new();
        for (b, (tokens, score)) in live.iter().enumerate() {
            let text: Vec<u32> = prompt.iter().chain(tokens).copied().collect();
            for w in 0..model.vocab() as u32 {
                let lp = model.prob(&text, w).ln();
                let s = if text.contains(&w) { lp * penalty } else { lp };
                all.push((score + s, b, w));
            }
        }
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        live = all
            .into_iter()
            .take(beams)
            .map(|(s, b, w)| {
                let mut t = live[b].0.clone();
                t.push(w);
                (t, s)
            })
            .collect();
    }
    live.swap_remove(0).0
}

#[test]
fn a_bigram_model_by_hand() {
    // One sequence a b a b c (a = 0, b = 1, c = 2), order 2, V = 3. Padded: S a b a b c.
    // Bigrams: Sa 1, ab 2, ba 1, bc 1: n1 = 3, n2 = 1, D2 = 3/5.
    // Unigram continuation counts: a 2 (after S, b), b 1 (after a), c 1 (after b): total 4,
    // n1 = 2, n2 = 1, D1 = 1/2; P1(a) = 1.5/4 + (0.5 * 3 / 4) / 3 = 0.5, P1(b) = P1(c) = 0.25.
    // After a: c(a) = 2, one type: P(b | a) = (2 - 0.6) / 2 + 0.6 * 1 / 2 * 0.25 = 0.775.
    // After c (unseen context): P(w | c) = P1(w).
    let model = fit(&[vec![0, 1, 0, 1, 2]], 3, 2);
    assert_eq!(model.discounts(), [0.5, 0.6]);
    assert!((model.prob(&[0], 1) - 0.775).abs() < 1e-15);
    assert!((model.prob(&[2], 0) - 0.5).abs() < 1e-15);
    assert!((model.prob(&[2], 2) - 0.25).abs() < 1e-15);
    // P(a | b) = (1 - 0.6) / 2 + 0.6 * 2 / 2 * 0.5 = 0.5.
    assert!((model.prob(&[1], 0) - 0.5).abs() < 1e-15);
    // log_prob is the sum of the conditional logs from the start symbol.
    let lp = model.log_prob(&[0, 1]);
    assert!((lp - (model.prob(&[], 0).ln() + 0.775f64.ln())).abs() < 1e-15);
}

#[test]
fn greedy_is_beam_search_with_one_beam_and_no_penalty() {
    let seqs: Vec<Vec<u32>> = (0..20)
        .map(|i| (0..30).map(|j| ((i * 7 + j * j) % 11) as u32).collect())
        .collect();
    let model = fit(&seqs, 11, 3);
    let prompt = [3, 4];
    let got = model.beam_search(&prompt, 10, 1, 1.0);
    let mut text = prompt.to_vec();
    for _ in 0..10 {
        let best = (0..11u32)
            .max_by(|&a, &b| {
                model
                    .prob(&text, a)
                    .total_cmp(&model.prob(&text, b))
                    .then(b.cmp(&a))
            })
            .unwrap();
        text.push(best);
    }
    assert_eq!(got, text[2..]);
}

#[test]
fn a_repetition_penalty_turns_away_from_a_repeated_token() {
    // After 0 the data continue with 0 six times and 1 four times: greedy repeats 0; with a
    // penalty of 3 on the already present 0, the next token is 1.
    let mut seqs = vec![vec![0, 0]; 6];
    seqs.extend(vec![vec![0, 1]; 4]);
    let model = fit(&seqs, 3, 2);
    let (same, other) = (model.prob(&[0], 0).ln(), model.prob(&[0], 1).ln());
    assert!(3.0 * same < other && other < same, "{same} {other}");
    assert_eq!(model.beam_search(&[0], 1, 1, 1.0), [0]);
    assert_eq!(model.beam_search(&[0], 1, 1, 3.0), [1]);
    assert_eq!(model.beam_search(&[0], 1, 3, 3.0), [1]);
}

/// Draws of the first sampled token match the model's distribution: a chi-square test with 5
/// degrees of freedom at a false-alarm rate of 1e-6 (critical value 35.9), fixed seed.
#[test]
fn sampling_follows_the_model() {
    let seqs: Vec<Vec<u32>> = (0..10)
        .map(|i| (0..20).map(|j| ((i + j * 3) % 6) as u32).collect())
        .collect();
    let model = fit(&seqs, 6, 2);
    let mut rng = ChainRng::for_chain(7, stream::TEST, 0);
    let draws = 60_000;
    let mut counts = [0u64; 6];
    for _ in 0..draws {
        counts[model.sample(&[2], 1, &mut rng)[0] as usize] += 1;
    }
    let chi2: f64 = (0..6u32)
        .map(|w| {
            let expected = draws as f64 * model.prob(&[2], w);
            (counts[w as usize] as f64 - expected).powi(2) / expected
        })
        .sum();
    assert!(chi2 < 35.9, "chi-square {chi2}, counts {counts:?}");
    assert_eq!(model.sample(&[2], 5, &mut rng).len(), 5);
}

proptest! {
    /// A token absent from the training data has at most gamma_1 / V after any history, and
    /// exactly that after a history the model never saw.
    #[test]
    fn an_absent_token_keeps_only_the_smoothing_mass(
        (seqs, vocab, order, history) in corpus()
    ) {
        // Token `vocab` (one past the data's tokens) never occurs.
        let model = fit(&seqs, vocab + 1, order);
        let absent = vocab as u32;
        let bound = model.unseen_probability();
        prop_assert!(model.prob(&history, absent) <= bound * (1.0 + 1e-12));
        let unseen_history = vec![absent; MAX_ORDER];
        let p = model.prob(&unseen_history, absent);
        prop_assert!((p - bound).abs() <= 1e-15 * bound, "{p} vs {bound}");
    }
}

#[test]
fn bad_settings_are_refused() {
    let s: &[u32] = &[0, 1];
    for (vocab, order) in [(2, 0), (2, MAX_ORDER + 1), (0, 2), (MAX_VOCAB + 1, 2)] {
        assert!(matches!(
            NGram::fit(&[s], vocab, order),
            Err(SimError::Invalid { .. })
        ));
    }
    let err = NGram::fit(&[s], 1, 2).unwrap_err().to_string();
    assert!(
        err.contains("token 1 is not below the vocabulary 1"),
        "{err}"
    );
}

#[test]
fn an_empty_corpus_is_uniform() {
    let model = NGram::fit(&[], 5, 3).unwrap();
    for w in 0..5 {
        assert!((model.prob(&[1, 2], w) - 0.2).abs() < 1e-15);
    }
    assert_eq!(model.ranked(&[]).count(), 5);
}
