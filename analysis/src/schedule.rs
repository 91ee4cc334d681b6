//! Sample-size schedules M_i, i = 0, 1, ...: `constant` (M), `linear` (M(i+1)),
//! `power:P` (ceil(M (i+1)^P)), `geometric:R` (ceil(M R^i)) and an explicit `list:a,b,c`
//! (used in order; its last entry repeats). Sizes are computed in 256-bit MPFR so that the
//! ceiling is exact for every practical input, and the same integers feed theory and simulation.

use crate::SpecError;
use crate::ball::Ball;
use crate::special::zeta;
use rug::Float;
use rug::ops::Pow;

/// Largest sample size accepted for one generation.
pub const MAX_SAMPLE_SIZE: u64 = 1 << 48;

#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleKind {
    Constant,
    Linear,
    Power(f64),
    Geometric(f64),
    List(Vec<u64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// M: the size of generation 0 (for a list, its first entry).
    pub base: u64,
    pub kind: ScheduleKind,
}

impl Schedule {
    pub fn constant(base: u64) -> Schedule {
        Schedule {
            base,
            kind: ScheduleKind::Constant,
        }
    }

    /// Parses `constant`, `linear`, `power:P`, `geometric:R` or `list:a,b,...`. `base` is the
    /// `--samples` value; a list carries its own sizes (a given `base` must equal its first).
    pub fn parse(base: Option<u64>, text: &str) -> Result<Schedule, SpecError> {
        let bad = |why: String| SpecError::invalid("schedule", why);
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (text.trim(), None),
        };
        let number = |a: Option<&str>| -> Result<f64, SpecError> {
            let a = a.ok_or_else(|| bad(format!("'{name}' needs a parameter, e.g. {name}:1.5")))?;
            let v: f64 = a
                .parse()
                .map_err(|_| bad(format!("'{a}' is not a number in '{text}'")))?;
            if !v.is_finite() {
                return Err(bad(format!("parameter of '{text}' must be finite")));
            }
            Ok(v)
        };
        let need_base =
            || base.ok_or_else(|| SpecError::invalid("samples", "--samples M is required"));
        let kind = match name {
            "constant" | "linear" if arg.is_some() => {
                return Err(bad(format!("'{name}' takes no parameter")));
            }
            "constant" => ScheduleKind::Constant,
            "linear" => ScheduleKind::Linear,
            "power" => {
                let p = number(arg)?;
                if p < 0.0 {
                    return Err(bad(format!("power exponent must be >= 0, got {p}")));
                }
                ScheduleKind::Power(p)
            }
            "geometric" => {
                let r = number(arg)?;
                if r < 1.0 {
                    return Err(bad(format!("geometric ratio must be >= 1, got {r}")));
                }
                ScheduleKind::Geometric(r)
            }
            "list" => {
                let a =
                    arg.ok_or_else(|| bad("'list' needs sizes, e.g. list:100,200,400".into()))?;
                let sizes = a
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u64>()
                            .map_err(|_| bad(format!("'{s}' is not a whole number in '{text}'")))
                    })
                    .collect::<Result<Vec<u64>, _>>()?;
                if sizes.is_empty() {
                    return Err(bad("the list is empty".into()));
                }
                if let Some(b) = base
                    && b != sizes[0]
                {
                    return Err(SpecError::invalid(
                        "samples",
                        format!(
                            "--samples {b} differs from the list's first size {}",
                            sizes[0]
                        ),
                    ));
                }
                let schedule = Schedule {
                    base: sizes[0],
                    kind: ScheduleKind::List(sizes),
                };
                schedule.check_base()?;
                return Ok(schedule);
            }
            other => {
                return Err(bad(format!(
                    "unknown schedule '{other}' (expected constant, linear, power:P, geometric:R or list:a,b,...)"
                )));
            }
        };
        let schedule = Schedule {
            base: need_base()?,
            kind,
        };
        schedule.check_base()?;
        Ok(schedule)
    }

    fn check_base(&self) -> Result<(), SpecError> {
        let check = |m: u64| {
            if m < 2 {
                Err(SpecError::invalid(
                    "samples",
                    format!("every sample size must be >= 2, got {m}"),
                ))
            } else if m > MAX_SAMPLE_SIZE {
                Err(SpecError::invalid(
                    "samples",
                    format!("sample size {m} exceeds {MAX_SAMPLE_SIZE}"),
                ))
            } else {
                Ok(())
            }
        };
        match &self.kind {
            ScheduleKind::List(sizes) => sizes.iter().try_for_each(|&m| check(m)),
            _ => check(self.base),
        }
    }

    /// A short label, e.g. `power:1.5`.
    fn number_label(x: f64) -> String {
        if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
            format!("{x:e}")
        } else {
            format!("{x}")
        }
    }

    /// A short label, e.g. `power:1.5`.
    pub fn label(&self) -> String {
        match &self.kind {
            ScheduleKind::Constant => "constant".into(),
            ScheduleKind::Linear => "linear".into(),
            ScheduleKind::Power(p) => format!("power:{}", Self::number_label(*p)),
            ScheduleKind::Geometric(r) => format!("geometric:{}", Self::number_label(*r)),
            ScheduleKind::List(v) => format!(
                "list:{}",
                v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            ),
        }
    }

    /// M_i, or an error if it falls below 2 or exceeds [`MAX_SAMPLE_SIZE`].
    pub fn size(&self, i: u64) -> Result<u64, SpecError> {
        let m = Float::with_val(256, self.base);
        let exact = match &self.kind {
            ScheduleKind::Constant => return Ok(self.base),
            ScheduleKind::Linear => m * Float::with_val(256, i + 1),
            ScheduleKind::Power(p) => m * Float::with_val(256, i + 1).pow(Float::with_val(64, *p)),
            ScheduleKind::Geometric(r) => m * Float::with_val(256, *r).pow(Float::with_val(256, i)),
            ScheduleKind::List(v) => return Ok(v[(i as usize).min(v.len() - 1)]),
        };
        let ceil = exact.ceil();
        if ceil > MAX_SAMPLE_SIZE {
            return Err(SpecError::invalid(
                "schedule",
                format!(
                    "{} gives a sample size above {MAX_SAMPLE_SIZE} at generation {i}",
                    self.label()
                ),
            ));
        }
        let m = ceil.to_f64() as u64;
        if m < 2 {
            return Err(SpecError::invalid("samples", format!("M_{i} = {m} < 2")));
        }
        Ok(m)
    }

    /// M_0, ..., M_{n-1}.
    pub fn sizes(&self, n: u64) -> Result<Vec<u64>, SpecError> {
        (0..n).map(|i| self.size(i)).collect()
    }

    /// Whether every M_i equals M_0 (constant, power:0, geometric:1, a list of equal sizes).
    pub fn is_constant(&self) -> bool {
        match &self.kind {
            ScheduleKind::Constant => true,
            ScheduleKind::Power(p) => *p == 0.0,
            ScheduleKind::Geometric(r) => *r == 1.0,
            ScheduleKind::Linear => false,
            ScheduleKind::List(v) => v.iter().all(|&m| m == v[0]),
        }
    }

    /// Whether sum_i 1/M_i converges (superlinear growth): the condition for a bounded E[W2^2]
    /// with the unbiased estimator (proofs/schedules.md, Sections 1 and 2).
    pub fn is_summable(&self) -> bool {
        match self.kind {
            ScheduleKind::Power(p) => p > 1.0,
            ScheduleKind::Geometric(r) => r > 1.0,
            _ => false,
        }
    }

    /// Enclosure of sum_{i >= n0} y_i^{-s} where y_i = M (i+1)^P or M R^i is the size before the
    /// ceiling (so M_i in [y_i, y_i + 1)); `None` unless the schedule is summable.
    pub fn tail_of_inverse_powers(&self, prec: u32, n0: u64, s: u32) -> Option<Ball> {
        let m_pow = Ball::exact(prec, self.base).pow_u(s);
        match self.kind {
            ScheduleKind::Power(p) if p > 1.0 => {
                let sp = Float::with_val(prec + 64, p) * s;
                let neg_sp = Float::with_val(prec + 64, -&sp);
                let mut partial = Ball::exact(prec, 0);
                for j in 1..=n0 {
                    let base = Float::with_val(64, j);
                    partial = partial.add(&Ball::correctly_rounded(prec, (&base).pow(&neg_sp)));
                }
                Some(zeta(prec, &sp).sub(&partial).div(&m_pow))
            }
            ScheduleKind::Geometric(r) if r > 1.0 => {
                let rb = Ball::from_f64(prec, r);
                let inv_rs = rb.pow_u(s).recip();
                let lead = inv_rs.pow_u64(n0);
                let denom = Ball::exact(prec, 1).sub(&inv_rs);
                Some(lead.div(&denom).div(&m_pow))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sizes() {
        let s = Schedule::parse(Some(10), "power:1.5").unwrap();
        assert_eq!(s.sizes(3).unwrap(), vec![10, 29, 52]); // 10, 28.28.., 51.96..
        let s = Schedule::parse(Some(10), "geometric:2").unwrap();
        assert_eq!(s.sizes(4).unwrap(), vec![10, 20, 40, 80]);
        let s = Schedule::parse(Some(10), "linear").unwrap();
        assert_eq!(s.size(9).unwrap(), 100);
        let s = Schedule::parse(None, "list:5,7").unwrap();
        assert_eq!(s.sizes(4).unwrap(), vec![5, 7, 7, 7]);
        for bad in [
            "power",
            "power:x",
            "power:-1",
            "geometric:0.5",
            "list:",
            "list:1,5",
            "cubic",
            "constant:3",
            "power:NaN",
            "power:inf",
        ] {
            assert!(Schedule::parse(Some(10), bad).is_err(), "{bad}");
        }
        assert!(Schedule::parse(Some(1), "constant").is_err());
        assert!(Schedule::parse(None, "constant").is_err());
        assert!(Schedule::parse(Some(6), "list:5,7").is_err());
        let huge = Schedule::parse(Some(10), "geometric:10").unwrap();
        assert!(huge.size(100).is_err());
    }

    #[test]
    fn bounded_iff_superlinear() {
        let summable = |t: &str| Schedule::parse(Some(10), t).unwrap().is_summable();
        assert!(!summable("constant"));
        assert!(!summable("linear"));
        assert!(!summable("power:1"));
        assert!(!summable("power:0.5"));
        assert!(summable("power:1.01"));
        assert!(summable("geometric:1.1"));
        assert!(!summable("geometric:1"));
        assert!(!summable("list:10,20,40"));
        // Partial sums: power:2 approaches zeta(2)/M; linear grows like ln(n)/M.
        let s = Schedule::parse(Some(10), "linear").unwrap();
        let partial = |n: u64| {
            s.sizes(n)
                .unwrap()
                .iter()
                .map(|&m| 1.0 / m as f64)
                .sum::<f64>()
        };
        assert!(partial(10_000) - partial(100) > 0.45); // ln(100)/10 = 0.46
    }

    #[test]
    fn tail_enclosures_contain_direct_sums() {
        // sum_{i>=n0} (M (i+1)^P)^-1 approximated by a long direct sum plus an integral tail.
        let s = Schedule::parse(Some(3), "power:2").unwrap();
        let tail = s.tail_of_inverse_powers(128, 10, 1).unwrap();
        let direct: f64 = (10..2_000_000u64)
            .map(|i| 1.0 / (3.0 * ((i + 1) as f64).powi(2)))
            .sum::<f64>()
            + 1.0 / (3.0 * 2_000_000.0);
        assert!(
            (tail.to_f64() - direct).abs() < 1e-12,
            "{} vs {direct}",
            tail.to_f64()
        );
        let g = Schedule::parse(Some(4), "geometric:2").unwrap();
        let t = g.tail_of_inverse_powers(128, 3, 2).unwrap();
        let direct: f64 = (3..200).map(|i| (4.0 * 2f64.powi(i)).powi(-2)).sum();
        assert!((t.to_f64() - direct).abs() < 1e-15);
    }
}
