//! Host settings a test changes (a swap file, shmem THP), restored by guards, and commands run
//! under a deadline.

use super::unique;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A swap file in the target directory, swapped on; swapped off and deleted on drop.
pub struct SwapFile {
    path: PathBuf,
    on: bool,
}

impl SwapFile {
    pub fn new(mib: usize) -> Result<SwapFile, String> {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("swap-{}", unique()));
        let mut s = SwapFile {
            path: path.clone(),
            on: false,
        };
        // Written, not sparse: swapon refuses files with holes.
        let mut f = std::fs::File::create(&path).map_err(|e| format!("create {path:?}: {e}"))?;
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..mib {
            f.write_all(&chunk)
                .map_err(|e| format!("write swap file: {e}"))?;
        }
        f.sync_all().map_err(|e| e.to_string())?;
        drop(f);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let ok = |c: &mut Command| run_within(c, 60) == Some(true);
        if !ok(Command::new("mkswap").arg(&path)) {
            return Err("mkswap failed (or is missing)".into());
        }
        if !ok(Command::new("swapon").arg(&path)) {
            return Err("swapon refused the file (no swap support here?)".into());
        }
        s.on = true;
        Ok(s)
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        // swapoff reads every swapped page back: bounded, so a host short of memory costs a
        // warning rather than a hung run.
        if self.on && run_within(Command::new("swapoff").arg(&self.path), 120) != Some(true) {
            eprintln!("warning: swapoff {:?} failed or ran over 120 s", self.path);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `cmd` (output discarded) for at most `secs` seconds, killing it then. Some(success) when
/// it finished, None when it could not start or ran over.
pub fn run_within(cmd: &mut Command, secs: u64) -> Option<bool> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st.success()),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `shmem_enabled` set to a mode; the previous mode is restored on drop.
pub struct ShmemThp {
    saved: String,
}

pub const SHMEM_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";

impl ShmemThp {
    pub fn set(mode: &str) -> Option<ShmemThp> {
        let text = std::fs::read_to_string(SHMEM_ENABLED).ok()?;
        let saved = text
            .split_whitespace()
            .find(|w| w.starts_with('['))?
            .trim_matches(['[', ']'])
            .to_string();
        std::fs::write(SHMEM_ENABLED, mode).ok()?;
        Some(ShmemThp { saved })
    }
}

impl Drop for ShmemThp {
    fn drop(&mut self) {
        let _ = std::fs::write(SHMEM_ENABLED, &self.saved);
    }
}
