//! The leaf of the collective grammar: `key=value` lists and number parsing shared by the spec
//! string ([`super::spec`]), triggers ([`super::trigger`]) and coordination noise ([`super::noise`]).
//! It depends on nothing but the error type, so those modules import it and not each other.

use std::collections::BTreeMap;

use super::error::CollectiveError;

/// `KEY=VALUE` items of one level of the grammar, with unknown and duplicate keys rejected.
pub(crate) struct KvList<'a> {
    map: BTreeMap<&'a str, &'a str>,
    context: String,
}

impl<'a> KvList<'a> {
    pub(crate) fn parse(items: &[&'a str], context: &str, allowed: &[&str]) -> Result<Self, CollectiveError> {
        let mut map = BTreeMap::new();
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (k, v) = item.split_once('=').ok_or_else(|| CollectiveError::BadValue {
                key: item.into(),
                value: String::new(),
                reason: format!("expected KEY=VALUE in `{context}`"),
            })?;
            let (k, v) = (k.trim(), v.trim());
            if !allowed.contains(&k) {
                return Err(CollectiveError::UnknownKey {
                    key: k.into(),
                    context: context.into(),
                    expected: allowed.join(", "),
                });
            }
            if map.insert(k, v).is_some() {
                return Err(CollectiveError::DuplicateKey { key: k.into(), context: context.into() });
            }
        }
        Ok(KvList { map, context: context.into() })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).copied()
    }

    pub(crate) fn required(&self, key: &str) -> Result<&'a str, CollectiveError> {
        self.get(key)
            .ok_or_else(|| CollectiveError::MissingKey { key: key.into(), context: self.context.clone() })
    }
}

pub(crate) fn parse_f64(key: &str, v: &str) -> Result<f64, CollectiveError> {
    let x: f64 = v.parse().map_err(|e: std::num::ParseFloatError| CollectiveError::BadValue {
        key: key.into(),
        value: v.into(),
        reason: e.to_string(),
    })?;
    if !x.is_finite() {
        return Err(CollectiveError::BadValue {
            key: key.into(),
            value: v.into(),
            reason: "must be finite".into(),
        });
    }
    Ok(x)
}

pub(crate) fn parse_i64(key: &str, v: &str) -> Result<i64, CollectiveError> {
    v.parse().map_err(|e: std::num::ParseIntError| CollectiveError::BadValue {
        key: key.into(),
        value: v.into(),
        reason: e.to_string(),
    })
}
