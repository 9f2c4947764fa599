//! Where a collective inserts its target song, as in the paper's code
//! (`recommender_system/collective_action.py` `plant_signal` / `insert_songs_in_playlist` of
//! joebaumann/recsys-collectiveaction; recsys-notes.md §3). Pure Rust, no torch.
//!
//! Each collective playlist receives the (new) target song s* exactly once:
//! - **Random**: i ~ U{0..L−1}, s* inserted directly after song i (never first);
//! - **AtTheEnd**: appended;
//! - **InClust**: directly *before* the playlist's song with the largest count across the
//!   collective's playlists (ties: earliest position) — the paper's "indirect anchor" reading;
//! - **DirLoF**: directly *after* the playlist's song with the fewest occurrences in the known
//!   training data (all non-test playlists, counted before insertion; ties: earliest position).

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::rng::ChaCha20Rng;

/// An insertion strategy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Random,
    AtTheEnd,
    InClust,
    #[serde(rename = "dir-lof")]
    #[value(name = "dir-lof")]
    DirLoF,
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::AtTheEnd => "at-the-end",
            Strategy::InClust => "in-clust",
            Strategy::DirLoF => "dir-lof",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Insert `target` once into each playlist of `members` (indices into `playlists`).
/// `train_counts[s]` = occurrences of song s in the known training data before any insertion.
pub fn plant(
    playlists: &mut [Vec<u32>],
    members: &[usize],
    target: u32,
    strategy: Strategy,
    train_counts: &[usize],
    rng: &mut ChaCha20Rng,
) {
    let count = |s: u32| train_counts.get(s as usize).copied().unwrap_or(0);
    // Counts across the collective's own playlists (InClust).
    let mut in_collective = std::collections::HashMap::<u32, usize>::new();
    if strategy == Strategy::InClust {
        for &m in members {
            for s in &playlists[m] {
                *in_collective.entry(*s).or_default() += 1;
            }
        }
    }
    for &m in members {
        let p = &mut playlists[m];
        let at = match strategy {
            Strategy::AtTheEnd => p.len(),
            Strategy::Random => rng.random_range(0..p.len().max(1)) + 1,
            Strategy::DirLoF => {
                // min_by_key keeps the first minimum: ties go to the earliest position.
                let (i, _) = p.iter().enumerate().min_by_key(|(_, s)| count(**s)).expect("non-empty");
                i + 1
            }
            Strategy::InClust => {
                let best = p.iter().map(|s| in_collective[s]).max().expect("non-empty");
                p.iter().position(|s| in_collective[s] == best).expect("a maximum exists")
            }
        };
        p.insert(at.min(p.len()), target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Stream};

    #[test]
    fn each_strategy_inserts_where_the_paper_code_does() {
        let base = vec![vec![10u32, 11, 12, 13], vec![14, 11, 15]];
        // Train counts: 12 and 15 rarest in their playlists; 11 is common to both.
        let mut counts = vec![0usize; 20];
        for (s, c) in [(10, 5), (11, 9), (12, 1), (13, 3), (14, 4), (15, 1)] {
            counts[s] = c;
        }
        let mut r = stream(Some(1), Stream::Collective);
        let run = |s: Strategy, r: &mut ChaCha20Rng| {
            let mut p = base.clone();
            plant(&mut p, &[0, 1], 99, s, &counts, r);
            p
        };
        assert_eq!(run(Strategy::AtTheEnd, &mut r), vec![vec![10, 11, 12, 13, 99], vec![14, 11, 15, 99]]);
        assert_eq!(run(Strategy::DirLoF, &mut r), vec![vec![10, 11, 12, 99, 13], vec![14, 11, 15, 99]]);
        // 11 occurs in both collective playlists: s* goes just before it.
        assert_eq!(run(Strategy::InClust, &mut r), vec![vec![10, 99, 11, 12, 13], vec![14, 99, 11, 15]]);
        for _ in 0..20 {
            let p = run(Strategy::Random, &mut r);
            for (q, b) in p.iter().zip(&base) {
                let at = q.iter().position(|s| *s == 99).unwrap();
                assert!(at >= 1, "never first");
                assert_eq!(q.iter().filter(|s| **s == 99).count(), 1);
                let mut rest = q.clone();
                rest.remove(at);
                assert_eq!(&rest, b);
            }
        }
        // Non-members are untouched.
        let mut p = base.clone();
        plant(&mut p, &[1], 99, Strategy::AtTheEnd, &counts, &mut r);
        assert_eq!(p[0], base[0]);
    }
}
