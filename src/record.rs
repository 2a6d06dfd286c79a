//! TEMPORARY STUB: `shmwho record` and `shmwho diff` (a helper replaces this file).

#[derive(clap::Args, Debug)]
pub struct RecordArgs {}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {}

pub fn record(_args: RecordArgs, _out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    anyhow::bail!("shmwho record is not built yet")
}

pub fn diff(_args: DiffArgs, _out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    anyhow::bail!("shmwho diff is not built yet")
}
