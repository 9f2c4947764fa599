//! `crowdout bound`.

#[derive(clap::Args, Debug)]
pub struct BoundArgs {}

pub fn run(_args: BoundArgs) -> anyhow::Result<()> {
    anyhow::bail!("`crowdout bound` is not built yet")
}
