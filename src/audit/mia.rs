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

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::stats::auc;
use super::{run_seeds, AuditError, Result};
use crate::collective::{plant, success, CollectiveSpec};
use crate::data::Dataset;
use crate::models::{Model, ModelKind};
use crate::params::ParamGuard;
use crate::train::fit::{fit, FitConfig};

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

/// The outcome of a membership-inference experiment.
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
    /// AUC of the loss-threshold attack.
    pub auc_loss: f64,
    /// AUC of the loss-threshold attack with the collective's members left out of the members.
    pub auc_loss_non_collective: f64,
    pub shadows: usize,
    pub auc_lira_offline: Option<f64>,
    pub auc_lira_online: Option<f64>,
    /// Filled in by the caller when the training is DP.
    pub accountant_epsilon: Option<f64>,
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
    let z =
        model.logits(&data.x.to_device(model.device)).f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
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
    let auc_loss = auc(&neg(&loss_in), &neg(&loss_out));
    let in_nc: Vec<f64> = loss_in
        .iter()
        .enumerate()
        .filter(|(i, _)| !coll_idx.contains(&(*i as i64)))
        .map(|(_, l)| -l)
        .collect();
    let auc_loss_non_collective = auc(&in_nc, &neg(&loss_out));
    let frac = |v: &[bool]| v.iter().filter(|b| **b).count() as f64 / v.len() as f64;
    let collective_success = match &cfg.collective {
        Some(spec) => {
            let predict =
                |x: &Tensor| target.logits(&x.to_device(device)).argmax(1, false).to_device(Device::Cpu);
            Some(success(&predict, heldout, spec)?.non_target.rate)
        }
        None => None,
    };

    let (mut auc_off, mut auc_on) = (None, None);
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
        auc_off = Some(auc(&off[..nm], &off[nm..]));
        auc_on = Some(auc(&on[..nm], &on[nm..]));
    }
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
        auc_loss,
        auc_loss_non_collective,
        shadows: cfg.shadows,
        auc_lira_offline: auc_off,
        auc_lira_online: auc_on,
        accountant_epsilon: None,
    })
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
