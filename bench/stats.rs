//! Percentiles and the report table.

use std::time::Duration;

/// A named series of samples in milliseconds.
pub struct Series {
    pub name: String,
    pub samples_ms: Vec<f64>,
    /// Target for p99 (ms), if the issue sets one.
    pub p99_target_ms: Option<f64>,
    pub note: String,
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest-rank percentile.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

impl Series {
    pub fn sorted(&self) -> Vec<f64> {
        let mut v = self.samples_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }

    pub fn passed(&self) -> Option<bool> {
        self.p99_target_ms.map(|t| {
            pct(&self.sorted(), 99.0) < t || (pct(&self.sorted(), 99.0) - t).abs() < f64::EPSILON
        })
    }

    pub fn row(&self) -> String {
        let s = self.sorted();
        let fmt = |v: f64| {
            if v < 1.0 {
                format!("{v:.3}")
            } else {
                format!("{v:.1}")
            }
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.name,
            s.len(),
            fmt(pct(&s, 50.0)),
            fmt(pct(&s, 90.0)),
            fmt(pct(&s, 99.0)),
            fmt(s.last().copied().unwrap_or(f64::NAN)),
            self.p99_target_ms
                .map(|t| format!("p99 < {}", fmt(t)))
                .unwrap_or_else(|| "-".into()),
            match self.passed() {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            }
        )
    }
}

pub const HEADER: &str = "| measurement | n | p50 ms | p90 ms | p99 ms | max ms | target | result |\n|---|---|---|---|---|---|---|---|";

#[cfg(test)]
mod tests {
    use super::pct;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&v, 50.0), 50.0);
        assert_eq!(pct(&v, 99.0), 99.0);
        assert_eq!(pct(&[3.0], 99.0), 3.0);
    }
}
