//! TEMPORARY STUB: `shmwho export` (a helper replaces this file).

#[derive(clap::Args, Debug)]
pub struct ExportArgs {}

pub fn run(_args: ExportArgs, _out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    anyhow::bail!("shmwho export is not built yet")
}
