//! Membership inference against a model trained with the standard trainer (`train::fit`),
//! with or without a collective planted in its training set.
//!
//! Members are the first `members` training records **as trained on** (after planting: the
//! collective's records carry the trigger and y*); non-members are the first `non_members`
//! held-out records of the same distribution. Each attack gives every record a score (higher =
//! "member") and the report gives the ROC AUC, computed exactly as the Mann–Whitney statistic
//! ([`super::stats::auc`]).
//!
//! - **Loss threshold** (Yeom et al. 2018), the cheap mode: score = −ℓ(f(x), y).
//! - **LiRA** (Carlini et al. 2022, "Membership Inference Attacks From First Principles"): K
//!   shadow models, each trained (same procedure, same sampling rate q) on a random half of the
//!   attack pool (members ∪ non-members; every record joins each shadow independently with
//!   probability ½, so each record is "in" for about K/2 shadows and "out" for the rest).
//!   The statistic is the logit-scaled confidence φ = ln(p_y/(1 − p_y)) = z_y − logsumexp_{j≠y} z_j.
//!   Per record, the in- and out-φs give means μ_in, μ_out; the variances are pooled over all
//!   records (the paper's "global variance", recommended for few shadows).
//!   *Online* score: ln N(φ; μ_in, σ_in²) − ln N(φ; μ_out, σ_out²); *offline* score (out-shadows
//!   only): (φ − μ_out)/σ_out. A record never "in" (or never "out") in any shadow falls back to the
//!   pooled mean of that side.
//!
//! **Intervals and groups.** Every AUC comes with DeLong's standard error and a 95% normal
//! interval over the target records ([`super::stats::auc_delong`]; the models are held fixed, so
//! it is not an interval over training runs). When a collective is planted, each attack's AUC is
//! given for three sets of positives against the same non-members: all members, the collective's
//! members only, and the members outside the collective only ([`GroupAucs`]). Whether a
//! collective "hides" the other members shows in the third, which compares like with like across
//! runs with and without a collective.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::stats::{auc_delong, AucInterval};
use super::{run_seeds, AuditError, Result};
use crate::collective::{plant, success, CollectiveSpec};
use crate::data::Dataset;
use crate::models::{Model, ModelKind};
use crate::params::ParamGuard;
use crate::train::fit::{fit, FitConfig};
use crate::train::run;

/// Settings of a membership-inference experiment. `Default` is the one source of defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MiaConfig {
    /// Number of members (first records of the training set).
    pub members: usize,
    /// Number of non-members (first held-out records).
    pub non_members: usize,
    pub model: ModelKind,
    /// Hidden sizes when `model` is an MLP (empty: default).
    #[serde(default)]
    pub hidden: Vec<i64>,
    /// The target's (and shadows') training; `fit.dp = Some(..)` for DP-SGD.
    pub fit: FitConfig,
    /// LiRA shadow models K (0: loss threshold only).
    pub shadows: usize,
    /// A collective planted among the members.
    #[serde(default)]
    pub collective: Option<CollectiveSpec>,
    pub seed: Option<u64>,
}

impl Default for MiaConfig {
    fn default() -> Self {
        MiaConfig {
            members: 300,
            non_members: 300,
            model: ModelKind::Mlp,
            hidden: vec![128],
            fit: FitConfig { epochs: 300.0, batch_size: 300, lr: 0.5, ..FitConfig::default() },
            shadows: 8,
            collective: None,
            seed: Some(0),
        }
    }
}

/// One attack's AUC (with its DeLong 95% interval) for three sets of positives against the
/// same non-members.
///
/// The Mann–Whitney AUC is the mean over positives of each positive's placement value V₁₀
/// (see [`super::stats::auc_delong`]), so the three are tied by
/// AUC_all = (m_c·AUC_collective + (m − m_c)·AUC_non_collective)/m for a collective of m_c of the
/// m members: a collective of 1% can move AUC_all at most 0.01 away from AUC_non_collective by
/// its own records' scores; a larger change needs a change in the other members' scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupAucs {
    /// All members vs non-members.
    pub all: AucInterval,
    /// The collective's members only vs non-members (`None` without a collective).
    pub collective: Option<AucInterval>,
    /// The members outside the collective only vs non-members (= `all` without a collective).
    pub non_collective: AucInterval,
}

