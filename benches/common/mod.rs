//! Helpers of the benches that compare a training step with a JAX peer (`benches/vae.rs`,
//! `benches/lm.rs`).

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

/// Whether `python3 -c "import jax"` succeeds.
pub fn jax_available() -> bool {
    Command::new("python3")
        .args(["-c", "import jax"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Field `key` of the last JSON line a peer script printed, or None (with its stderr) if it
/// failed.
pub fn peer_value(script: &str, args: &[&str], key: &str) -> Option<f64> {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v[key].as_f64()
}

/// The best rate (units per second) of `step`, which returns the units it did, over three
/// timed spells filling `seconds`, after `warm_up` untimed steps.
pub fn best_rate<T>(seconds: f64, warm_up: usize, mut step: impl FnMut() -> (usize, T)) -> f64 {
    for _ in 0..warm_up {
        black_box(step());
    }
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let start = Instant::now();
        let mut units = 0;
        while start.elapsed().as_secs_f64() < seconds / 3.0 {
            let (n, out) = step();
            black_box(out);
            units += n;
        }
        best = best.max(units as f64 / start.elapsed().as_secs_f64());
    }
    best
}
