//! A sweep as a Slurm job array plus a merge job: the two batch scripts that
//! `crowdout sweep SPEC --slurm` writes and submits.
//!
//! - The **array** has one task per shard: task `i` runs `crowdout sweep --shard i/N` into
//!   `<out>/results.shard-i-of-N.csv`. A task appends one fsynced row per finished cell, so a task
//!   that is cancelled, preempted or requeued (`--requeue`: Slurm restarts it after a node failure
//!   or `scontrol requeue`) resumes where it stopped: it skips the cells its file has and retries
//!   the failed ones. Resubmitting both scripts (rerunning the same `crowdout sweep --slurm`) does
//!   the same for every task.
//! - The **merge** job depends on the array with `afterok`: it starts once every task has exited
//!   0, i.e. every cell of every shard has a successful row, and runs `crowdout report --merge`
//!   into `<out>/results.csv`, then `crowdout report` (summary.md, plots). If a task fails (a cell
//!   failed, or the task was cancelled) the dependency can never be met and Slurm cancels the merge
//!   job (`--kill-on-invalid-dep=yes`); rerun the command to retry the failed cells and merge.
//!
//! Every path in the scripts is absolute and the jobs start in the submission folder (`--chdir`),
//! so the data directory (`./datasets/cache` unless `CROWDOUT_DATA` is set) resolves as it did at
//! submission; `sbatch` exports the submitting environment by default.

use std::path::{Path, PathBuf};

use crate::device::DeviceChoice;

/// The settings of the two jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    /// Array tasks = shards.
    pub shards: usize,
    /// At most this many tasks run at once (`--array=1-N%M`).
    pub array_max: Option<usize>,
    pub partition: Option<String>,
    /// Time limit per task (`--time`, Slurm's formats: `MM`, `HH:MM:SS`, `D-HH`, …).
    pub time: Option<String>,
    pub cpus_per_task: usize,
    /// Memory per task (`--mem`, e.g. `8G`); also the merge job's.
    pub mem: Option<String>,
    /// Generic resources per task, e.g. `gpu:1` (not for the merge job).
    pub gres: Option<String>,
    /// More `#SBATCH` options for both jobs, each as written on the sbatch command line
    /// (e.g. `--account=proj`, `--qos=short`).
    pub extra: Vec<String>,
    /// Cells run in parallel inside a task.
    pub jobs: usize,
    /// libtorch threads per cell [default: cpus_per_task / jobs, at least 1].
    pub torch_threads: Option<i32>,
    pub device: DeviceChoice,
    /// Also write the report (summary.md, plots) in the merge job.
    pub report: bool,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            shards: 1,
            array_max: None,
            partition: None,
            time: None,
            cpus_per_task: 1,
            mem: None,
            gres: None,
            extra: Vec::new(),
            jobs: 1,
            torch_threads: None,
            device: DeviceChoice::Cpu,
            report: true,
        }
    }
}

/// Where things are: every path absolute. `out` and `workdir` appear in `#SBATCH` lines, which
/// cannot quote: [`SlurmPaths::check`] refuses whitespace in them.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmPaths {
    /// The crowdout binary the jobs run (must be reachable from the compute nodes).
    pub binary: PathBuf,
    /// The spec the tasks read (a frozen copy, `<out>/slurm/spec.toml`).
    pub spec: PathBuf,
    /// The sweep's output folder.
    pub out: PathBuf,
    /// The jobs' working directory (the submission folder).
    pub workdir: PathBuf,
}

impl SlurmPaths {
    /// An error message if `out` or `workdir` cannot be written into an `#SBATCH` line.
    pub fn check(&self) -> Result<(), String> {
        for (what, p) in [("the output folder", &self.out), ("the current folder", &self.workdir)] {
            if p.to_string_lossy().chars().any(|c| c.is_whitespace() || c == '%') {
                return Err(format!(
                    "{what} {} has whitespace or '%', which #SBATCH lines cannot carry; use another path",
                    p.display()
                ));
            }
        }
        Ok(())
    }

