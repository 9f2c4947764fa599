//! Planting collectives in a copy of the training set.
//!
//! # What `plant` does
//! 1. Validates every spec against the data (α ∈ (0, 1), Σα < 1, target a class, trigger fits,
//!    ⌊α·N⌋ ≥ 1, ν ∈ [0, 1]).
//! 2. Draws members with one ChaCha20 stream, `crate::rng::stream(seed, Stream::Collective)`,
//!    collective by collective in the order given: collective i takes exactly m_i = ⌊α_i·N⌋
//!    records, uniformly without replacement (partial Fisher–Yates), from the records that are
//!    eligible for it (`members_from` relative to its target) *and not already taken by an earlier
//!    collective* — so collectives are disjoint, and the order of `specs` matters for which
//!    records each gets (not for how many). Too few eligible records is an error.
//! 3. Right after collective i's members, draws its ⌊ν_i·m_i⌋ deviators uniformly from its
//!    members, then each deviator's random choice (jittered trigger or wrong label), in ascending
//!    record order.
//! 4. Rewrites the members' records **in place in a copy** of the train set: the collective is a
//!    fraction of the data, not added data, so N is unchanged and non-members are bit-identical.
//!    Members get (g(x), label) with label from [`super::Strategy::planted_label`]; deviators as in
//!    [`super::noise`].

use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use tch::{Kind, Tensor};

use super::error::CollectiveError;
use super::noise::{floor_count, Deviation};
use super::spec::{validate_against, CollectiveSpec};
use crate::data::Dataset;
use crate::rng::{stream, Stream};

/// What the run record says about one planted collective.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct CollectiveInfo {
    /// Position in the list of specs (0-based).
    pub index: usize,
    /// The spec as given (with defaults filled in).
    pub spec: CollectiveSpec,
    /// The spec in string form, for tables.
    pub spec_string: String,
    /// Target label y*.
    pub target: i64,
    /// Eligible records left when this collective was drawn.
    pub eligible: u64,
    /// Members: exactly ⌊α·N⌋.
    pub members: u64,
    /// Members that deviated (coordination noise): exactly ⌊ν·members⌋.
    pub deviators: u64,
    /// Training-set indices of the members, ascending (not serialised: it can be large).
    #[serde(skip)]
    pub member_indices: Vec<i64>,
    /// Training-set indices of the deviators, ascending (not serialised).
    #[serde(skip)]
    pub deviator_indices: Vec<i64>,
}

/// A training set with collectives planted, and what was done.
#[derive(Debug)]
pub struct Planted {
    /// Copy of the training set with members' records rewritten (same N).
    pub train: Dataset,
    /// One entry per spec, in order.
    pub collectives: Vec<CollectiveInfo>,
}

/// Labels as a Vec, after checking the data set is usable.
pub(crate) fn labels(data: &Dataset) -> Result<Vec<i64>, CollectiveError> {
    let ysize = data.y.size();
    if ysize.len() != 1 {
        return Err(CollectiveError::BadData(format!("labels must be 1-D, got shape {ysize:?}")));
    }
    let xsize = data.x.size();
    if xsize.is_empty() || xsize[0] != ysize[0] {
        return Err(CollectiveError::BadData(format!("features {xsize:?} and labels {ysize:?} disagree on N")));
    }
    if data.num_classes < 2 {
        return Err(CollectiveError::BadData(format!("num_classes = {} (need >= 2)", data.num_classes)));
    }
    let y = Vec::<i64>::try_from(&data.y.f_to_kind(Kind::Int64)?.f_contiguous()?)?;
    if let Some(bad) = y.iter().find(|&&v| v < 0 || v >= data.num_classes) {
        return Err(CollectiveError::BadData(format!("label {bad} is outside 0..{}", data.num_classes)));
    }
    Ok(y)
}

/// The first `k` entries of `pool` after a partial Fisher–Yates shuffle: a uniform sample of
/// size `k` without replacement. Returned ascending.
fn sample(pool: &mut [i64], k: usize, rng: &mut ChaCha20Rng) -> Vec<i64> {
    let n = pool.len();
    for i in 0..k.min(n) {
        let j = rng.random_range(i..n);
        pool.swap(i, j);
    }
    let mut out = pool[..k.min(n)].to_vec();
    out.sort_unstable();
    out
}

