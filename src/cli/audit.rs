//! `crowdout audit`.

#[derive(clap::Args, Debug)]
pub struct AuditArgs {}

pub fn run(_args: AuditArgs) -> anyhow::Result<()> {
    anyhow::bail!("`crowdout audit` is not built yet")
}
