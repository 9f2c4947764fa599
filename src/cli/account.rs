//! `crowdout account`.

#[derive(clap::Args, Debug)]
pub struct AccountArgs {}

pub fn run(_args: AccountArgs) -> anyhow::Result<()> {
    anyhow::bail!("`crowdout account` is not built yet")
}