/// [`GroupAucs`] of member scores (`in_collective[i]` marks member i as the collective's) against
/// non-member scores, higher = "member".
pub fn group_aucs(members: &[f64], non_members: &[f64], in_collective: &[bool]) -> GroupAucs {
    assert_eq!(members.len(), in_collective.len(), "one collective flag per member");
    let pick = |want: bool| -> Vec<f64> {
        members.iter().zip(in_collective).filter(|(_, &c)| c == want).map(|(s, _)| *s).collect()
    };
    let coll = pick(true);
    GroupAucs {
        all: auc_delong(members, non_members),
        collective: (!coll.is_empty()).then(|| auc_delong(&coll, non_members)),
        non_collective: auc_delong(&pick(false), non_members),
    }
}

/// The outcome of a membership-inference experiment. Every AUC `auc_X` has its 95% interval
/// `auc_X_lo`, `auc_X_hi` (DeLong, over target records); `_collective` AUCs take the
/// collective's members as the positives, `_non_collective` the other members (`None` where
/// there is no collective or no LiRA).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct MiaReport {
    pub members: usize,
    pub non_members: usize,
    /// The collective's spec string, if one was planted, and its member count.
    pub collective: Option<String>,
    pub collective_members: usize,
    /// The collective's success (non-target triggered held-out points predicted y*), if any.
    pub collective_success: Option<f64>,
    pub steps: u64,
    pub sample_rate: f64,
    pub noise_multiplier: Option<f64>,
    /// Accuracy of the target model on its members (as trained) and on the non-members.
    pub train_accuracy: f64,
    pub heldout_accuracy: f64,
    /// Loss-threshold attack: all members.
    pub auc_loss: f64,
    pub auc_loss_lo: f64,
    pub auc_loss_hi: f64,
    /// Loss-threshold attack: the collective's members.
    pub auc_loss_collective: Option<f64>,
    pub auc_loss_collective_lo: Option<f64>,
    pub auc_loss_collective_hi: Option<f64>,
    /// Loss-threshold attack: the members outside the collective.
    pub auc_loss_non_collective: f64,
    pub auc_loss_non_collective_lo: f64,
    pub auc_loss_non_collective_hi: f64,
    pub shadows: usize,
    /// LiRA offline: all members, the collective's, the others.
    pub auc_lira_offline: Option<f64>,
    pub auc_lira_offline_lo: Option<f64>,
    pub auc_lira_offline_hi: Option<f64>,
    pub auc_lira_offline_collective: Option<f64>,
    pub auc_lira_offline_collective_lo: Option<f64>,
    pub auc_lira_offline_collective_hi: Option<f64>,
    pub auc_lira_offline_non_collective: Option<f64>,
    pub auc_lira_offline_non_collective_lo: Option<f64>,
    pub auc_lira_offline_non_collective_hi: Option<f64>,
    /// LiRA online: all members, the collective's, the others.
    pub auc_lira_online: Option<f64>,
    pub auc_lira_online_lo: Option<f64>,
    pub auc_lira_online_hi: Option<f64>,
    pub auc_lira_online_collective: Option<f64>,
    pub auc_lira_online_collective_lo: Option<f64>,
    pub auc_lira_online_collective_hi: Option<f64>,
    pub auc_lira_online_non_collective: Option<f64>,
    pub auc_lira_online_non_collective_lo: Option<f64>,
    pub auc_lira_online_non_collective_hi: Option<f64>,
    /// Filled in by the caller when the training is DP.
    pub accountant_epsilon: Option<f64>,
}

