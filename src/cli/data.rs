//! `crowdout data`.

#[derive(clap::Args, Debug)]
pub struct DataArgs {}

pub fn run(_args: DataArgs) -> anyhow::Result<()> {
    anyhow::bail!("`crowdout data` is not built yet")
}
