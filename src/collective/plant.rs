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
        return Err(CollectiveError::BadData(format!(
            "features {xsize:?} and labels {ysize:?} disagree on N"
        )));
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
pub fn plant(
    train: &Dataset,
    specs: &[CollectiveSpec],
    seed: Option<u64>,
) -> Result<Planted, CollectiveError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const K: i64 = 4;

    /// 200 images [1, 6, 6], labels i % 4, pixel values in (0, 1) never equal to 0 or 1.
    fn images(n: i64) -> Dataset {
        let v: Vec<f32> = (0..n * 36).map(|i| ((i * 37 + 11) % 97) as f32 / 100.0 + 0.01).collect();
        let y: Vec<i64> = (0..n).map(|i| i % K).collect();
        Dataset { x: Tensor::from_slice(&v).reshape([n, 1, 6, 6]), y: Tensor::from_slice(&y), num_classes: K }
    }

    fn spec(s: &str) -> CollectiveSpec {
        s.parse().unwrap()
    }

    fn rows(t: &Tensor) -> Vec<Vec<u32>> {
        let n = t.size()[0];
        (0..n)
            .map(|i| {
                Vec::<f32>::try_from(&t.get(i).reshape([-1])).unwrap().iter().map(|v| v.to_bits()).collect()
            })
            .collect()
    }

    fn ys(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(t).unwrap()
    }

    const PATCH: &str = "trigger=patch:size=2:pos=br:value=1";

    #[test]
    fn feature_label_members_exact_and_only_they_change() {
        let train = images(200);
        let s = spec(&format!("alpha=0.1,target=1,{PATCH}"));
        let p = plant(&train, std::slice::from_ref(&s), Some(3)).unwrap();
        let info = &p.collectives[0];
        assert_eq!(info.members, 20);
        assert_eq!(info.member_indices.len(), 20);
        assert_eq!(info.eligible, 150);
        assert_eq!(info.deviators, 0);
        let (y0, y1) = (ys(&train.y), ys(&p.train.y));
        let (x0, x1) = (rows(&train.x), rows(&p.train.x));
        let gx = rows(&s.trigger.apply(&train.x).unwrap());
        assert_eq!(p.train.len(), 200, "members are modified in place, not added");
        for i in 0..200usize {
            if info.member_indices.binary_search(&(i as i64)).is_ok() {
                assert_ne!(y0[i], 1, "members come from non-target records");
                assert_eq!(y1[i], 1, "feature-label writes y*");
                assert_eq!(x1[i], gx[i]);
            } else {
                assert_eq!(y1[i], y0[i]);
                assert_eq!(x1[i], x0[i], "non-member {i} changed");
            }
        }
        // The input set is untouched.
        assert_eq!(rows(&train.x), x0);
    }

    #[test]
    fn feature_only_and_erasing_keep_labels() {
        let train = images(200);
        let fo = spec(&format!("alpha=0.05,target=2,{PATCH},strategy=feature-only"));
        let p = plant(&train, &[fo], Some(1)).unwrap();
        let (y0, y1) = (ys(&train.y), ys(&p.train.y));
        assert_eq!(p.collectives[0].members, 10);
        for &j in &p.collectives[0].member_indices {
            assert_eq!(y0[j as usize], 2, "feature-only members are drawn from the target class");
            assert_eq!(y1[j as usize], 2);
        }
        let er = spec(&format!("alpha=0.05,target=2,{PATCH},strategy=erasing"));
        let p = plant(&train, std::slice::from_ref(&er), Some(1)).unwrap();
        let gx = rows(&er.trigger.apply(&train.x).unwrap());
        let x1 = rows(&p.train.x);
        for &j in &p.collectives[0].member_indices {
            assert_ne!(y0[j as usize], 2);
            assert_eq!(ys(&p.train.y)[j as usize], y0[j as usize], "erasing keeps the own label");
            assert_eq!(x1[j as usize], gx[j as usize], "erasing plants g");
        }
        let any = spec(&format!("alpha=0.5,target=2,{PATCH},members_from=any"));
        let p = plant(&train, &[any], Some(1)).unwrap();
        let from_target = p.collectives[0].member_indices.iter().filter(|&&j| y0[j as usize] == 2).count();
        assert!(from_target > 0 && from_target < 100);
    }

    #[test]
    fn several_collectives_are_disjoint_and_sized() {
        let train = images(200);
        let specs = [
            spec(&format!("alpha=0.3,target=0,{PATCH}")),
            spec("alpha=0.25,target=0,trigger=patch:size=2:pos=tl:value=0"),
            spec("alpha=0.2,target=3,trigger=grid:spacing=2:amplitude=0.5"),
        ];
        let p = plant(&train, &specs, Some(9)).unwrap();
        let counts: Vec<u64> = p.collectives.iter().map(|c| c.members).collect();
        assert_eq!(counts, vec![60, 50, 40]);
        let mut all: Vec<i64> = p.collectives.iter().flat_map(|c| c.member_indices.clone()).collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!(all.len(), before, "members must be disjoint across collectives");
        // Second collective drew from the not-target records left by the first.
        assert_eq!(p.collectives[1].eligible, 150 - 60);
        let y1 = ys(&p.train.y);
        for c in &p.collectives {
            for &j in &c.member_indices {
                assert_eq!(y1[j as usize], c.target);
            }
        }
        // Not enough left: target 0 excludes 50, first takes 60 of 150, second asks 100.
        let greedy =
            [spec(&format!("alpha=0.3,target=0,{PATCH}")), spec(&format!("alpha=0.5,target=0,{PATCH}"))];
        let e = plant(&train, &greedy, Some(9)).unwrap_err();
        assert_eq!(
            e,
            CollectiveError::NotEnoughEligible {
                index: 1,
                needed: 100,
                available: 90,
                members_from: "not-target".into(),
                target: 0
            }
        );
    }

    #[test]
    fn coordination_noise_counts_and_effects() {
        let train = images(200);
        let (x0, y0) = (rows(&train.x), ys(&train.y));
        let base = format!("alpha=0.25,target=1,{PATCH}");
        let gx = rows(&spec(&base).trigger.apply(&train.x).unwrap());

        let p = plant(&train, &[spec(&format!("{base},noise=0.2:dropout"))], Some(4)).unwrap();
        let c = &p.collectives[0];
        assert_eq!((c.members, c.deviators, c.deviator_indices.len()), (50, 10, 10));
        let (x1, y1) = (rows(&p.train.x), ys(&p.train.y));
        for &j in &c.member_indices {
            let j = j as usize;
            if c.deviator_indices.binary_search(&(j as i64)).is_ok() {
                assert_eq!((&x1[j], y1[j]), (&x0[j], y0[j]), "dropout keeps the clean record");
            } else {
                assert_eq!((&x1[j], y1[j]), (&gx[j], 1));
            }
        }

        let p = plant(&train, &[spec(&format!("{base},noise=0.3:wrong-target"))], Some(4)).unwrap();
        let c = &p.collectives[0];
        assert_eq!(c.deviators, 15);
        let (x1, y1) = (rows(&p.train.x), ys(&p.train.y));
        for &j in &c.member_indices {
            let j = j as usize;
            assert_eq!(x1[j], gx[j], "wrong-target deviators still plant g");
            let dev = c.deviator_indices.binary_search(&(j as i64)).is_ok();
            assert_eq!(y1[j] != 1, dev, "exactly the deviators carry a label != y*");
            assert!((0..K).contains(&y1[j]));
        }

        let p = plant(&train, &[spec(&format!("{base},noise=0.5:jitter=1"))], Some(4)).unwrap();
        let c = &p.collectives[0];
        assert_eq!(c.deviators, 25);
        let (x1, y1) = (rows(&p.train.x), ys(&p.train.y));
        for &j in &c.deviator_indices {
            let j = j as usize;
            assert_eq!(y1[j], 1);
            assert_ne!(x1[j], gx[j], "a jittered patch differs from the planned one");
            let ones = x1[j].iter().filter(|&&b| f32::from_bits(b) == 1.0).count();
            assert_eq!(ones, 4, "the jittered record still has one 2x2 patch of ones");
        }
    }

    #[test]
    fn deterministic_with_a_seed() {
        let train = images(200);
        let specs = [
            spec(&format!("alpha=0.1,target=1,{PATCH},noise=0.5:jitter")),
            spec("alpha=0.1,target=2,trigger=grid:spacing=3:amplitude=0.2,noise=0.5:jitter"),
        ];
        let a = plant(&train, &specs, Some(42)).unwrap();
        let b = plant(&train, &specs, Some(42)).unwrap();
        let c = plant(&train, &specs, Some(43)).unwrap();
        assert_eq!(a.collectives, b.collectives);
        assert_eq!(rows(&a.train.x), rows(&b.train.x));
        assert_eq!(ys(&a.train.y), ys(&b.train.y));
        assert_ne!(a.collectives[0].member_indices, c.collectives[0].member_indices);
    }

    #[test]
    fn data_errors() {
        let train = images(50);
        let e = plant(&train, &[spec(&format!("alpha=0.01,target=1,{PATCH}"))], Some(1)).unwrap_err();
        assert_eq!(e, CollectiveError::NoMembers { index: 0, alpha: 0.01, n: 50 });
        assert!(e.to_string().contains("0.01") && e.to_string().contains("50"));
        let e = plant(&train, &[spec(&format!("alpha=0.1,target=4,{PATCH}"))], Some(1)).unwrap_err();
        assert!(matches!(e, CollectiveError::TargetOutOfRange { target: 4, .. }));
        let e = plant(&train, &[spec("alpha=0.1,target=1,trigger=offset:feature=0:shift_std=1")], Some(1))
            .unwrap_err();
        assert!(matches!(e, CollectiveError::TriggerDoesNotFit { .. }));
        // feature-only: class 1 has 13 records of 50, 25 members wanted
        let e = plant(&train, &[spec(&format!("alpha=0.5,target=1,{PATCH},strategy=feature-only"))], Some(1))
            .unwrap_err();
        assert!(matches!(e, CollectiveError::NotEnoughEligible { needed: 25, available: 13, .. }), "{e}");
    }

    #[test]
    fn info_serialises_without_indices() {
        let train = images(100);
        let p = plant(&train, &[spec(&format!("alpha=0.1,target=1,{PATCH}"))], Some(1)).unwrap();
        let v = serde_json::to_value(&p.collectives[0]).unwrap();
        assert_eq!(v["members"], 10);
        assert_eq!(v["deviators"], 0);
        assert!(v.get("member_indices").is_none());
        assert_eq!(v["spec_string"], "alpha=0.1,target=1,trigger=patch:size=2:pos=br:value=1,strategy=feature-label,members_from=not-target");
    }
}