    /// `<out>/slurm/`: the scripts, the frozen spec and `logs/`.
    pub fn dir(&self) -> PathBuf {
        self.out.join("slurm")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir().join("logs")
    }
    pub fn array_script(&self) -> PathBuf {
        self.dir().join("array.sbatch")
    }
    pub fn merge_script(&self) -> PathBuf {
        self.dir().join("merge.sbatch")
    }
    /// The merged results file the merge job writes.
    pub fn merged(&self) -> PathBuf {
        self.out.join("results.csv")
    }
}

/// A word for a POSIX shell: as is when it is plainly safe, else single-quoted.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn path_word(p: &Path) -> String {
    sh_quote(&p.to_string_lossy())
}

/// Slurm job names: the sweep's name is already restricted to letters, digits, `-_.`.
fn job_name(sweep: &str, suffix: &str) -> String {
    format!("crowdout-{sweep}{suffix}")
}

impl SlurmOptions {
    /// Torch threads per cell inside a task.
    pub fn threads_per_cell(&self) -> i32 {
        self.torch_threads.unwrap_or_else(|| (self.cpus_per_task / self.jobs.max(1)).max(1) as i32)
    }

    fn common_lines(&self, out: &mut String, paths: &SlurmPaths) {
        if let Some(p) = &self.partition {
            out.push_str(&format!("#SBATCH --partition={p}\n"));
        }
        if let Some(t) = &self.time {
            out.push_str(&format!("#SBATCH --time={t}\n"));
        }
        if let Some(m) = &self.mem {
            out.push_str(&format!("#SBATCH --mem={m}\n"));
        }
        out.push_str(&format!("#SBATCH --chdir={}\n", paths.workdir.display()));
        out.push_str("#SBATCH --open-mode=append\n");
        for e in &self.extra {
            out.push_str(&format!("#SBATCH {e}\n"));
        }
    }

    /// The array script: task i of N runs shard i/N.
    pub fn array_script(&self, sweep: &str, paths: &SlurmPaths) -> String {
        let n = self.shards;
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!(
            "# Written by `crowdout sweep --slurm` for sweep `{sweep}`: array task i runs shard i/{n} of the\n\
             # grid into {out}/results.shard-i-of-{n}.csv. Resumable: a requeued or resubmitted task skips\n\
             # the cells its file has and retries failed ones. Submit again with `sbatch {script}`\n\
             # (then also sbatch --dependency=afterok:<array job id> {merge}), or rerun the crowdout command.\n",
            out = paths.out.display(),
            script = paths.array_script().display(),
            merge = paths.merge_script().display(),
        ));
        s.push_str(&format!("#SBATCH --job-name={}\n", job_name(sweep, "")));
        match self.array_max {
            Some(m) => s.push_str(&format!("#SBATCH --array=1-{n}%{m}\n")),
            None => s.push_str(&format!("#SBATCH --array=1-{n}\n")),
        }
        s.push_str(&format!("#SBATCH --cpus-per-task={}\n", self.cpus_per_task));
        if let Some(g) = &self.gres {
            s.push_str(&format!("#SBATCH --gres={g}\n"));
        }
        s.push_str(&format!("#SBATCH --output={}/%x-%A_%a.out\n", paths.logs().display()));
        s.push_str("#SBATCH --requeue\n");
        self.common_lines(&mut s, paths);
        s.push_str("set -euo pipefail\n");
        s.push_str(&format!(
            "echo \"crowdout: shard ${{SLURM_ARRAY_TASK_ID}}/{n} on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}}, $(date -u +%FT%TZ)\"\n"
        ));
        s.push_str(&format!(
            "exec {bin} sweep {spec} --out {out} --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\" --jobs {jobs} \
             --torch-threads {threads} --device {device} --no-progress\n",
            bin = path_word(&paths.binary),
            spec = path_word(&paths.spec),
            out = path_word(&paths.out),
            jobs = self.jobs,
            threads = self.threads_per_cell(),
            device = device_name(self.device),
        ));
        s
    }

    /// The merge job: merge every shard file into `<out>/results.csv`, then report.
    pub fn merge_script(&self, sweep: &str, paths: &SlurmPaths) -> String {
        let n = self.shards;
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!(
            "# Written by `crowdout sweep --slurm` for sweep `{sweep}`: merges the {n} shard files into\n\
             # {merged} once every array task succeeded (submitted with --dependency=afterok).\n",
            merged = paths.merged().display()
        ));
        s.push_str(&format!("#SBATCH --job-name={}\n", job_name(sweep, "-merge")));
        s.push_str("#SBATCH --cpus-per-task=1\n");
        s.push_str(&format!("#SBATCH --output={}/%x-%j.out\n", paths.logs().display()));
        self.common_lines(&mut s, paths);
        s.push_str("set -euo pipefail\n");
        s.push_str(&format!("OUT={}\n", path_word(&paths.out)));
        // Rows of an earlier merge (or of an unsharded run into this folder) stay: the shards
        // skipped those cells.
        s.push_str(
            "PREVIOUS=()\nif [ -f \"$OUT\"/results.csv ]; then\n  \
             cp \"$OUT\"/results.csv \"$OUT\"/slurm/results.before-merge.csv\n  \
             PREVIOUS=(\"$OUT\"/slurm/results.before-merge.csv)\nfi\n",
        );
        s.push_str(&format!(
            "{bin} report --merge \"${{PREVIOUS[@]}}\" \"$OUT\"/results.shard-{{1..{n}}}-of-{n}.csv --out \"$OUT\"/results.csv\n",
            bin = path_word(&paths.binary)
        ));
        if self.report {
            s.push_str(&format!("{} report \"$OUT\"/results.csv --out \"$OUT\"\n", path_word(&paths.binary)));
        }
        s
    }
}

