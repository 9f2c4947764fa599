//! The MF-Transformer's per-playlist gradients (tied embedding included) against the
//! one-record-at-a-time oracle: a full backward per record. Tolerance: max |oracle − tested| ≤
//! 1e-5 · max |oracle| in float32.

use crowdout::recsys::model::{make_batch, RecModel, RecShape};
use crowdout::rng::{stream, Stream};
use tch::{Kind, Tensor};

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn setup(w: usize) -> (RecModel, crowdout::recsys::model::Batch) {
    let shape = RecShape { dim: 8, heads: 2, ff: 16, window: 4, n_candidates: 12, n_easy: 2, n_hard: 3 };
    let mut r = stream(Some(7), Stream::Init);
    let model = RecModel::new(30, shape, &mut r).unwrap();
    // Short playlists (padding), long ones (random windows), and songs shared across records.
    let lists: Vec<Vec<u32>> =
        vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8, 9, 10, 11], vec![1, 2, 12, 13, 14, 15], vec![20, 3]];
    let recs: Vec<&[u32]> = lists.iter().map(|p| p.as_slice()).collect();
    let mut d = stream(Some(8), Stream::Data);
    let b = make_batch(&model, &recs, w, &mut d);
    (model, b)
}

#[test]
fn per_record_gradients_norms_and_clipped_sums_match_the_oracle() {
    for w in [1, 3] {
        let (model, b) = setup(w);
        let naive = model.naive_record_grads(&b);
        let got = model.record_grads(&b);
        assert_eq!(naive.len(), model.parameters().len());
        assert_eq!(naive.len(), got.len());
        let gmax = naive.iter().map(max_abs).fold(0.0, f64::max);
        assert!(gmax > 0.0);
        for (k, (a, g)) in naive.iter().zip(&got).enumerate() {
            assert_eq!(a.size(), g.size(), "param {k}");
            let diff = max_abs(&(a - g));
            assert!(diff <= 1e-5 * gmax, "w = {w}, param {k}: diff {diff:e} vs {gmax:e}");
        }
        // The tied embedding gets input *and* output gradient rows: a negative-only song has a
        // non-zero row in its record's gradient, and the PAD row stays zero.
        let emb = &naive[0];
        let neg0 = b.negatives.int64_value(&[0, 0]);
        let row = emb.get(0).get(neg0);
        assert!(max_abs(&row) > 0.0, "a negative's row gets gradient");
        assert_eq!(max_abs(&emb.select(1, 0)), 0.0, "PAD row");
        // Norms: ghost (embedding) + materialised (others) against the oracle.
        let want = naive
            .iter()
            .map(|g| g.reshape([g.size()[0], -1]).square().sum_dim_intlist(1, false, Kind::Float))
            .fold(Tensor::zeros([b.records()], (Kind::Float, tch::Device::Cpu)), |acc, s| acc + s)
            .sqrt();
        let sq = model.record_sq_norms(&b).sqrt();
        let diff = max_abs(&(&want - &sq));
        assert!(diff <= 1e-5 * max_abs(&want), "norms {want:?} vs {sq:?}");
        // Clipped sum with C below every norm: Σ_i (C/‖g_i‖) g_i.
        let c = 0.5 * want.min().double_value(&[]);
        let (sums, _, norms) = model.clipped_sum(&b, c);
        assert!(max_abs(&(&norms - &want)) <= 1e-5 * max_abs(&want));
        let f = (want.reciprocal() * c).clamp_max(1.0);
        for (k, (g, s)) in naive.iter().zip(&sums).enumerate() {
            let n = g.size()[0];
            let expect = f.view([1, n]).mm(&g.reshape([n, -1])).reshape(s.size().as_slice());
            let diff = max_abs(&(&expect - s));
            assert!(diff <= 1e-5 * max_abs(&expect).max(1e-8), "clipped sum param {k}: {diff:e}");
        }
    }
}

#[test]
fn record_loss_sums_its_windows_and_ordinary_gradient_matches_the_sum() {
    let (model, b) = setup(2);
    let naive = model.naive_record_grads(&b);
    let (sum, loss) = model.sum_grads(&b);
    let want_loss = model.record_losses(&b).sum(Kind::Float).double_value(&[]);
    assert!((loss - want_loss).abs() < 1e-4 * want_loss.abs().max(1.0));
    for (g, s) in naive.iter().zip(&sum) {
        let diff = max_abs(&(g.sum_dim_intlist(0, false, Kind::Float) - s));
        assert!(diff <= 1e-5 * max_abs(s).max(1e-6), "{diff:e}");
    }
}