/// (AUC, lo, hi) as reported; `None` where that AUC is not computed.
pub type Triple = (Option<f64>, Option<f64>, Option<f64>);

/// (AUC, lo, hi) of an optional interval, each `None` when it is.
fn split(a: Option<AucInterval>) -> Triple {
    (a.map(|a| a.auc), a.map(|a| a.lo), a.map(|a| a.hi))
}

impl MiaReport {
    /// The loss-threshold attack's AUCs by group, as reported.
    pub fn loss_aucs(&self) -> [Triple; 3] {
        [
            (Some(self.auc_loss), Some(self.auc_loss_lo), Some(self.auc_loss_hi)),
            (self.auc_loss_collective, self.auc_loss_collective_lo, self.auc_loss_collective_hi),
            (
                Some(self.auc_loss_non_collective),
                Some(self.auc_loss_non_collective_lo),
                Some(self.auc_loss_non_collective_hi),
            ),
        ]
    }

    /// LiRA's AUCs by group (all, collective, others), offline (`online = false`) or online.
    pub fn lira_aucs(&self, online: bool) -> [Triple; 3] {
        if online {
            [
                (self.auc_lira_online, self.auc_lira_online_lo, self.auc_lira_online_hi),
                (
                    self.auc_lira_online_collective,
                    self.auc_lira_online_collective_lo,
                    self.auc_lira_online_collective_hi,
                ),
                (
                    self.auc_lira_online_non_collective,
                    self.auc_lira_online_non_collective_lo,
                    self.auc_lira_online_non_collective_hi,
                ),
            ]
        } else {
            [
                (self.auc_lira_offline, self.auc_lira_offline_lo, self.auc_lira_offline_hi),
                (
                    self.auc_lira_offline_collective,
                    self.auc_lira_offline_collective_lo,
                    self.auc_lira_offline_collective_hi,
                ),
                (
                    self.auc_lira_offline_non_collective,
                    self.auc_lira_offline_non_collective_lo,
                    self.auc_lira_offline_non_collective_hi,
                ),
            ]
        }
    }
}

fn subset(d: &Dataset, idx: &[i64]) -> Result<Dataset> {
    let t = Tensor::from_slice(idx);
    Ok(Dataset { x: d.x.f_index_select(0, &t)?, y: d.y.f_index_select(0, &t)?, num_classes: d.num_classes })
}

fn build(cfg: &MiaConfig, data: &Dataset, seed: u64, device: Device) -> Result<Model> {
    let shape = data.example_shape();
    Ok(match (&cfg.model, cfg.hidden.is_empty()) {
        (ModelKind::Mlp, false) => Model::mlp(&shape, &cfg.hidden, data.num_classes, Some(seed), device)?,
        // Token models get a table for every id in the data (audits have no vocabulary).
        (kind, _) => {
            let vocab = Model::vocab_needed(kind, &data.x);
            Model::for_data(kind, &shape, data.num_classes, vocab, Some(seed), device)?
        }
    })
}

/// Per-record (loss, φ, correct) of `model` on `data`.
fn per_record(model: &Model, data: &Dataset) -> Result<(Vec<f64>, Vec<f64>, Vec<bool>)> {
    // in evaluation batches: a 70k-record pool through the CNN at once would need gigabytes
    let z = run::logits(model, &data.x, model.device).f_to_kind(Kind::Double)?;
    let y = data.y.f_to_kind(Kind::Int64)?;
    let yi = y.f_unsqueeze(1)?;
    let loss = Model::per_example_loss(&z, &y);
    let zy = z.f_gather(1, &yi, false)?.f_squeeze_dim(1)?;
    let lse_other = z.f_scatter_value(1, &yi, f64::NEG_INFINITY)?.f_logsumexp([1], false)?;
    let phi = zy - lse_other;
    let correct = z.f_argmax(1, false)?.f_eq_tensor(&y)?;
    Ok((Vec::<f64>::try_from(&loss)?, Vec::<f64>::try_from(&phi)?, Vec::<bool>::try_from(&correct)?))
}