fn device_name(d: DeviceChoice) -> &'static str {
    match d {
        DeviceChoice::Cpu => "cpu",
        DeviceChoice::Cuda => "cuda",
        DeviceChoice::Auto => "auto",
    }
}

/// The job id in `sbatch --parsable` output (`<id>` or `<id>;<cluster>`).
pub fn parse_job_id(stdout: &str) -> Option<u64> {
    stdout.lines().rev().find(|l| !l.trim().is_empty())?.trim().split(';').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> SlurmPaths {
        SlurmPaths {
            binary: "/opt/my tools/crowdout".into(),
            spec: "/scratch/runs/it's/slurm/spec.toml".into(),
            out: "/scratch/runs/it's".into(),
            workdir: "/home/u/proj".into(),
        }
    }

    #[test]
    fn array_script_runs_its_shard_resumably() {
        let o = SlurmOptions {
            shards: 8,
            array_max: Some(3),
            partition: Some("gpu".into()),
            time: Some("02:00:00".into()),
            cpus_per_task: 4,
            gres: Some("gpu:1".into()),
            jobs: 2,
            device: DeviceChoice::Cuda,
            extra: vec!["--account=p1".into()],
            ..Default::default()
        };
        let s = o.array_script("demo", &paths());
        for line in [
            "#SBATCH --array=1-8%3",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=02:00:00",
            "#SBATCH --requeue",
            "#SBATCH --account=p1",
            "#SBATCH --chdir=/home/u/proj",
            "exec '/opt/my tools/crowdout' sweep '/scratch/runs/it'\\''s/slurm/spec.toml' --out '/scratch/runs/it'\\''s' \
             --shard \"${SLURM_ARRAY_TASK_ID}/8\" --jobs 2 --torch-threads 2 --device cuda --no-progress",
        ] {
            assert!(s.lines().any(|l| l == line), "missing `{line}` in\n{s}");
        }
        let m = o.merge_script("demo", &paths());
        assert!(!m.contains("gres") && m.contains("--cpus-per-task=1"), "{m}");
        assert!(
            m.contains(
                "report --merge \"${PREVIOUS[@]}\" \"$OUT\"/results.shard-{1..8}-of-8.csv --out \"$OUT\"/results.csv"
            ),
            "{m}"
        );
        assert!(m.contains(r"OUT='/scratch/runs/it'\''s'"), "{m}");
    }

    #[test]
    fn quoting_and_job_ids() {
        assert_eq!(sh_quote("a/b-c.toml"), "a/b-c.toml");
        assert_eq!(sh_quote("it's here"), r"'it'\''s here'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(parse_job_id("1234\n"), Some(1234));
        assert_eq!(parse_job_id("77;cluster\n"), Some(77));
        assert_eq!(parse_job_id("sbatch: error"), None);
        assert!(paths().check().is_ok());
        assert!(SlurmPaths { out: "/scratch/my runs".into(), ..paths() }.check().is_err());
    }
}
