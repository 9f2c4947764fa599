//! `crowdout sweep`.

#[derive(clap::Args, Debug)]
pub struct SweepArgs {}

pub fn run(_args: SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("`crowdout sweep` is not built yet")
}
