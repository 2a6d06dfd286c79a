//! What the scan learns once and every step needs: host paths, the shmem device, our own
//! namespaces, and the tmpfs mounts of every mount namespace seen.

use super::parse::mountinfo;
use super::{cgroup, HostPaths};
use crate::error::Error;
use crate::model::Pid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Scan-wide facts.
pub(crate) struct Context {
    pub paths: HostPaths,
    pub page_size: u64,
    /// Device of the kernel's internal shmem mount (anonymous shared, SysV, memfd).
    pub shmem_dev: u64,
    pub own_ipc_ns: Option<u64>,
    pub own_mnt_ns: Option<u64>,
    /// tmpfs mounts by device, with the mount namespace they were seen in.
    pub tmpfs: HashMap<u64, (mountinfo::MountEntry, Option<u64>)>,
    /// tmpfs mount points per mount namespace, for telling fd paths worth a stat.
    pub mount_points: HashMap<Option<u64>, Vec<PathBuf>>,
    /// Where the memory cgroup controller is mounted.
    pub cgroups: cgroup::Hierarchies,
}

impl Context {
    /// Context of a scan: our own namespaces and mount table (`own_mountinfo`).
    pub(crate) fn new(
        paths: &HostPaths,
        page_size: u64,
        own_mountinfo: &[u8],
    ) -> Result<Context, Error> {
        let mut ctx = Context {
            paths: paths.clone(),
            page_size,
            shmem_dev: shmem_device()?,
            own_ipc_ns: ns_inode(&paths.proc_root.join("self/ns/ipc")),
            own_mnt_ns: ns_inode(&paths.proc_root.join("self/ns/mnt")),
            tmpfs: HashMap::new(),
            mount_points: HashMap::new(),
            cgroups: cgroup::parse_mounts(own_mountinfo),
        };
        ctx.add_mounts(None, own_mountinfo);
        Ok(ctx)
    }

    /// Files the tmpfs mounts of mount namespace `ns` (seen in its mountinfo `text`).
    pub(crate) fn add_mounts(&mut self, ns: Option<u64>, text: &[u8]) {
        let ns = if ns == self.own_mnt_ns { None } else { ns };
        let found = mountinfo::tmpfs(text);
        let points = self.mount_points.entry(ns).or_default();
        for m in found {
            points.push(m.mount_point.clone());
            // The first namespace that shows a device names it; ours is read first.
            self.tmpfs.entry(m.dev).or_insert((m, ns));
        }
    }

    /// The namespace key under which a process's mounts are filed.
    pub(crate) fn mnt_key(&self, ns: Option<u64>) -> Option<u64> {
        if ns == self.own_mnt_ns {
            None
        } else {
            ns
        }
    }

    /// Whether files of `dev` are shared memory: the internal shmem mount or a tmpfs.
    pub(crate) fn is_shmem_dev(&self, dev: u64) -> bool {
        dev == self.shmem_dev || self.tmpfs.contains_key(&dev)
    }

    /// `/proc/PID/rest`.
    pub(crate) fn pid_path(&self, pid: Pid, rest: &str) -> PathBuf {
        self.paths.pid_file(pid, rest)
    }

    /// `PID/REST`, or `PID/task/TID/REST` for a process read through a live thread.
    pub(crate) fn task_path(&self, pid: Pid, task: Option<Pid>, rest: &str) -> PathBuf {
        match task {
            Some(tid) => self.paths.pid_file(pid, &format!("task/{tid}/{rest}")),
            None => self.pid_path(pid, rest),
        }
    }
}

/// `ipc:[4026531839]` → 4026531839.
pub(crate) fn ns_inode(link: &Path) -> Option<u64> {
    let t = std::fs::read_link(link).ok()?;
    let t = t.to_str()?;
    t.split_once('[')?.1.strip_suffix(']')?.parse().ok()
}

/// The internal shmem mount's device, learnt without privileges from a memfd of our own
/// (docs/facts.md #1).
fn shmem_device() -> Result<u64, Error> {
    let fd =
        rustix::fs::memfd_create("shmwho-probe", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| {
            Error::Io {
                path: PathBuf::from("memfd_create"),
                source: e.into(),
            }
        })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::Io {
        path: PathBuf::from("memfd_create"),
        source: e.into(),
    })?;
    Ok(st.st_dev)
}
