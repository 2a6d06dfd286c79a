//! Sizes, which pages each party writes, and the ground truth: pure functions.

use super::*;

/// `size` rounded up to whole pages, or why it cannot be used.
pub(super) fn round_to_pages(what: &str, size: u64, page: u64) -> Result<u64, String> {
    if size == 0 {
        return Err(format!(
            "the {what} must be at least 1 byte (it is rounded up to whole {page}-byte pages)"
        ));
    }
    let rounded = size
        .checked_add(page - 1)
        .map(|s| s / page * page)
        .filter(|&s| s <= isize::MAX as u64)
        .ok_or_else(|| format!("the {what} ({size} bytes) is too large to map"))?;
    Ok(rounded)
}

/// Object sizes in pages, and which pages are written. Integer page counts throughout: the
/// truth is what is actually written, so a 1-page region gets nothing from child 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) page: u64,
    pub(super) anon: u64,
    pub(super) sysv: Option<u64>,
    pub(super) memfd: Option<u64>,
    pub(super) posix: Option<u64>,
    pub(super) tmpfs: Option<u64>,
}

impl Plan {
    pub(super) fn new(opts: &LabOptions, page: u64) -> Result<Plan> {
        let pages = |what: &str, size: u64| -> Result<u64> {
            Ok(round_to_pages(what, size, page).map_err(|e| anyhow!(e))? / page)
        };
        let opt = |what: &str, size: Option<u64>| size.map(|s| pages(what, s)).transpose();
        Ok(Plan {
            page,
            anon: pages("anonymous shared region", opts.size)?,
            sysv: opt("SysV segment", opts.sysv)?,
            memfd: opt("memfd", opts.memfd)?,
            posix: opt("POSIX shm object", opts.posix)?,
            tmpfs: opt("tmpfs file", opts.tmpfs.as_ref().map(|t| t.1))?,
        })
    }

    /// Every object's full size: what the lab could make resident.
    pub(super) fn total_bytes(&self) -> u64 {
        [self.sysv, self.memfd, self.posix, self.tmpfs]
            .into_iter()
            .flatten()
            .fold(self.anon, u64::saturating_add)
            .saturating_mul(self.page)
    }

    pub(super) fn bytes(&self, pages: u64) -> u64 {
        pages * self.page
    }

    /// Pages of the anonymous region child 1 writes: the first quarter.
    pub(super) fn child1_anon(&self) -> u64 {
        self.anon / 4
    }

    /// Pages of the anonymous region child 2 writes: the first half, overlapping child 1's.
    pub(super) fn child2_anon(&self) -> u64 {
        self.anon / 2
    }

    /// Resident pages of the anonymous region: the union of both children's writes.
    pub(super) fn anon_resident(&self) -> u64 {
        self.child1_anon().max(self.child2_anon())
    }
}

/// Pages child 1 writes into the SysV segment: the first half.
pub(super) fn sysv_written(pages: u64) -> u64 {
    pages / 2
}

/// Pages child 2 writes into the memfd: the first quarter.
pub(super) fn memfd_written(pages: u64) -> u64 {
    pages / 4
}

/// Pages the master writes into the POSIX object: the first three quarters.
pub(super) fn posix_written(pages: u64) -> u64 {
    pages * 3 / 4
}

/// Pages the master writes into the tmpfs file: the first half.
pub(super) fn tmpfs_written(pages: u64) -> u64 {
    pages / 2
}

/// `(st_dev as "major:minor", st_ino)`: what identifies a shmem inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileId {
    pub(super) dev: String,
    pub(super) ino: u64,
}

impl FileId {
    pub(super) fn of(st: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: crate::report::dev_text(st.st_dev),
            ino: st.st_ino,
        }
    }
}

/// The identities the experiment created, gathered for [`build_truth`].
#[derive(Debug, Clone)]
pub(super) struct Ids {
    pub(super) master: i32,
    pub(super) children: [i32; 2],
    pub(super) anon: FileId,
    pub(super) sysv: Option<i32>,
    pub(super) memfd: Option<FileId>,
    /// Identity and path (`/dev/shm/...`).
    pub(super) posix: Option<(FileId, String)>,
    pub(super) tmpfs: Option<(FileId, String)>,
}

