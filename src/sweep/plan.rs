//! A sweep's grid as index arithmetic: cell `k` of the Cartesian product, its [`Cell`] and its
//! `config_hash`, without building any other cell.
//!
//! The order is [`SweepSpec::cells`]'s (dataset, model, collective, privacy arm × clip, alpha,
//! seed; the last varies fastest), so cell `k` here is cell `k` there, and shard `i/n` is the cells
//! with `k % n == i − 1`. A shard task walks `k = i − 1, i − 1 + n, …` and builds only those cells.
//!
//! Hashing: [`Cell::config_hash`] is SHA-256 of the cell's canonical JSON (keys sorted, labels out),
//! built through a `serde_json::Value` per cell — a few microseconds of allocation each, which
//! made planning a 10⁶-cell grid take half a minute. The canonical JSON of a cell is a fixed
//! concatenation of the canonical JSON of its axis values, so [`Plan`] renders each axis value
//! once and per cell only concatenates fragments into a reused buffer and hashes it. The fragments
//! are rendered by the same code as [`Cell::canonical_json`], and [`Plan::new`] compares the two
//! on the first and last cells: should the cell's JSON ever gain a key the template does not know,
//! the plan falls back to [`Cell::config_hash`] (slow, never wrong).
//!
//! Duplicates: the spec parser rejects duplicate axis values, but a hand-built [`SweepSpec`] may
//! have them. Two cells have the same canonical JSON exactly when each axis value has the same
//! fragment, and the later of two equal values on an axis only ever yields cells that an earlier
//! index already yielded; so each axis keeps the first of equal fragments, which gives the order
//! and the cells of the old "skip a hash already seen" expansion.

use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::spec::{canonical_json_of, Cell, CollectiveCell, Privacy, SweepSpec, TrainSection};
use super::SweepError;

/// One axis: its distinct values (by canonical JSON) in spec order, and that JSON.
#[derive(Debug, Clone)]
struct Axis<T> {
    values: Vec<T>,
    json: Vec<String>,
}

