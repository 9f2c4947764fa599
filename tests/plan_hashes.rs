//! The plan's fast `config_hash` (fragments of canonical JSON, `crowdout::sweep::plan`) gives the
//! hashes already stored in the committed results: for every `results/<name>/` holding the spec
//! copy a sweep wrote (`spec.toml`) and its `results.csv`, each row's `config_hash` is the hash of
//! the grid cell with the same settings, and is found in the plan of that spec. Folders written by
//! `crowdout audit steerability` (a `steer.json` beside the rows) have no fixed grid: their α's are
//! chosen as the audit runs, so they are not plans and are counted apart (their resume and hashes
//! are tested in tests/steer_cli.rs).

use std::collections::HashSet;
use std::path::Path;

use crowdout::sweep::plan::Plan;
use crowdout::sweep::store::read_results;
use crowdout::sweep::SweepSpec;

#[test]
fn committed_result_hashes_are_the_plans() {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let mut checked_rows = 0;
    let mut dirs = 0;
    let mut audits = 0;
    for entry in std::fs::read_dir(&results).unwrap() {
        let dir = entry.unwrap().path();
        let (spec, csv) = (dir.join("spec.toml"), dir.join("results.csv"));
        if !spec.is_file() || !csv.is_file() {
            continue;
        }
        if dir.join("steer.json").is_file() {
            audits += 1;
            continue;
        }
        let spec = SweepSpec::from_path(&spec).unwrap();
        let plan = Plan::new(&spec).unwrap();
        let mut buf = String::new();
        let hashes: HashSet<String> = (0..plan.len()).map(|k| plan.config_hash_with(k, &mut buf)).collect();
        assert_eq!(hashes.len(), plan.len(), "{}", dir.display());
        for row in read_results(&csv).unwrap() {
            assert!(
                hashes.contains(&row.config_hash),
                "{}: row {} ({} {} alpha={} {} seed={}) is not a cell of spec.toml's plan",
                dir.display(),
                row.config_hash,
                row.dataset,
                row.model,
                row.alpha,
                row.privacy,
                row.seed
            );
            checked_rows += 1;
        }
        dirs += 1;
    }
    assert!(dirs >= 5 && checked_rows >= 1000, "{dirs} folders, {checked_rows} rows");
    assert!(audits >= 1, "the committed steerability audits were not recognised");
}
