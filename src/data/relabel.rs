//! Relabelling a split into a binary task: one class against the rest.
//!
//! The convex arm of the bounds (docs/bounds.md §2.9) needs a 2-class model, whose clipped loss is
//! convex; on a K-class data set such as MNIST it trains "class c vs the rest". Relabelling happens
//! before the collective plants, so a collective's target is then 1 (class c) or 0 (the rest).

use tch::Kind;

use super::{DataError, Dataset, Split};

/// `split` with labels `y == class` → 1 and every other label → 0, and `num_classes = 2`.
/// Errors when `class` is not one of the split's classes.
pub fn one_vs_rest(split: Split, class: i64) -> Result<Split, DataError> {
    let k = split.train.num_classes;
    if !(0..k).contains(&class) {
        return Err(DataError::Spec(format!(
            "one_vs_rest = {class}: `{}` has classes 0..{}",
            split.name,
            k - 1
        )));
    }
    let relabel = |d: &Dataset| Dataset {
        x: d.x.shallow_clone(),
        y: d.y.eq(class).to_kind(Kind::Int64),
        num_classes: 2,
    };
    Ok(Split {
        name: format!("{}:{class}-vs-rest", split.name),
        train: relabel(&split.train),
        test: relabel(&split.test),
        ..split
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn relabels_train_and_test_and_refuses_unknown_classes() {
        let d = |ys: &[i64]| Dataset {
            x: Tensor::zeros([ys.len() as i64, 2], (Kind::Float, tch::Device::Cpu)),
            y: Tensor::from_slice(ys),
            num_classes: 3,
        };
        let split = || Split {
            name: "t".into(),
            train: d(&[0, 1, 2, 1]),
            test: d(&[2, 1]),
            feature_names: vec![],
            feature_std: vec![],
            vocab: None,
        };
        let s = one_vs_rest(split(), 1).unwrap();
        assert_eq!(Vec::<i64>::try_from(&s.train.y).unwrap(), vec![0, 1, 0, 1]);
        assert_eq!(Vec::<i64>::try_from(&s.test.y).unwrap(), vec![0, 1]);
        assert_eq!((s.train.num_classes, s.test.num_classes), (2, 2));
        let e = one_vs_rest(split(), 3).err().unwrap().to_string();
        assert!(e.contains("one_vs_rest = 3") && e.contains("0..2"), "{e}");
    }
}
