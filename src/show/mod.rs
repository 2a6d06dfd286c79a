//! TEMPORARY STUB: `shmwho show` (a helper replaces this file).

#[derive(clap::Args, Debug)]
pub struct ShowArgs {}

pub fn run(_args: ShowArgs, _out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    anyhow::bail!("shmwho show is not built yet")
}
