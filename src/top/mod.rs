//! TEMPORARY STUB: `shmwho top` (a helper replaces this file).

#[derive(clap::Args, Debug)]
pub struct TopArgs {}

pub fn run(_args: TopArgs, _out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    anyhow::bail!("shmwho top is not built yet")
}