/// A label drawn uniformly from `0..num_classes` without `avoid`.
fn other_label(avoid: i64, num_classes: i64, rng: &mut ChaCha20Rng) -> i64 {
    let r = rng.random_range(0..num_classes - 1);
    if r >= avoid {
        r + 1
    } else {
        r
    }
}

/// Plants the collectives `specs` in a copy of `train`; see the module docs for the procedure.
/// Deterministic for a given `seed`; `None` draws from OS entropy.
pub fn plant(train: &Dataset, specs: &[CollectiveSpec], seed: Option<u64>) -> Result<Planted, CollectiveError> {
    let y = labels(train)?;
    let n = train.len();
    let shape = train.example_shape();
    validate_against(specs, &shape, n, train.num_classes)?;

    let mut rng = stream(seed, Stream::Collective);
    let mut taken = vec![false; y.len()];
    let mut new_x = train.x.copy();
    let mut new_y = y.clone();
    let mut infos = Vec::with_capacity(specs.len());

    for (index, spec) in specs.iter().enumerate() {
        let m = floor_count(spec.alpha, n as u64);
        let mut pool: Vec<i64> = (0..y.len())
            .filter(|&j| !taken[j] && spec.members_from.eligible(y[j], spec.target))
            .map(|j| j as i64)
            .collect();
        if (pool.len() as u64) < m {
            return Err(CollectiveError::NotEnoughEligible {
                index,
                needed: m,
                available: pool.len() as u64,
                members_from: spec.members_from.to_string(),
                target: spec.target,
            });
        }
        let eligible = pool.len() as u64;
        let members = sample(&mut pool, m as usize, &mut rng);
        for &j in &members {
            taken[j as usize] = true;
        }
        let (d, kind) = match &spec.noise {
            Some(noise) => (noise.deviators(m), Some(noise.kind)),
            None => (0, None),
        };
        let mut member_pool = members.clone();
        let deviators = sample(&mut member_pool, d as usize, &mut rng);

        // Records that get the planned trigger: all members except jittering or dropping-out
        // deviators (wrong-target deviators plant the right trigger).
        let keeps_trigger = |j: &i64| match kind {
            Some(Deviation::Jitter) | Some(Deviation::Dropout) => deviators.binary_search(j).is_err(),
            _ => true,
        };
        let triggered: Vec<i64> = members.iter().copied().filter(keeps_trigger).collect();
        if !triggered.is_empty() {
            let idx = Tensor::from_slice(&triggered);
            let gx = spec.trigger.apply(&train.x.f_index_select(0, &idx)?)?;
            let _ = new_x.f_index_copy_(0, &idx, &gx)?;
        }
        for &j in &members {
            new_y[j as usize] = spec.strategy.planted_label(y[j as usize], spec.target);
        }
        match kind {
            Some(Deviation::Jitter) => {
                let magnitude = spec.noise.as_ref().map(|n| n.jitter_magnitude(&spec.trigger)).unwrap_or(0.0);
                for &j in &deviators {
                    let t = spec.trigger.jittered(&shape, magnitude, &mut rng)?;
                    let gx = t.apply(&train.x.f_narrow(0, j, 1)?)?;
                    new_x.f_narrow(0, j, 1)?.f_copy_(&gx)?;
                }
            }
            Some(Deviation::WrongTarget) => {
                for &j in &deviators {
                    let planned = spec.strategy.planted_label(y[j as usize], spec.target);
                    new_y[j as usize] = other_label(planned, train.num_classes, &mut rng);
                }
            }
            Some(Deviation::Dropout) => {
                for &j in &deviators {
                    new_y[j as usize] = y[j as usize];
                }
            }
            None => {}
        }
        infos.push(CollectiveInfo {
            index,
            spec: spec.clone(),
            spec_string: spec.to_string(),
            target: spec.target,
            eligible,
            members: m,
            deviators: d,
            member_indices: members,
            deviator_indices: deviators,
        });
    }
    Ok(Planted {
        train: Dataset { x: new_x, y: Tensor::from_slice(&new_y), num_classes: train.num_classes },
        collectives: infos,
    })
}
