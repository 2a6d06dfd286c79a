//! TEMPORARY STUB (helper-1 replaces this whole file with the real lab).
pub struct LabOptions {
    pub size: u64,
    pub exit_children: bool,
    pub sysv: Option<u64>,
    pub memfd: Option<u64>,
    pub posix: Option<u64>,
    pub tmpfs: Option<(std::path::PathBuf, u64)>,
    pub for_secs: Option<f64>,
    pub json: bool,
}
pub struct PoolOptions {
    pub workers: u32,
    pub shared: u64,
    pub for_secs: Option<f64>,
    pub json: bool,
}
pub fn run(_opts: &LabOptions) -> anyhow::Result<()> {
    anyhow::bail!("lab not built yet")
}
pub fn run_pool(_opts: &PoolOptions) -> anyhow::Result<()> {
    anyhow::bail!("lab not built yet")
}
