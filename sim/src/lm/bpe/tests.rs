use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::LazyLock;

const PARAGRAPH: &str = "It was the best of times, it was the worst of times, it was the age of \
wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of \
incredulity, it was the season of Light, it was the season of Darkness, it was the spring of \
hope, it was the winter of despair, we had everything before us, we had nothing before us, we \
were all going direct to Heaven, we were all going direct the other way - in short, the period \
was so far like the present period, that some of its noisiest authorities insisted on its being \
received, for good or for evil, in the superlative degree of comparison only.\n\nThere were a \
king with a large jaw and a queen with a plain face, on the throne of England; there were a \
king with a large jaw and a queen with a fair face, on the throne of France. In 1775, it was \
clearer than crystal to the lords of the State preserves of loaves and fishes, that things in \
general were settled for ever.\n";

/// Trained on the English paragraph.
static ENGLISH: LazyLock<Bpe> = LazyLock::new(|| Bpe::train([PARAGRAPH], 400).unwrap());

/// Trained on strings over the alphabet "ab c\n", so that merges apply to random strings of it.
static SMALL: LazyLock<Bpe> =
    LazyLock::new(|| Bpe::train(small_docs().iter().map(String::as_str), 300).unwrap());

/// Pseudo-random text (a fixed linear congruential sequence) over the alphabet "ab c\n".
fn small_docs() -> Vec<String> {
    let mut state = 12_345u64;
    (0..30)
        .map(|_| {
            (0..60)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    b"aabbc  \n"[(state >> 33) as usize % 8] as char
                })
                .collect()
        })
        .collect()
}

/// Reference encoder: apply every merge in rank order to each chunk, replacing its
/// non-overlapping occurrences left to right.
fn slow_encode(bpe: &Bpe, text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for chunk in chunks(text) {
        let mut syms: Vec<u32> = chunk.bytes().map(u32::from).collect();
        for (r, &pair) in bpe.merges().iter().enumerate() {
            let mut next = Vec::with_capacity(syms.len());
            let mut i = 0;
            while i < syms.len() {
                if i + 1 < syms.len() && (syms[i], syms[i + 1]) == pair {
                    next.push(256 + r as u32);
                    i += 2;
                } else {
                    next.push(syms[i]);
                    i += 1;
                }
            }
            syms = next;
        }
        out.extend(syms);
    }
    out
}

fn is_invalid<T: std::fmt::Debug>(result: Result<T, SimError>) -> bool {
    matches!(result, Err(SimError::Invalid { .. }))
}

proptest! {
    #[test]
    fn decode_inverts_encode(s in any::<String>()) {
        let ids = ENGLISH.encode(&s);
        prop_assert_eq!(ENGLISH.decode(&ids), s.as_bytes());
        prop_assert_eq!(ENGLISH.decode_lossy(&ids), s);
    }

    #[test]
    fn decode_inverts_encode_on_english_like_text(s in "[a-zA-Z ,.'\n]{0,80}") {
        let ids = ENGLISH.encode(&s);
        prop_assert_eq!(ENGLISH.decode(&ids), s.as_bytes());
    }

    #[test]
    fn chunks_concatenate_back(s in any::<String>()) {
        let parts: Vec<&str> = chunks(&s).collect();
        prop_assert!(parts.iter().all(|p| !p.is_empty()));
        prop_assert_eq!(parts.concat(), s);
    }

    #[test]
    fn chunks_concatenate_back_on_mixed_classes(s in "[a1. \n\t]{0,40}") {
        let parts: Vec<&str> = chunks(&s).collect();
        prop_assert!(parts.iter().all(|p| !p.is_empty()));
        prop_assert_eq!(parts.concat(), s);
    }

    #[test]
    fn encode_matches_the_reference(s in "[ab c\n]{0,40}") {
        prop_assert_eq!(SMALL.encode(&s), slow_encode(&SMALL, &s));
    }

    #[test]
    fn encode_matches_the_reference_on_english(s in "[a-z ,.]{0,60}") {
        prop_assert_eq!(ENGLISH.encode(&s), slow_encode(&ENGLISH, &s));
    }

    #[test]
    fn encode_all_matches_encode(docs in proptest::collection::vec("[ab c\n]{0,30}", 0..8)) {
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let each: Vec<Vec<u32>> = refs.iter().map(|d| SMALL.encode(d)).collect();
        prop_assert_eq!(SMALL.encode_all(&refs), each);
    }
}

