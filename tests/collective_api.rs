//! The collective module through its public API only: tabular and token data, several
//! collectives with noise, success and ξ, as a caller (the trainer / sweep) would use it.

use crowdout::collective::{
    plant, success, success_many, triggered_test, xi_estimate, xi_relaxed, CollectiveError, CollectiveSpec,
    Strategy, Trigger, COLLECTIVE_SPEC_HELP,
};
use crowdout::data::Dataset;
use tch::{Kind, Tensor};

/// 300 standardised-looking rows [300, 5], labels i % 3.
fn tabular() -> Dataset {
    let v: Vec<f32> = (0..1500).map(|i| (((i * 53 + 7) % 201) as f32 - 100.0) / 50.0).collect();
    let y: Vec<i64> = (0..300).map(|i| i % 3).collect();
    Dataset { x: Tensor::from_slice(&v).reshape([300, 5]), y: Tensor::from_slice(&y), num_classes: 3 }
}

#[test]
fn help_documents_every_key() {
    for key in [
        "alpha=",
        "target=",
        "trigger=",
        "strategy=",
        "members_from=",
        "noise=",
        "patch:",
        "grid:",
        "offset:",
        "token:",
    ] {
        assert!(COLLECTIVE_SPEC_HELP.contains(key), "help lacks {key}");
    }
}

#[test]
fn tabular_offset_collectives_end_to_end() {
    let train = tabular();
    let specs: Vec<CollectiveSpec> = [
        "alpha=0.1,target=0,trigger=offset:feature=4:shift_std=3,noise=0.2:wrong-target",
        "alpha=0.05,target=2,trigger=offset:feature=1:shift_std=-2,strategy=erasing,noise=0.4:jitter=0.5",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let p = plant(&train, &specs, Some(2024)).unwrap();
    assert_eq!(p.collectives[0].members, 30);
    assert_eq!(p.collectives[0].deviators, 6);
    assert_eq!(p.collectives[1].members, 15);
    assert_eq!(p.collectives[1].deviators, 6);
    let ids0 = &p.collectives[0].member_indices;
    assert!(p.collectives[1].member_indices.iter().all(|j| ids0.binary_search(j).is_err()));

    // Offset members: only the chosen feature moved, by exactly +3 (f32 arithmetic).
    let x0 = Vec::<f32>::try_from(&train.x.reshape([-1])).unwrap();
    let x1 = Vec::<f32>::try_from(&p.train.x.reshape([-1])).unwrap();
    for &j in ids0 {
        for f in 0..5usize {
            let k = j as usize * 5 + f;
            if f == 4 {
                assert_eq!(x1[k], x0[k] + 3.0f32);
            } else {
                assert_eq!(x1[k].to_bits(), x0[k].to_bits());
            }
        }
    }

    // A "model" that reads the offset: feature 4 above 2.5 → class 0, else the true class is
    // unknown to it, so it says 1.
    let model = |x: &Tensor| x.select(1, 4).gt(2.5).logical_not().to_kind(Kind::Int64);
    let test = tabular();
    let r = success(&model, &test, &specs[0]).unwrap();
    // Triggered feature 4 = v + 3 > 2.5 iff v > -0.5; count that independently.
    let expected = (0..300usize).filter(|&i| i % 3 != 0 && x0[i * 5 + 4] + 3.0 > 2.5).count() as u64;
    assert_eq!((r.non_target.successes, r.non_target.n), (expected, 200));
    assert!(r.non_target.lo <= r.non_target.rate && r.non_target.rate <= r.non_target.hi);
    let m = success_many(&model, &test, &specs).unwrap();
    assert_eq!(m.per_collective[0], r);
    assert_eq!(m.per_collective[1].strategy, Strategy::Erasing);
    assert!((m.mean_success - (r.non_target.rate + m.per_collective[1].non_target.rate) / 2.0).abs() < 1e-15);

    let (tx, ty) = triggered_test(&test, &specs[0]).unwrap();
    assert_eq!(tx.size(), vec![200, 5]);
    assert!(Vec::<i64>::try_from(&ty).unwrap().iter().all(|&l| l != 0));

    // An offset never leaves a point unchanged: strict ξ = 0; relaxed ξ jumps at τ = |shift|
    // (up to f32 rounding of x + shift).
    assert_eq!(xi_estimate(&train, &specs[0].trigger, 1e-6).unwrap(), 0.0);
    assert_eq!(xi_relaxed(&train, &specs[0].trigger, 2.99).unwrap(), 0.0);
    assert_eq!(xi_relaxed(&train, &specs[0].trigger, 3.0 + 1e-5).unwrap(), 1.0);
}

#[test]
fn token_collective_and_serialised_record() {
    let ids: Vec<i64> = (0..400).map(|i| (i * 7) % 50).collect();
    let y: Vec<i64> = (0..100).map(|i| i % 2).collect();
    let train =
        Dataset { x: Tensor::from_slice(&ids).reshape([100, 4]), y: Tensor::from_slice(&y), num_classes: 2 };
    let spec: CollectiveSpec =
        "alpha=0.2,target=1,trigger=token:position=3:token=777,strategy=feature-only".parse().unwrap();
    let p = plant(&train, std::slice::from_ref(&spec), Some(5)).unwrap();
    let x1 = Vec::<i64>::try_from(&p.train.x.reshape([-1])).unwrap();
    assert_eq!(x1.iter().filter(|&&t| t == 777).count(), 20);
    let record = serde_json::to_string(&p.collectives).unwrap();
    assert!(record.contains("\"members\":20"), "{record}");
    assert_eq!(spec.trigger, Trigger::Token { position: 3, token: 777 });

    // Bad inputs give typed errors naming the value.
    let e = "alpha=0.2,target=1,trigger=token:position=4:token=1"
        .parse::<CollectiveSpec>()
        .map(|s| plant(&train, &[s], Some(1)));
    assert!(matches!(e, Ok(Err(CollectiveError::TriggerDoesNotFit { .. }))));
    let e = "alpha=0.001,target=1,trigger=token:position=0:token=1"
        .parse::<CollectiveSpec>()
        .map(|s| plant(&train, &[s], Some(1)));
    assert!(matches!(e, Ok(Err(CollectiveError::NoMembers { n: 100, .. }))));
}