/// Run the experiment on `train` (members drawn from it) and `heldout` (non-members);
/// `progress(done, total)` after each trained model (1 + K).
pub fn mia(
    train: &Dataset,
    heldout: &Dataset,
    cfg: &MiaConfig,
    device: Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MiaReport> {
    let fit_cfg = cfg.fit.check_ref()?;
    let (nm, nn) = (cfg.members, cfg.non_members);
    if nm < 2 || nn < 2 {
        return Err(AuditError::Invalid {
            field: "members/non_members",
            value: format!("{nm}/{nn}"),
            reason: "need at least 2 of each",
        });
    }
    if nm as i64 > train.len() || nn as i64 > heldout.len() {
        return Err(AuditError::Data(format!(
            "asked for {nm} members and {nn} non-members but the data set has {} training and {} held-out records",
            train.len(),
            heldout.len()
        )));
    }
    if cfg.fit.dp.is_some() && cfg.fit.batch_size > nm {
        return Err(AuditError::Invalid {
            field: "batch_size",
            value: cfg.fit.batch_size.to_string(),
            reason: "under DP the expected batch size must not exceed the number of members",
        });
    }
    let members_clean = train.take_first(nm);
    let non_members = heldout.take_first(nn);
    let (members, coll_idx, coll_str) = match &cfg.collective {
        None => (members_clean, Vec::new(), None),
        Some(spec) => {
            let p = plant(&members_clean, std::slice::from_ref(spec), cfg.seed)?;
            let idx = p.collectives.first().map(|c| c.member_indices.clone()).unwrap_or_default();
            (p.train, idx, Some(spec.to_string()))
        }
    };
    let total = 1 + cfg.shadows as u64;
    let target_seed = run_seeds(cfg.seed, 5, 1)[0];
    let mut target = build(cfg, &members, target_seed, device)?;
    let outcome = fit(&mut target, &members, &fit_cfg, Some(target_seed), device, &mut |_| {})?;
    progress(1, total);

    let (loss_in, phi_in, ok_in) = per_record(&target, &members)?;
    let (loss_out, phi_out, ok_out) = per_record(&target, &non_members)?;
    let neg = |v: &[f64]| v.iter().map(|l| -l).collect::<Vec<_>>();
    let mut in_coll = vec![false; nm];
    for &i in &coll_idx {
        in_coll[i as usize] = true;
    }
    let loss = group_aucs(&neg(&loss_in), &neg(&loss_out), &in_coll);
    let frac = |v: &[bool]| v.iter().filter(|b| **b).count() as f64 / v.len() as f64;
    let collective_success = match &cfg.collective {
        Some(spec) => {
            let predict = |x: &Tensor| run::predict(&target, x, device);
            Some(success(&predict, heldout, spec)?.non_target.rate)
        }
        None => None,
    };

    let (mut lira_off, mut lira_on) = (None, None);
    if cfg.shadows > 0 {
        let pool = Dataset {
            x: Tensor::f_cat(&[&members.x, &non_members.x], 0)?,
            y: Tensor::f_cat(&[&members.y, &non_members.y], 0)?,
            num_classes: members.num_classes,
        };
        let p = nm + nn;
        let target_phi: Vec<f64> = phi_in.iter().chain(&phi_out).copied().collect();
        let shadow_seeds = run_seeds(cfg.seed, 6, cfg.shadows);
        let bits = run_seeds(cfg.seed, 7, cfg.shadows * p);
        let (mut ins, mut outs): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (vec![Vec::new(); p], vec![Vec::new(); p]);
        for (k, &s) in shadow_seeds.iter().enumerate() {
            let chosen: Vec<i64> = (0..p).filter(|&i| bits[k * p + i] & 1 == 1).map(|i| i as i64).collect();
            if chosen.is_empty() {
                continue;
            }
            let data = subset(&pool, &chosen)?;
            // the same sampling rate q as the target: B_shadow = round(B · N_shadow / N_target)
            let mut fc = cfg.fit.clone();
            fc.batch_size = ((cfg.fit.batch_size as f64 * chosen.len() as f64 / nm as f64).round() as usize)
                .clamp(1, chosen.len());
            let mut model = build(cfg, &data, s, device)?;
            // A shadow's own batch size: a new configuration, checked as such.
            fit(&mut model, &data, &fc.check()?, Some(s), device, &mut |_| {})?;
            let (_, phi, _) = per_record(&model, &pool)?;
            let mut is_in = vec![false; p];
            for &c in &chosen {
                is_in[c as usize] = true;
            }
            for i in 0..p {
                if is_in[i] {
                    ins[i].push(phi[i])
                } else {
                    outs[i].push(phi[i])
                }
            }
            progress(2 + k as u64, total);
        }
        let (mu_in, sd_in) = pooled(&ins);
        let (mu_out, sd_out) = pooled(&outs);
        let mut off = Vec::with_capacity(p);
        let mut on = Vec::with_capacity(p);
        for i in 0..p {
            let mi = mean_or(&ins[i], mu_in);
            let mo = mean_or(&outs[i], mu_out);
            let f = target_phi[i];
            off.push((f - mo) / sd_out);
            on.push(
                -0.5 * ((f - mi) / sd_in).powi(2) - sd_in.ln()
                    + 0.5 * ((f - mo) / sd_out).powi(2)
                    + sd_out.ln(),
            );
        }
        lira_off = Some(group_aucs(&off[..nm], &off[nm..], &in_coll));
        lira_on = Some(group_aucs(&on[..nm], &on[nm..], &in_coll));
    }
    let (off_all, off_c, off_nc) = split3(lira_off);
    let (on_all, on_c, on_nc) = split3(lira_on);
    let loss_c = split(loss.collective);
    Ok(MiaReport {
        members: nm,
        non_members: nn,
        collective: coll_str,
        collective_members: coll_idx.len(),
        collective_success,
        steps: outcome.steps,
        sample_rate: outcome.sample_rate,
        noise_multiplier: cfg.fit.dp.as_ref().map(|d| d.noise_multiplier),
        train_accuracy: frac(&ok_in),
        heldout_accuracy: frac(&ok_out),
        auc_loss: loss.all.auc,
        auc_loss_lo: loss.all.lo,
        auc_loss_hi: loss.all.hi,
        auc_loss_collective: loss_c.0,
        auc_loss_collective_lo: loss_c.1,
        auc_loss_collective_hi: loss_c.2,
        auc_loss_non_collective: loss.non_collective.auc,
        auc_loss_non_collective_lo: loss.non_collective.lo,
        auc_loss_non_collective_hi: loss.non_collective.hi,
        shadows: cfg.shadows,
        auc_lira_offline: off_all.0,
        auc_lira_offline_lo: off_all.1,
        auc_lira_offline_hi: off_all.2,
        auc_lira_offline_collective: off_c.0,
        auc_lira_offline_collective_lo: off_c.1,
        auc_lira_offline_collective_hi: off_c.2,
        auc_lira_offline_non_collective: off_nc.0,
        auc_lira_offline_non_collective_lo: off_nc.1,
        auc_lira_offline_non_collective_hi: off_nc.2,
        auc_lira_online: on_all.0,
        auc_lira_online_lo: on_all.1,
        auc_lira_online_hi: on_all.2,
        auc_lira_online_collective: on_c.0,
        auc_lira_online_collective_lo: on_c.1,
        auc_lira_online_collective_hi: on_c.2,
        auc_lira_online_non_collective: on_nc.0,
        auc_lira_online_non_collective_lo: on_nc.1,
        auc_lira_online_non_collective_hi: on_nc.2,
        accountant_epsilon: None,
    })
}

/// [`split`] of each group of an optional [`GroupAucs`]: (all, collective, others).
fn split3(g: Option<GroupAucs>) -> (Triple, Triple, Triple) {
    match g {
        None => ((None, None, None), (None, None, None), (None, None, None)),
        Some(g) => (split(Some(g.all)), split(g.collective), split(Some(g.non_collective))),
    }
}

fn mean_or(v: &[f64], fallback: f64) -> f64 {
    if v.is_empty() {
        fallback
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Pooled mean and standard deviation: the grand mean of all observations, and the root mean
/// squared deviation of every observation from its own record's mean (floored at 1e-6).
fn pooled(groups: &[Vec<f64>]) -> (f64, f64) {
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    let grand = mean_or(&all, 0.0);
    let (mut ss, mut n) = (0.0, 0usize);
    for g in groups {
        if g.len() >= 2 {
            let m = mean_or(g, 0.0);
            ss += g.iter().map(|x| (x - m).powi(2)).sum::<f64>();
            n += g.len() - 1;
        }
    }
    let sd = if n > 0 { (ss / n as f64).sqrt() } else { 1.0 };
    (grand, sd.max(1e-6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_aucs_split_members_by_collective() {
        // Non-members score 0.5, 0.4, 0.3. The two non-collective members score above all of them
        // and the two collective members below all of them, so by pair counting:
        // all = (3 + 3 + 0 + 0)/12 = ½, collective = 0, non-collective = 1.
        let members = [0.9, 0.2, 0.8, 0.1];
        let coll = [false, true, false, true];
        let non = [0.5, 0.4, 0.3];
        let g = group_aucs(&members, &non, &coll);
        assert!((g.all.auc - 0.5).abs() < 1e-12, "{g:?}");
        let c = g.collective.expect("a collective was flagged");
        assert_eq!(c.auc, 0.0);
        assert_eq!(g.non_collective.auc, 1.0);
        for a in [g.all, c, g.non_collective] {
            assert!(a.lo <= a.auc && a.auc <= a.hi, "{a:?}");
        }
        // Perfect separation has zero DeLong variance: a degenerate interval at the estimate.
        assert_eq!((c.lo, c.hi), (0.0, 0.0));
        // Without a collective: no collective AUC, and the others are all members.
        let g = group_aucs(&members, &non, &[false; 4]);
        assert!(g.collective.is_none());
        assert_eq!(g.non_collective, g.all);
        // The decomposition AUC_all = (m_c·AUC_c + m_nc·AUC_nc)/m, on scores with ties.
        let members: Vec<f64> = (0..37).map(|i| ((i * 7919) % 23) as f64).collect();
        let coll: Vec<bool> = (0..37).map(|i| i % 5 == 0).collect();
        let non: Vec<f64> = (0..29).map(|i| ((i * 104729) % 19) as f64 + 2.0).collect();
        let g = group_aucs(&members, &non, &coll);
        let mc = coll.iter().filter(|c| **c).count() as f64;
        let mixed = (mc * g.collective.unwrap().auc + (37.0 - mc) * g.non_collective.auc) / 37.0;
        assert!((g.all.auc - mixed).abs() < 1e-12, "{} vs {mixed}", g.all.auc);
    }

    #[test]
    fn report_triples_follow_the_fields() {
        // dyadic values, so every sum below is exact
        let a = |x: f64| AucInterval { auc: x, se: 0.0625, lo: x - 0.125, hi: x + 0.125 };
        let g = GroupAucs { all: a(0.625), collective: Some(a(0.75)), non_collective: a(0.5) };
        let (all, c, nc) = split3(Some(g));
        assert_eq!(all, (Some(0.625), Some(0.5), Some(0.75)));
        assert_eq!(c.0, Some(0.75));
        assert_eq!(nc.2, Some(0.625));
        assert_eq!(split3(None).1, (None, None, None));
    }
}