#[derive(Serialize, Debug)]
pub(super) struct Truth {
    pub(super) lab: &'static str,
    pub(super) master_pid: i32,
    pub(super) page_size: u64,
    pub(super) children: Vec<ChildTruth>,
    pub(super) objects: Vec<ObjectTruth>,
}

#[derive(Serialize, Debug)]
pub(super) struct ChildTruth {
    pub(super) pid: i32,
    /// Bytes of the pages this child wrote, over all objects.
    pub(super) wrote_bytes: u64,
    pub(super) alive: bool,
    /// The same, object by object.
    pub(super) wrote: Vec<Wrote>,
}

#[derive(Serialize, Debug)]
pub(super) struct Wrote {
    pub(super) kind: &'static str,
    pub(super) bytes: u64,
}

#[derive(Serialize, Debug)]
pub(super) struct ObjectTruth {
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) inode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) shmid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) path: Option<String>,
    pub(super) size_bytes: u64,
    pub(super) resident_bytes: u64,
    pub(super) holders: Vec<HolderTruth>,
    pub(super) owner_pid: Option<i32>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HolderTruth {
    pub(super) pid: i32,
    pub(super) via: &'static str,
}

pub(super) fn map(pid: i32) -> HolderTruth {
    HolderTruth { pid, via: "map" }
}

pub(super) fn fd(pid: i32) -> HolderTruth {
    HolderTruth { pid, via: "fd" }
}

pub(super) fn file_object(kind: &'static str, id: &FileId) -> ObjectTruth {
    ObjectTruth {
        kind,
        inode: Some(id.ino),
        dev: Some(id.dev.clone()),
        shmid: None,
        key: None,
        name: None,
        path: None,
        size_bytes: 0,
        resident_bytes: 0,
        holders: Vec::new(),
        owner_pid: None,
    }
}

/// The ground truth of the experiment, once the children have written (and exited, when
/// `alive` is false).
pub(super) fn build_truth(plan: &Plan, ids: &Ids, alive: bool) -> Truth {
    let [c1, c2] = ids.children;
    let live = |holders: Vec<HolderTruth>| -> Vec<HolderTruth> {
        holders
            .into_iter()
            .filter(|h| alive || h.pid == ids.master)
            .collect()
    };
    let mut wrote1 = vec![Wrote {
        kind: "anon_shared",
        bytes: plan.bytes(plan.child1_anon()),
    }];
    let mut wrote2 = vec![Wrote {
        kind: "anon_shared",
        bytes: plan.bytes(plan.child2_anon()),
    }];
    let mut objects = Vec::new();

    objects.push(ObjectTruth {
        size_bytes: plan.bytes(plan.anon),
        resident_bytes: plan.bytes(plan.anon_resident()),
        holders: live(vec![map(ids.master), map(c1), map(c2)]),
        owner_pid: Some(ids.master),
        ..file_object("anon_shared", &ids.anon)
    });
    if let (Some(pages), Some(shmid)) = (plan.sysv, ids.sysv) {
        let written = plan.bytes(sysv_written(pages));
        wrote1.push(Wrote {
            kind: "sysv",
            bytes: written,
        });
        objects.push(ObjectTruth {
            kind: "sysv",
            inode: None,
            dev: None,
            shmid: Some(shmid),
            key: Some(0),
            name: None,
            path: None,
            size_bytes: plan.bytes(pages),
            resident_bytes: written,
            holders: live(vec![map(c1)]),
            owner_pid: Some(ids.master),
        });
    }
    if let (Some(pages), Some(id)) = (plan.memfd, &ids.memfd) {
        let written = plan.bytes(memfd_written(pages));
        wrote2.push(Wrote {
            kind: "memfd",
            bytes: written,
        });
        objects.push(ObjectTruth {
            name: Some(MEMFD_NAME),
            size_bytes: plan.bytes(pages),
            resident_bytes: written,
            holders: live(vec![fd(ids.master), fd(c1), map(c2), fd(c2)]),
            owner_pid: Some(ids.master),
            ..file_object("memfd", id)
        });
    }
    if let (Some(pages), Some((id, path))) = (plan.posix, &ids.posix) {
        objects.push(ObjectTruth {
            path: Some(path.clone()),
            size_bytes: plan.bytes(pages),
            resident_bytes: plan.bytes(posix_written(pages)),
            ..file_object("posix_shm", id)
        });
    }
    if let (Some(pages), Some((id, path))) = (plan.tmpfs, &ids.tmpfs) {
        objects.push(ObjectTruth {
            path: Some(path.clone()),
            size_bytes: plan.bytes(pages),
            resident_bytes: plan.bytes(tmpfs_written(pages)),
            holders: vec![map(ids.master)],
            owner_pid: Some(ids.master),
            ..file_object("tmpfs", id)
        });
    }
    let child = |pid: i32, wrote: Vec<Wrote>| ChildTruth {
        pid,
        wrote_bytes: wrote.iter().map(|w| w.bytes).sum(),
        alive,
        wrote,
    };
    Truth {
        lab: "experiment",
        master_pid: ids.master,
        page_size: plan.page,
        children: vec![child(c1, wrote1), child(c2, wrote2)],
        objects,
    }
}

