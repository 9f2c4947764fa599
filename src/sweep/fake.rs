//! TEST HOOK: a deterministic fake cell runner, for testing the sweep driver and reports without
//! training anything. Never the default: `crowdout sweep` uses it only when the environment
//! variable `CROWDOUT_FAKE_RUNNER` is set (e.g. `sleep-ms:50` or `sleep-ms:0,fail-seed:1`), and
//! then says so on stderr and sets every row's `flag` column to `FAKE`.
//!
//! Its numbers are a made-up smooth function of the cell (a logistic rise of success in log α,
//! whose midpoint grows as ε shrinks or σ grows, with a small per-seed offset); they mean nothing.

use super::spec::{Cell, Privacy};
use super::store::ResultRow;

/// The environment variable that swaps the fake runner in.
pub const FAKE_RUNNER_ENV: &str = "CROWDOUT_FAKE_RUNNER";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeRunner {
    /// Sleep this long per cell (to make kill-mid-run tests possible).
    pub sleep_ms: u64,
    /// Cells with this seed fail (to test failure rows and retries).
    pub fail_seed: Option<u64>,
}

impl std::str::FromStr for FakeRunner {
    type Err = String;
    /// `sleep-ms:<n>` and `fail-seed:<s>`, comma-separated; `1` or empty = no options.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut f = FakeRunner::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty() && *p != "1") {
            let (k, v) = part
                .split_once(':')
                .ok_or_else(|| format!("{FAKE_RUNNER_ENV}: `{part}`: expected key:value"))?;
            let n: u64 =
                v.parse().map_err(|_| format!("{FAKE_RUNNER_ENV}: `{part}`: `{v}` is not an integer"))?;
            match k {
                "sleep-ms" => f.sleep_ms = n,
                "fail-seed" => f.fail_seed = Some(n),
                _ => return Err(format!("{FAKE_RUNNER_ENV}: unknown option `{k}` (sleep-ms, fail-seed)")),
            }
        }
        Ok(f)
    }
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl FakeRunner {
    pub fn run(&self, cell: &Cell) -> Result<ResultRow, String> {
        if self.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms));
        }
        if self.fail_seed == Some(cell.seed) {
            return Err(format!("fake failure for seed {}", cell.seed));
        }
        let mut r = ResultRow::from_cell(cell);
        let (alpha50, eps, sigma) = match cell.privacy {
            Privacy::NonPrivate => (0.003, None, None),
            Privacy::Epsilon(e) => (0.004 * (1.0 + 8.0 / e), Some(e), Some(1.0 / e.sqrt())),
            Privacy::Sigma(s) => (0.004 * (1.0 + 4.0 * s), None, Some(s)),
        };
        let jitter = ((cell.seed % 7) as f64 - 3.0) * 0.01;
        let baseline = 0.02;
        let s = if cell.alpha > 0.0 {
            let x = ((cell.alpha / alpha50).ln() / 0.6).clamp(-50.0, 50.0);
            (baseline + (1.0 - baseline) * logistic(x) + jitter).clamp(0.0, 1.0)
        } else {
            (baseline + jitter.abs() * 0.1).clamp(0.0, 1.0)
        };
        r.success = Some(s);
        r.success_lo = Some((s - 0.04).max(0.0));
        r.success_hi = Some((s + 0.04).min(1.0));
        r.success_all = Some(s * 0.9 + 0.1);
        r.baseline_success = Some(baseline);
        r.clean_acc = Some(match eps {
            Some(e) => 0.95 - 0.25 / (1.0 + e),
            None => 0.95 - 0.02 * sigma.unwrap_or(0.0),
        });
        r.sigma = sigma;
        r.q = Some(0.01);
        r.steps = Some(100 * cell.train.epochs as u64);
        r.eps_rdp = eps.or(match cell.privacy {
            Privacy::Sigma(s) if s > 0.0 => Some(4.0 / s),
            _ => None,
        });
        r.eps_pld = r.eps_rdp.map(|e| e * 0.9);
        if cell.alpha > 0.0 {
            let a = cell.alpha;
            r.hardt_lb = Some((1.0 - (1.0 - a) / a * 0.002).max(0.0));
            r.dpsgd_lb = Some((r.hardt_lb.unwrap_or(0.0) - 0.3 * sigma.unwrap_or(0.0)).max(0.0));
            r.dpsgd_lb_kind = "prediction".into();
        }
        r.ceiling_ub = eps.map(|e| (a_ceiling(cell.alpha, e)).min(1.0));
        r.flag = "FAKE".into();
        Ok(r)
    }
}

/// A made-up ceiling that grows with α and ε.
fn a_ceiling(alpha: f64, eps: f64) -> f64 {
    baseline_plus(alpha * 1000.0 * (eps.min(10.0) / 10.0))
}

fn baseline_plus(x: f64) -> f64 {
    0.05 + x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let f: FakeRunner = "sleep-ms:50,fail-seed:2".parse().unwrap();
        assert_eq!(f, FakeRunner { sleep_ms: 50, fail_seed: Some(2) });
        assert_eq!("1".parse::<FakeRunner>().unwrap(), FakeRunner::default());
        assert!("sleep:1".parse::<FakeRunner>().is_err());
    }
}
