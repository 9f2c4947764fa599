//! A privacy arm of the grid: `none`, `eps=E` (σ calibrated to ε at the train section's δ) or
//! `sigma=S` (a fixed noise multiplier; `sigma=0` with a clip is the clip-only arm).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A privacy arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Privacy {
    /// Plain SGD: no clipping, no noise.
    NonPrivate,
    /// DP-SGD with σ calibrated so that the run reaches this ε at the train section's δ.
    Epsilon(f64),
    /// DP-SGD with this noise multiplier; σ = 0 with a clip is the clip-only arm.
    Sigma(f64),
}

impl fmt::Display for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Privacy::NonPrivate => write!(f, "none"),
            Privacy::Epsilon(e) => write!(f, "eps={e}"),
            Privacy::Sigma(s) => write!(f, "sigma={s}"),
        }
    }
}

impl FromStr for Privacy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "none" || t == "non-private" {
            return Ok(Privacy::NonPrivate);
        }
        let (key, val) = t
            .split_once('=')
            .ok_or_else(|| format!("privacy `{s}`: expected `none`, `eps=<ε>` or `sigma=<σ>`"))?;
        let x: f64 = val.trim().parse().map_err(|_| format!("privacy `{s}`: `{val}` is not a number"))?;
        match key.trim() {
            "eps" | "epsilon" => {
                if x.is_finite() && x > 0.0 {
                    Ok(Privacy::Epsilon(x))
                } else {
                    Err(format!("privacy `{s}`: ε must be finite and > 0"))
                }
            }
            "sigma" => {
                if x.is_finite() && x >= 0.0 {
                    Ok(Privacy::Sigma(x + 0.0))
                } else {
                    Err(format!("privacy `{s}`: σ must be finite and ≥ 0"))
                }
            }
            k => Err(format!("privacy `{s}`: unknown key `{k}`, expected `eps` or `sigma`")),
        }
    }
}

impl TryFrom<String> for Privacy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Privacy> for String {
    fn from(p: Privacy) -> String {
        p.to_string()
    }
}