#[test]
fn small_vocabulary_actually_merges() {
    // Guards the reference-encoder proptest against vacuity.
    assert!(SMALL.merges().len() >= 10, "{}", SMALL.merges().len());
    assert!(ENGLISH.merges().len() >= 100, "{}", ENGLISH.merges().len());
}

#[test]
fn hand_checked_training() {
    // Chunks: "aaab" once, " aab" twice (a = 97, b = 98, space = 32).
    //   counts: (a,a) = 2 + 2*1 = 4, (a,b) = 1 + 2 = 3, (sp,a) = 2.
    // merge 0: (97,97) -> 256 "aa"; chunks become [256,97,98] x1, [32,256,98] x2.
    //   counts: (256,97) = 1, (97,98) = 1, (32,256) = 2, (256,98) = 2.
    // merge 1: tie at 2, smallest pair (32,256) -> 257 " aa"; " aab" becomes [257,98] x2.
    //   counts: (257,98) = 2, (256,97) = 1, (97,98) = 1.
    // merge 2: (257,98) -> 258 " aab". Every remaining pair occurs once: training stops.
    let bpe = Bpe::train(["aaab aab aab"], 1000).unwrap();
    assert_eq!(bpe.merges(), &[(97, 97), (32, 256), (257, 98)]);
    assert_eq!(bpe.vocab_size(), 259);
    assert_eq!(bpe.token_bytes(256), b"aa");
    assert_eq!(bpe.token_bytes(257), b" aa");
    assert_eq!(bpe.token_bytes(258), b" aab");
    assert_eq!(bpe.encode("aaab aab aab"), vec![256, 97, 98, 258, 258]);
    // Merges are left to right and non-overlapping: "aaaaa" is "aa", "aa", "a".
    assert_eq!(bpe.encode("aaaaa"), vec![256, 256, 97]);
    // The vocabulary size caps the merges.
    let capped = Bpe::train(["aaab aab aab"], 257).unwrap();
    assert_eq!(capped.merges(), &[(97, 97)]);
    assert_eq!(capped.encode(" aab"), vec![32, 256, 98]);
}

#[test]
fn training_stops_when_encoded_training_text_repeats_no_pair() {
    // Training rewrites its chunks exactly as encoding does, so when it stops for lack of a
    // pair seen twice, the encoded training chunks have no adjacent pair occurring twice.
    let docs = small_docs();
    let bpe = Bpe::train(docs.iter().map(String::as_str), Bpe::MAX_VOCAB).unwrap();
    assert!(bpe.vocab_size() < Bpe::MAX_VOCAB);
    let mut counts: HashMap<(u32, u32), u32> = HashMap::new();
    for doc in &docs {
        for chunk in chunks(doc) {
            for pair in bpe.encode(chunk).windows(2) {
                *counts.entry((pair[0], pair[1])).or_insert(0) += 1;
            }
        }
    }
    assert!(counts.values().all(|&n| n < 2), "{counts:?}");
}

#[test]
fn documents_are_separate() {
    // Pair counts add up over documents ("ab" twice gives (a,b) a count of 2), but no pair
    // spans two documents ("a", "b", "a", "b" has no pair at all).
    assert_eq!(Bpe::train(["ab", "ab"], 300).unwrap().merges(), &[(97, 98)]);
    assert!(
        Bpe::train(["a", "b", "a", "b"], 300)
            .unwrap()
            .merges()
            .is_empty()
    );
    assert!(Bpe::train(["ab"], 300).unwrap().merges().is_empty());
}

