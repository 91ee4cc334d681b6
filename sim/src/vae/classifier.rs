//! The judge of generated digits: an MLP classifier (P-256-10, ReLU, softmax cross-entropy)
//! trained on the real training images, whose held-out accuracy is reported beside the class
//! distribution it assigns to generated images.

use crate::SimError;
use crate::data::Digits;
use crate::nn::{Adam, Dense, Init, Relu, softmax_cross_entropy};
use crate::rng::ChainRng;

/// Hidden width.
const HIDDEN: usize = 256;
/// Minibatch size and epochs of its training (enough to pass 90% held-out on 4,500 digits).
const BATCH: usize = 64;
const EPOCHS: usize = 15;
/// Images per forward pass when classifying.
const EVAL_BATCH: usize = 512;

#[derive(Debug, Clone)]
pub struct Classifier {
    classes: usize,
    fc1: Dense,
    relu: Relu,
    fc2: Dense,
    dlogits: Vec<f32>,
}

impl Classifier {
    /// Trains on the images `train` of `digits` (Adam, lr 1e-3, mean loss over the batch),
    /// shuffling every epoch with `rng`.
    pub fn train(
        digits: &Digits,
        train: &[usize],
        rng: &mut ChainRng,
    ) -> Result<Classifier, SimError> {
        let classes = digits.class_counts().len().max(1);
        let pixels = digits.pixels();
        let mut model = Classifier {
            classes,
            fc1: Dense::new(pixels, HIDDEN, Init::PyTorch, rng)?,
            relu: Relu::new(),
            fc2: Dense::new(HIDDEN, classes, Init::PyTorch, rng)?,
            dlogits: Vec::new(),
        };
        let mut adam = Adam::new(1e-3, 0.0)?;
        let mut order = train.to_vec();
        let mut labels = Vec::with_capacity(BATCH);
        for _ in 0..EPOCHS {
            super::shuffle(&mut order, rng);
            for chunk in order.chunks(BATCH) {
                let x = digits.batch(chunk);
                labels.clear();
                labels.extend(chunk.iter().map(|&i| u32::from(digits.labels[i])));
                model.step(&x, &labels, &mut adam)?;
            }
        }
        Ok(model)
    }

    fn step(&mut self, x: &[f32], labels: &[u32], adam: &mut Adam) -> Result<(), SimError> {
        let batch = labels.len();
        self.fc1.zero_grad();
        self.fc2.zero_grad();
        let h = self.relu.forward(self.fc1.forward(x, batch));
        let logits = self.fc2.forward(h, batch);
        self.dlogits.resize(logits.len(), 0.0);
        softmax_cross_entropy(
            logits,
            self.classes,
            labels,
            1.0 / batch as f32,
            &mut self.dlogits,
        );
        let dh = self.fc2.backward(&self.dlogits);
        self.fc1.backward_params(self.relu.backward(dh));
        let mut params: Vec<_> = self.fc1.params_and_grads().into();
        params.extend(self.fc2.params_and_grads());
        adam.step(&mut params)
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The most likely class of each of the `images.len() / pixels` images (intensities in
    /// [0, 1], image after image); ties go to the lower class.
    pub fn predict(&mut self, images: &[f32]) -> Vec<usize> {
        let pixels = self.fc1.inputs();
        let mut out = Vec::with_capacity(images.len() / pixels);
        for chunk in images.chunks(EVAL_BATCH * pixels) {
            let batch = chunk.len() / pixels;
            let h = self.relu.forward(self.fc1.forward(chunk, batch));
            let logits = self.fc2.forward(h, batch);
            out.extend(logits.chunks_exact(self.classes).map(|row| {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                best
            }));
        }
        out
    }

    /// Fraction of the images `indices` of `digits` classified as labelled.
    pub fn accuracy(&mut self, digits: &Digits, indices: &[usize]) -> f64 {
        if indices.is_empty() {
            return f64::NAN;
        }
        let predicted = self.predict(&digits.batch(indices));
        let right = predicted
            .iter()
            .zip(indices)
            .filter(|&(&p, &i)| p == usize::from(digits.labels[i]))
            .count();
        right as f64 / indices.len() as f64
    }
}