#[derive(Serialize, Debug)]
pub(super) struct PoolTruth {
    pub(super) lab: &'static str,
    pub(super) master_pid: i32,
    pub(super) workers: u32,
    pub(super) worker_pids: Vec<i32>,
    pub(super) inode: u64,
    pub(super) dev: String,
    pub(super) size_bytes: u64,
    pub(super) resident_bytes: u64,
}

/// What the host allows, read before anything is created; None where unknown or unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct HostLimits {
    /// `MemAvailable` of /proc/meminfo, in bytes.
    pub(super) mem_available: Option<u64>,
    /// `kernel.pid_max`.
    pub(super) pid_max: Option<u64>,
    /// `kernel.threads-max`.
    pub(super) threads_max: Option<u64>,
    /// Tasks (threads) on the host now: the fourth field of /proc/loadavg after the slash.
    pub(super) tasks: Option<u64>,
    /// RLIMIT_NPROC where the kernel enforces it (not for root).
    pub(super) nproc: Option<u64>,
}

/// `MemAvailable` in bytes from /proc/meminfo text.
pub(super) fn mem_available(meminfo: &str) -> Option<u64> {
    let rest = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses `bytes` of shared memory beyond MemAvailable: the host would swap or call the OOM
/// killer, and the lab's truth would no longer be what is resident.
pub(super) fn check_memory(what: &str, bytes: u64, limits: &HostLimits) -> Result<(), String> {
    match limits.mem_available {
        Some(avail) if bytes > avail => Err(format!(
            "{what} would need {} but MemAvailable is {}: refusing (--force to try anyway)",
            fmt_bytes(bytes),
            fmt_bytes(avail)
        )),
        _ => Ok(()),
    }
}

/// Refuses more workers than the host can start: past pid_max or threads-max (less the tasks
/// already running) or RLIMIT_NPROC, fork fails half-way and other users' forks fail too.
pub(super) fn check_workers(workers: u32, limits: &HostLimits) -> Result<(), String> {
    let running = limits.tasks.unwrap_or(0);
    // The master and the watcher count too.
    let wanted = u64::from(workers) + 2;
    let mut bounds: Vec<(u64, String)> = Vec::new();
    if let Some(max) = limits.pid_max {
        bounds.push((
            max.saturating_sub(running),
            format!("kernel.pid_max is {max} with {running} tasks running"),
        ));
    }
    if let Some(max) = limits.threads_max {
        bounds.push((
            max.saturating_sub(running),
            format!("kernel.threads-max is {max} with {running} tasks running"),
        ));
    }
    if let Some(max) = limits.nproc {
        bounds.push((max, format!("ulimit -u is {max}")));
    }
    match bounds.into_iter().min_by_key(|b| b.0) {
        Some((room, why)) if wanted > room => Err(format!(
            "--workers {workers}: the host has room for {} more processes ({why}): refusing \
             (--force to try anyway)",
            room.saturating_sub(2)
        )),
        _ => Ok(()),
    }
}