#[test]
fn training_is_deterministic() {
    let docs: Vec<String> = (0..40)
        .map(|i| {
            let words: Vec<&str> = PARAGRAPH.split(' ').collect();
            let k = (i * 7) % words.len();
            format!("{} {}", words[k..].join(" "), words[..k].join(" "))
        })
        .collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let a = Bpe::train(refs.iter().copied(), 600).unwrap();
    let b = Bpe::train(refs.iter().copied(), 600).unwrap();
    assert_eq!(a, b);
    // Many ties: the paragraph is symmetric under these rotations, so counts repeat.
    assert!(a.merges().len() > 200);
    let in_pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| Bpe::train(refs.iter().copied(), 600).unwrap())
    };
    assert_eq!(in_pool(1), a);
    assert_eq!(in_pool(3), a);
    // Document order does not matter either: only the multiset of chunks does.
    let reversed = Bpe::train(refs.iter().rev().copied(), 600).unwrap();
    assert_eq!(reversed, a);
}

#[test]
fn ties_go_to_the_smallest_pair() {
    // Pairs (c,d) and (a,b) both occur twice; (a,b) is smaller, so it comes first, whatever
    // the order of the text.
    let bpe = Bpe::train(["cd", "cd", "ab", "ab"], 1000).unwrap();
    assert_eq!(bpe.merges(), &[(97, 98), (99, 100)]);
    let bpe = Bpe::train(["ab", "ab", "cd", "cd"], 1000).unwrap();
    assert_eq!(bpe.merges(), &[(97, 98), (99, 100)]);
    // A higher count beats a smaller pair.
    let bpe = Bpe::train(["cd", "cd", "cd", "ab", "ab"], 1000).unwrap();
    assert_eq!(bpe.merges(), &[(99, 100), (97, 98)]);
}

#[test]
fn trained_tokens_compress() {
    let text = PARAGRAPH.repeat(20);
    let bpe = Bpe::train([text.as_str()], 1000).unwrap();
    let ids = bpe.encode(&text);
    assert!(
        ids.len() * 4 < text.len(),
        "{} ids for {} bytes",
        ids.len(),
        text.len()
    );
    assert_eq!(bpe.decode(&ids), text.as_bytes());
    // A vocabulary of bytes only does not compress.
    let bytes_only = Bpe::train([text.as_str()], 256).unwrap();
    assert_eq!(bytes_only.encode(&text).len(), text.len());
}

#[test]
fn vocabulary_size_is_checked() {
    assert!(is_invalid(Bpe::train([PARAGRAPH], 255)));
    assert!(is_invalid(Bpe::train([PARAGRAPH], 70_000)));
    assert!(is_invalid(Bpe::train([PARAGRAPH], Bpe::MAX_VOCAB + 1)));
    assert!(Bpe::train([PARAGRAPH], Bpe::MAX_VOCAB).is_ok());
    let bytes = Bpe::train([PARAGRAPH], 256).unwrap();
    assert!(bytes.merges().is_empty());
    assert_eq!(bytes.vocab_size(), 256);
    let text = "héllo, wörld\n";
    let ids: Vec<u32> = text.bytes().map(u32::from).collect();
    assert_eq!(bytes.encode(text), ids);
    assert_eq!(bytes.token_bytes(200), &[200]);
}

#[test]
fn vocabulary_is_filled_when_text_allows() {
    let bpe = Bpe::train([PARAGRAPH.repeat(3).as_str()], 300).unwrap();
    assert_eq!(bpe.vocab_size(), 300);
    // Every token is the concatenation of its merge's two tokens.
    for (r, &(left, right)) in bpe.merges().iter().enumerate() {
        let joined = [bpe.token_bytes(left), bpe.token_bytes(right)].concat();
        assert_eq!(bpe.token_bytes(256 + r as u32), joined.as_slice());
    }
}

#[test]
fn decode_lossy_replaces_cut_characters() {
    let bpe = Bpe::train([""], 256).unwrap();
    let ids: Vec<u32> = "é".bytes().map(u32::from).collect();
    assert_eq!(bpe.decode_lossy(&ids[..1]), "\u{FFFD}");
    assert_eq!(bpe.decode_lossy(&ids), "é");
}

#[test]
#[should_panic(expected = "outside the vocabulary")]
fn decode_panics_on_an_unknown_id() {
    ENGLISH.decode(&[ENGLISH.vocab_size() as u32]);
}

