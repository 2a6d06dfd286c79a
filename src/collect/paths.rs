//! Where the host's files are: a value passed in [`super::Options`], so a test can point a whole
//! scan at a fake tree and a containerised shmwho at the host's.

use std::path::{Path, PathBuf};

/// The host paths a scan reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPaths {
    /// Where procfs is mounted (`/proc`); `sysvipc/shm` and every `PID/...` are read under it.
    pub proc_root: PathBuf,
    /// The tmpfs of POSIX shared memory (`/dev/shm`), as mountinfo names it: its files are
    /// `posix_shm` objects, listed even when nobody holds them.
    pub dev_shm: PathBuf,
    /// The user database (`/etc/passwd`).
    pub passwd: PathBuf,
    /// Where the mount points that mountinfo lists (tmpfs, hugetlbfs) are reachable from here
    /// (`/`): files are `stat`ed and mounts `statfs`ed under it.
    pub mount_root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            proc_root: PathBuf::from("/proc"),
            dev_shm: PathBuf::from("/dev/shm"),
            passwd: PathBuf::from("/etc/passwd"),
            mount_root: PathBuf::from("/"),
        }
    }
}

impl HostPaths {
    /// The defaults with procfs at `proc_root` (the hidden `--proc-root` flag).
    pub fn with_proc_root(proc_root: impl Into<PathBuf>) -> HostPaths {
        HostPaths {
            proc_root: proc_root.into(),
            ..HostPaths::default()
        }
    }

    /// `/proc/sysvipc/shm`.
    pub fn sysvipc_shm(&self) -> PathBuf {
        self.proc_root.join("sysvipc/shm")
    }

    /// `/proc/PID/rest`.
    pub fn pid_file(&self, pid: i32, rest: &str) -> PathBuf {
        self.proc_root.join(format!("{pid}/{rest}"))
    }

    /// Where `path`, as mountinfo or an fd link names it, is reachable from here.
    pub fn reach(&self, path: &Path) -> PathBuf {
        match path.strip_prefix("/") {
            Ok(rel) if self.mount_root != Path::new("/") => self.mount_root.join(rel),
            _ => path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_prefixes_only_a_moved_root() {
        let p = HostPaths::default();
        assert_eq!(p.reach(Path::new("/dev/shm/x")), Path::new("/dev/shm/x"));
        let p = HostPaths {
            mount_root: "/host".into(),
            ..HostPaths::default()
        };
        assert_eq!(
            p.reach(Path::new("/dev/shm/x")),
            Path::new("/host/dev/shm/x")
        );
        assert_eq!(p.reach(Path::new("/")), Path::new("/host/"));
        assert_eq!(
            HostPaths::with_proc_root("/p").sysvipc_shm(),
            Path::new("/p/sysvipc/shm")
        );
    }
}
