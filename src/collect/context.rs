//! What the scan learns once and every step needs: host paths, the shmem device, our own
//! namespaces, and the tmpfs mounts of every mount namespace seen.

use super::parse::{hugepages, mountinfo};
use super::{cgroup, HostPaths};
use crate::error::Error;
use crate::model::Pid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One mount namespace, read once through one of its processes.
pub(crate) struct MountNs {
    /// The process its mounts are reached through (`/proc/PID/root/...`); `None` for ours,
    /// reached through [`HostPaths::reach`].
    pub pid: Option<Pid>,
    /// Its mount table, mount points as that process sees them.
    pub entries: Vec<mountinfo::MountEntry>,
}

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
    /// hugetlbfs mounts by device, with the mount namespace they were seen in and their page
    /// size.
    pub hugetlbfs: HashMap<u64, (mountinfo::MountEntry, Option<u64>, u64)>,
    /// The internal hugetlbfs mounts (MAP_HUGETLB, MFD_HUGETLB, SHM_HUGETLB): device → page size.
    pub hugetlb_internal: HashMap<u64, u64>,
    /// The default huge page size, for a hugetlbfs mount that shows no `pagesize=`.
    pub default_huge_page: u64,
    /// tmpfs and hugetlbfs mount points per mount namespace, for telling fd paths worth a stat.
    pub mount_points: HashMap<Option<u64>, Vec<PathBuf>>,
    /// Every mount namespace read (ours under `None`): the process it was read through and
    /// its mount table.
    pub namespaces: HashMap<Option<u64>, MountNs>,
    /// Where the memory cgroup controller is mounted.
    pub cgroups: cgroup::Hierarchies,
    /// Devices mounted in our own mount namespace: a file on one of them that is not tmpfs
    /// or hugetlbfs is no other namespace's tmpfs either.
    pub own_devs: std::collections::HashSet<u64>,
    /// What the BPF iterators saw, where they may be used ([`super::bpf`]); `None`: read
    /// each process's `stat`, namespaces and fds from `/proc`.
    pub kernel: Option<super::bpf::KernelSnapshot>,
    /// Memory cgroups named in this scan, by kernfs id (`process::cgroup_of`).
    pub cgroup_names: std::sync::Mutex<HashMap<u64, String>>,
}

impl Context {
    /// Context of a scan: our own namespaces and mount table (`own_mountinfo`).
    pub(crate) fn new(
        paths: &HostPaths,
        page_size: u64,
        own_mountinfo: &[u8],
        pools: &[crate::model::HugePool],
        default_huge_page: u64,
    ) -> Result<Context, Error> {
        let mut ctx = Context {
            paths: paths.clone(),
            page_size,
            shmem_dev: shmem_device()?,
            own_ipc_ns: ns_inode(&paths.proc_root.join("self/ns/ipc")),
            own_mnt_ns: ns_inode(
                &paths
                    .proc_root
                    .join(super::own_mnt_proc(paths))
                    .join("ns/mnt"),
            ),
            tmpfs: HashMap::new(),
            hugetlbfs: HashMap::new(),
            hugetlb_internal: super::hugetlb::internal_devices(pools),
            default_huge_page,
            mount_points: HashMap::new(),
            namespaces: HashMap::new(),
            cgroups: cgroup::parse_mounts(own_mountinfo).reached(paths),
            own_devs: mountinfo::parse(own_mountinfo).map(|m| m.dev).collect(),
            kernel: None,
            cgroup_names: std::sync::Mutex::new(HashMap::new()),
        };
        ctx.add_mounts(None, None, own_mountinfo);
        Ok(ctx)
    }

    /// Files the tmpfs mounts of mount namespace `ns` (seen in the mountinfo `text` of process
    /// `pid`, `None` for our own).
    pub(crate) fn add_mounts(&mut self, ns: Option<u64>, pid: Option<Pid>, text: &[u8]) {
        let ns = self.mnt_key(ns);
        let pid = if ns.is_none() { None } else { pid };
        let entries: Vec<mountinfo::MountEntry> = mountinfo::parse(text).collect();
        let points = self.mount_points.entry(ns).or_default();
        for m in entries.iter().filter(|m| m.fs_type == "tmpfs") {
            points.push(m.mount_point.clone());
            // The first namespace that shows a device names it; ours is read first. Within a
            // namespace, the mount not hidden by another of the same device names it.
            match self.tmpfs.get_mut(&m.dev) {
                None => {
                    self.tmpfs.insert(m.dev, (m.clone(), ns));
                }
                Some((seen, seen_ns)) if *seen_ns == ns => {
                    if !mountinfo::covering(&entries, m).is_empty() {
                        continue;
                    }
                    *seen = m.clone();
                }
                Some(_) => {}
            }
        }
        for m in mountinfo::hugetlbfs(text) {
            points.push(m.mount_point.clone());
            let size = m
                .option("pagesize")
                .and_then(hugepages::option_size)
                .unwrap_or(self.default_huge_page);
            self.hugetlbfs.entry(m.dev).or_insert((m, ns, size));
        }
        self.namespaces
            .entry(ns)
            .or_insert(MountNs { pid, entries });
    }

    /// The huge page size of hugetlb memory on `dev`; None for any other device.
    pub(crate) fn huge_page_size(&self, dev: u64) -> Option<u64> {
        self.hugetlb_internal
            .get(&dev)
            .copied()
            .or_else(|| self.hugetlbfs.get(&dev).map(|(_, _, size)| *size))
    }

    /// The namespace key under which a process's mounts are filed.
    pub(crate) fn mnt_key(&self, ns: Option<u64>) -> Option<u64> {
        if ns == self.own_mnt_ns {
            None
        } else {
            ns
        }
    }

    /// Whether files of `dev` are shared memory: the internal shmem mount, a tmpfs, or
    /// hugetlbfs (internal or mounted).
    pub(crate) fn is_shmem_dev(&self, dev: u64) -> bool {
        dev == self.shmem_dev || self.tmpfs.contains_key(&dev) || self.huge_page_size(dev).is_some()
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

/// [`ns_inode`] of the link `name` (`ns/ipc`) in a process directory opened with
/// [`super::read::open_dir`].
pub(crate) fn ns_inode_at(dir: rustix::fd::BorrowedFd<'_>, name: &str) -> Option<u64> {
    let t = rustix::fs::readlinkat(dir, name, Vec::new()).ok()?;
    let t = t.to_str().ok()?;
    t.split_once('[')?.1.strip_suffix(']')?.parse().ok()
}

/// The internal shmem mount's device, learnt without privileges from a memfd of our own
/// (docs/facts.md #1).
fn shmem_device() -> Result<u64, Error> {
    let fd =
        rustix::fs::memfd_create("shmwho-probe", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| {
            Error::Io {
                path: PathBuf::from("memfd_create"),
                cause: e.into(),
            }
        })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::Io {
        path: PathBuf::from("memfd_create"),
        cause: e.into(),
    })?;
    Ok(st.st_dev)
}