#[test]
fn serialisation_round_trips() {
    for bpe in [&*ENGLISH, &*SMALL, &Bpe::train([""], 256).unwrap()] {
        let bytes = bpe.to_bytes();
        assert_eq!(&bytes[..8], b"CLBPE001");
        assert_eq!(bytes.len(), 12 + 8 * bpe.merges().len());
        assert_eq!(&Bpe::from_bytes(&bytes).unwrap(), bpe);
    }
}

#[test]
fn from_bytes_refuses_malformed_input() {
    let bytes = SMALL.to_bytes();
    let mut wrong_magic = bytes.clone();
    wrong_magic[7] = b'2';
    assert!(is_invalid(Bpe::from_bytes(&wrong_magic)));
    for cut in 0..bytes.len() {
        assert!(is_invalid(Bpe::from_bytes(&bytes[..cut])), "cut at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(is_invalid(Bpe::from_bytes(&trailing)));

    let file = |merges: &[(u32, u32)]| {
        let mut out = b"CLBPE001".to_vec();
        out.extend_from_slice(&(merges.len() as u32).to_le_bytes());
        for &(l, r) in merges {
            out.extend_from_slice(&l.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }
        out
    };
    assert!(Bpe::from_bytes(&file(&[(97, 98), (256, 256)])).is_ok());
    // Merge 1 may use ids below 257 only.
    assert!(is_invalid(Bpe::from_bytes(&file(&[(97, 98), (257, 1)]))));
    assert!(is_invalid(Bpe::from_bytes(&file(&[(256, 1)]))));
    assert!(is_invalid(Bpe::from_bytes(&file(&[(1, u32::MAX)]))));
    // A pair merged twice.
    assert!(is_invalid(Bpe::from_bytes(&file(&[(97, 98), (97, 98)]))));
    // Too many merges.
    let mut too_many = b"CLBPE001".to_vec();
    too_many.extend_from_slice(&((Bpe::MAX_VOCAB - 255) as u32).to_le_bytes());
    too_many.resize(12 + 8 * (Bpe::MAX_VOCAB - 255), 0);
    assert!(is_invalid(Bpe::from_bytes(&too_many)));
    // Tokens doubling at every merge would need 2^60000 bytes.
    let doubling: Vec<(u32, u32)> = (0..40_000u32)
        .map(|r| if r == 0 { (97, 97) } else { (255 + r, 255 + r) })
        .collect();
    assert!(is_invalid(Bpe::from_bytes(&file(&doubling))));
}

#[test]
fn chunks_by_hand() {
    let cut = |s| chunks(s).collect::<Vec<_>>();
    assert_eq!(
        cut("Hello, world!\n\nIt's 42."),
        [
            "Hello", ",", " world", "!", "\n\n", "It", "'", "s", " 42", "."
        ]
    );
    assert_eq!(cut(""), Vec::<&str>::new());
    assert_eq!(cut(" "), [" "]);
    assert_eq!(cut("   "), ["   "]);
    assert_eq!(cut("a  b"), ["a", " ", " b"]);
    assert_eq!(cut("a   b"), ["a", "  ", " b"]);
    assert_eq!(cut("a\n b"), ["a", "\n", " b"]);
    assert_eq!(cut("a \nb"), ["a", " \n", "b"]);
    assert_eq!(cut("a\tb"), ["a", "\t", "b"]);
    assert_eq!(cut("end.  "), ["end", ".", "  "]);
    assert_eq!(cut(" ...!? x"), [" ...!?", " x"]);
    assert_eq!(cut("ab12cd"), ["ab", "12", "cd"]);
    assert_eq!(cut("x+=1;"), ["x", "+=", "1", ";"]);
    // Unicode classes: accented and CJK letters, Arabic-Indic digits, a no-break space
    // (whitespace, but not the leading space).
    assert_eq!(cut("café 日本語 ١٢٣"), ["café", " 日本語", " ١٢٣"]);
    assert_eq!(cut("١٢٣%½€"), ["١٢٣", "%", "½", "€"]);
    assert_eq!(cut("a\u{a0}b"), ["a", "\u{a0}", "b"]);
    assert_eq!(cut("a \u{a0}b"), ["a", " \u{a0}", "b"]);
}
