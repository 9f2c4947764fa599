//! A cell's identity: its canonical JSON (object keys sorted, labels left out) and the
//! `config_hash` (sha256 of it) that results, resumes and merges key on. The hash of a cell must
//! never change for the same settings: committed results are found by it.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::spec::{CollectiveCell, TrainSection};
use super::Privacy;

/// One run: a value on every axis plus the train section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The sweep's name (a label, left out of [`Cell::config_hash`]).
    pub sweep: String,
    pub dataset: String,
    pub model: String,
    pub collective: CollectiveCell,
    pub alpha: f64,
    pub privacy: Privacy,
    /// None for non-private cells (no clipping).
    pub clip: Option<f64>,
    pub seed: u64,
    pub train: TrainSection,
}

impl Cell {
    /// The canonical JSON of everything that determines the run's numbers: the cell with object
    /// keys sorted and the labels (`sweep`, `collective.name`) left out.
    pub fn canonical_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.remove("sweep");
            if let Some(c) = obj.get_mut("collective").and_then(|c| c.as_object_mut()) {
                c.remove("name");
            }
        }
        canonical_json_of(&v)
    }

    /// First 16 hex digits of SHA-256 of [`Cell::canonical_json`]: stable across runs,
    /// platforms and the order of keys in the TOML file. Identifies the cell in the results.
    pub fn config_hash(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The ε target of an `eps=` arm.
    pub fn target_epsilon(&self) -> Option<f64> {
        match self.privacy {
            Privacy::Epsilon(e) => Some(e),
            _ => None,
        }
    }
}

/// JSON with object keys sorted at every level (serde_json's own number formatting).
pub(crate) fn canonical_json_of(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push('{');
            for (i, (k, val)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(val, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, val) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(val, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}