impl<T: Clone> Axis<T> {
    fn new(values: impl IntoIterator<Item = T>, json_of: impl Fn(&T) -> String) -> Self {
        let mut axis = Axis { values: Vec::new(), json: Vec::new() };
        for v in values {
            let j = json_of(&v);
            if !axis.json.contains(&j) {
                axis.values.push(v);
                axis.json.push(j);
            }
        }
        axis
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}

/// A privacy arm with its clip (`None` for non-private arms, which do not clip).
type Arm = (Privacy, Option<f64>);

/// The grid of a [`SweepSpec`], addressable by cell index.
#[derive(Debug, Clone)]
pub struct Plan {
    sweep: String,
    train: TrainSection,
    dataset: Axis<String>,
    model: Axis<String>,
    collective: Axis<CollectiveCell>,
    /// (privacy JSON, clip JSON) of each arm in `arm_json`.
    arm: Axis<Arm>,
    arm_json: Vec<(String, String)>,
    alpha: Axis<f64>,
    seed: Axis<u64>,
    train_json: String,
    len: usize,
    /// Whether the fragment template reproduces [`Cell::canonical_json`] (checked in `new`).
    fast: bool,
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    canonical_json_of(&serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
}

/// The cells of shard `i` of `n` (1-based) in a grid of `len` cells.
pub fn shard_size(len: usize, (i, n): (usize, usize)) -> usize {
    if n == 0 || i == 0 || i > len {
        return 0;
    }
    (len - (i - 1)).div_ceil(n)
}

/// Lower-case hex of the first 8 bytes of a digest (the 16-digit `config_hash`).
fn hex16(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(16);
    for &b in &digest[..8] {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

impl Plan {
    /// Renders every axis value once; fails only for a grid of more than `usize::MAX` cells.
    pub fn new(spec: &SweepSpec) -> Result<Plan, SweepError> {
        let g = &spec.grid;
        let dataset = Axis::new(g.dataset.iter().cloned(), json);
        let model = Axis::new(g.model.iter().cloned(), json);
        // The collective's label is left out of the hash (see Cell::canonical_json).
        let collective =
            Axis::new(g.collectives.iter().cloned(), |c| format!("{{\"spec\":{}}}", json(&c.spec)));
        let arms = g.privacy.iter().flat_map(|&p| -> Vec<Arm> {
            match p {
                Privacy::NonPrivate => vec![(p, None)],
                _ => g.clip.iter().map(|&c| (p, Some(c))).collect(),
            }
        });
        let arm = Axis::new(arms, |(p, c)| format!("{}|{}", json(p), json(c)));
        let arm_json = arm.values.iter().map(|(p, c)| (json(p), json(c))).collect();
        let alpha = Axis::new(g.alpha.iter().copied(), json);
        let seed = Axis::new(g.seed.iter().copied(), json);
        let len = [dataset.len(), model.len(), collective.len(), arm.len(), alpha.len(), seed.len()]
            .into_iter()
            .try_fold(1usize, |acc, n| acc.checked_mul(n))
            .ok_or_else(|| SweepError::Other("the grid has more cells than this machine can count".into()))?;
        let mut plan = Plan {
            sweep: spec.name.clone(),
            train: spec.train.clone(),
            train_json: json(&spec.train),
            dataset,
            model,
            collective,
            arm,
            arm_json,
            alpha,
            seed,
            len,
            fast: true,
        };
        plan.fast = plan.len == 0
            || [0, plan.len / 2, plan.len - 1].iter().all(|&k| {
                let mut s = String::new();
                plan.canonical_into(k, &mut s);
                s == plan.cell(k).canonical_json()
            });
        Ok(plan)
    }

    /// Cells in the grid.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Axis positions of cell `k`: (dataset, model, collective, arm, alpha, seed).
    fn coords(&self, k: usize) -> [usize; 6] {
        assert!(k < self.len, "cell index {k} outside a grid of {}", self.len);
        let radices = [
            self.dataset.len(),
            self.model.len(),
            self.collective.len(),
            self.arm.len(),
            self.alpha.len(),
            self.seed.len(),
        ];
        let mut out = [0; 6];
        let mut rest = k;
        for a in (0..6).rev() {
            out[a] = rest % radices[a];
            rest /= radices[a];
        }
        out
    }

    /// Cell `k` of the grid order.
    pub fn cell(&self, k: usize) -> Cell {
        let [d, m, c, a, al, s] = self.coords(k);
        let (privacy, clip) = self.arm.values[a];
        Cell {
            sweep: self.sweep.clone(),
            dataset: self.dataset.values[d].clone(),
            model: self.model.values[m].clone(),
            collective: self.collective.values[c].clone(),
            alpha: self.alpha.values[al],
            privacy,
            clip,
            seed: self.seed.values[s],
            train: self.train.clone(),
        }
    }

    /// Writes [`Cell::canonical_json`] of cell `k` into `out` (cleared first) from the fragments.
    fn canonical_into(&self, k: usize, out: &mut String) {
        let [d, m, c, a, al, s] = self.coords(k);
        let (privacy, clip) = &self.arm_json[a];
        out.clear();
        // Keys in sorted order, as write_canonical emits them.
        let _ = write!(
            out,
            "{{\"alpha\":{},\"clip\":{},\"collective\":{},\"dataset\":{},\"model\":{},\"privacy\":{},\
             \"seed\":{},\"train\":{}}}",
            self.alpha.json[al],
            clip,
            self.collective.json[c],
            self.dataset.json[d],
            self.model.json[m],
            privacy,
            self.seed.json[s],
            self.train_json
        );
    }

    /// [`Cell::config_hash`] of cell `k`; `buf` is scratch space, reused between calls.
    pub fn config_hash_with(&self, k: usize, buf: &mut String) -> String {
        if !self.fast {
            return self.cell(k).config_hash();
        }
        self.canonical_into(k, buf);
        hex16(&Sha256::digest(buf.as_bytes()))
    }

    /// [`Cell::config_hash`] of cell `k`.
    pub fn config_hash(&self, k: usize) -> String {
        self.config_hash_with(k, &mut String::new())
    }

    /// The cell indices of shard `(i, n)` (1-based; every index without a shard), ascending.
    pub fn indices(&self, shard: Option<(usize, usize)>) -> std::iter::StepBy<std::ops::Range<usize>> {
        match shard {
            None => (0..self.len).step_by(1),
            Some((i, n)) => (i.saturating_sub(1).min(self.len)..self.len).step_by(n.max(1)),
        }
    }

    /// Every cell, in grid order (memory: all of them; prefer [`Plan::cell`] for large grids).
    pub fn cells(&self) -> Vec<Cell> {
        (0..self.len).map(|k| self.cell(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::Path;

    /// The expansion as it was before the plan (nested loops, hash per cell, skip seen hashes):
    /// the reference the plan's order and hashes must reproduce.
    fn reference_cells(spec: &SweepSpec) -> Vec<Cell> {
        let g = &spec.grid;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for dataset in &g.dataset {
            for model in &g.model {
                for collective in &g.collectives {
                    for &privacy in &g.privacy {
                        let clips: Vec<Option<f64>> = match privacy {
                            Privacy::NonPrivate => vec![None],
                            _ => g.clip.iter().map(|&c| Some(c)).collect(),
                        };
                        for clip in clips {
                            for &alpha in &g.alpha {
                                for &seed in &g.seed {
                                    let cell = Cell {
                                        sweep: spec.name.clone(),
                                        dataset: dataset.clone(),
                                        model: model.clone(),
                                        collective: collective.clone(),
                                        alpha,
                                        privacy,
                                        clip,
                                        seed,
                                        train: spec.train.clone(),
                                    };
                                    if seen.insert(cell.config_hash()) {
                                        out.push(cell);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    const SPEC: &str = r#"
name = "p"
[grid]
dataset = ["adult-mini", "synth"]
model = ["softmax", "mlp"]
collectives = ["trigger=patch:size=3,target=0,strategy=feature-label", { name = "off", spec = "trigger=offset:feature=0:shift_std=4,target=1" }]
alpha = [0.0, 0.00005, 0.01, 0.1, 1e-7, 0.3333333333333333]
privacy = ["none", "eps=1", "sigma=0", "eps=0.25", "sigma=1.5"]
clip = [1.0, 5.0, 0.1]
seed = [0, 1, 7, 18446744073709551615]
[train]
epochs = 2
batch_size = 64
lr = 0.5
weight_decay = 0.05
one_vs_rest = 1
"#;

    fn check_against_reference(spec: &SweepSpec) {
        let reference = reference_cells(spec);
        let plan = Plan::new(spec).unwrap();
        assert!(plan.fast, "the fragment template must reproduce canonical_json");
        assert_eq!(plan.len(), reference.len());
        let mut buf = String::new();
        for (k, c) in reference.iter().enumerate() {
            assert_eq!(&plan.cell(k), c, "cell {k}");
            assert_eq!(plan.config_hash_with(k, &mut buf), c.config_hash(), "cell {k}");
        }
        assert_eq!(spec.cells(), reference);
    }

    #[test]
    fn plan_equals_the_nested_loop_expansion() {
        let text = SPEC.to_string();
        let s = SweepSpec::from_toml_str(&text, Path::new("p.toml")).unwrap();
        check_against_reference(&s);
        let non_private =
            text.replace(r#"["none", "eps=1", "sigma=0", "eps=0.25", "sigma=1.5"]"#, r#"["none"]"#);
        let non_private = non_private.replace("clip = [1.0, 5.0, 0.1]\n", "");
        check_against_reference(&SweepSpec::from_toml_str(&non_private, Path::new("p.toml")).unwrap());
    }

    #[test]
    fn plan_handles_every_train_setting() {
        // Settings left out of the hash at their defaults enter it when set (schedule, norm, …).
        for extra in [
            "lr_schedule = \"constant\"",
            "lr_schedule = \"cosine\"",
            "input_norm = { fixed = { mean = [0.5], std = [0.25] } }",
            "max_physical_batch = 16\ntrain_subset = 100\ntest_subset = 50\nmomentum = 0.9",
            "optimizer = \"adam\"\nclipping = \"per-layer\"\ngrad_mode = \"materialize\"\naccountant = \"pld\"\ndelta = 1e-6",
        ] {
            let text = format!("{SPEC}{extra}\n");
            match SweepSpec::from_toml_str(&text, Path::new("p.toml")) {
                Ok(s) => check_against_reference(&s),
                Err(e) => panic!("{extra}: {e}"),
            }
        }
    }

    #[test]
    fn hand_built_duplicates_collapse_like_before() {
        let text = SPEC.to_string();
        let mut s = SweepSpec::from_toml_str(&text, Path::new("p.toml")).unwrap();
        s.grid.seed.push(1);
        s.grid.alpha.insert(0, 0.1);
        s.grid.privacy.push(Privacy::NonPrivate);
        let mut relabelled = s.grid.collectives[1].clone();
        relabelled.name = "another label".into();
        s.grid.collectives.push(relabelled);
        check_against_reference(&s);
    }

    #[test]
    fn shards_are_index_classes() {
        let s = SweepSpec::from_toml_str(SPEC, Path::new("p.toml")).unwrap();
        let plan = Plan::new(&s).unwrap();
        let n = 7;
        let mut all: Vec<usize> = Vec::new();
        for i in 1..=n {
            let mine: Vec<usize> = plan.indices(Some((i, n))).collect();
            assert_eq!(mine.len(), shard_size(plan.len(), (i, n)));
            assert!(mine.iter().all(|k| k % n == i - 1));
            all.extend(mine);
        }
        all.sort();
        assert_eq!(all, (0..plan.len()).collect::<Vec<_>>());
        assert_eq!(shard_size(3, (5, 8)), 0);
        assert_eq!(shard_size(10, (3, 4)), 2);
        assert_eq!(shard_size(10, (4, 4)), 2);
        assert_eq!(shard_size(10, (1, 4)), 3);
    }
}
