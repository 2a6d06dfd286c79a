//! What the hugetlb phase borrows from the host: 2 MiB huge pages added to the pool, and a
//! hugetlbfs mount; both given back in guards (also on panic).
//!
//! The pool is grown and shrunk by the number of pages this run added, never set to an absolute
//! value: other test runs on the host reserve theirs at the same time.

use std::ffi::CString;
use std::path::PathBuf;

pub const HUGEPAGES: &str = "/sys/kernel/mm/hugepages";
const NR: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

fn read_nr() -> Option<u64> {
    std::fs::read_to_string(NR).ok()?.trim().parse().ok()
}

/// Pages this run added to the 2 MiB pool while it lives.
pub struct HugePool {
    pub added: u64,
}

impl HugePool {
    /// Up to `n` more pages (the kernel may find fewer free 2 MiB blocks); Err with the reason
    /// when the pool could not grow at all.
    pub fn grow(n: u64) -> Result<HugePool, String> {
        let have = read_nr().ok_or(format!("no {NR}"))?;
        std::fs::write(NR, (have + n).to_string()).map_err(|e| format!("write {NR}: {e}"))?;
        // The guard exists from here: whatever was added is given back.
        let mut g = HugePool { added: 0 };
        g.added = read_nr().unwrap_or(have).saturating_sub(have).min(n);
        if g.added == 0 {
            return Err(format!("{NR} did not grow from {have}"));
        }
        Ok(g)
    }
}

impl Drop for HugePool {
    fn drop(&mut self) {
        if let Some(now) = read_nr() {
            let _ = std::fs::write(NR, now.saturating_sub(self.added).to_string());
        }
    }
}

/// A hugetlbfs mount (`pagesize=2M`) on a temporary directory; its files are removed and it is
/// detached when dropped.
pub struct HugetlbfsMount {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl HugetlbfsMount {
    pub fn new() -> Result<HugetlbfsMount, String> {
        let dir = tempfile::Builder::new()
            .prefix("shmwho-oracle-hugetlbfs-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let target = CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: plain syscall with NUL-terminated strings that outlive it.
        let rc = unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"hugetlbfs".as_ptr(),
                0,
                c"pagesize=2M".as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "mount hugetlbfs: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(HugetlbfsMount {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
}

impl Drop for HugetlbfsMount {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let target = CString::new(self.path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: plain syscall.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}
