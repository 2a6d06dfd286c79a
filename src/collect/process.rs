//! One process: its O(1) files (pass 1), then its maps or smaps and its fds (pass 2).

use super::context::{ns_inode, Context};
use super::measure;
use super::parse::{cmdline, maps, smaps, stat, status};
use super::read::{classify, Read, Reader, SMAPS_CHUNK};
use crate::error::Error;
use crate::model::{Pid, Process, SmapsTotals, TITLE_MAX};
use std::collections::HashMap;
use std::path::Path;

/// Per-process data the object builder needs beyond [`Process`].
#[derive(Clone, Debug, Default)]
pub(crate) struct RawProcess {
    pub maps: Vec<maps::MapsEntry>,
    /// Bytes mapped from devices with major 0 that turned out not to be shmem or tmpfs: kept so
    /// unprivileged lower bounds stay below the truth.
    pub other_anon_dev_mapped: u64,
    pub fds: Vec<(i32, Vec<u8>, measure::InodeStat)>,
    pub smaps_by_start: HashMap<u64, (u64, u64)>,
    /// A live thread to read the process through when its leader has exited.
    pub task: Option<Pid>,
}

/// `stat`, `status`, namespaces, cgroup: what every view needs, O(1) per process. With the
/// process, the live thread to read it through when its leader has exited.
pub(crate) fn scan_head(
    ctx: &Context,
    reader: &mut Reader,
    pid: Pid,
    cgroups: bool,
) -> Read<Option<(Process, Option<Pid>)>> {
    let stat = match classify(reader.read(&ctx.pid_path(pid, "stat"))) {
        Read::Ok(t) => t,
        Read::Vanished => return Read::Vanished,
        Read::Denied => return Read::Denied,
    };
    let Some(stat) = stat::parse(stat) else {
        return Read::Vanished;
    };
    if stat.is_kernel_thread() {
        return Read::Ok(None);
    }
    // A leader that called pthread_exit stays a zombie while its other threads run on; its own
    // maps, fd, status and namespaces are empty then, a live thread's task directory has them.
    let task = if stat.is_zombie() {
        match live_thread(ctx, reader, pid) {
            Some(tid) => Some(tid),
            None => return Read::Ok(None), // exited, not yet reaped: holds nothing
        }
    } else {
        None
    };
    let status = match classify(reader.read(&ctx.task_path(pid, task, "status"))) {
        Read::Ok(t) => t,
        Read::Vanished => return Read::Vanished,
        Read::Denied => return Read::Denied,
    };
    let Some(status) = status::parse(status) else {
        return Read::Vanished;
    };
    let p = Process {
        pid,
        ppid: status.ppid,
        comm: stat.comm,
        // Read last, by `read_titles`: see there.
        title: None,
        uid: status.uid,
        user: String::new(),
        start_ticks: stat.start_ticks,
        rss_bytes: status.vm_rss.unwrap_or(0),
        rss_anon_bytes: status.rss_anon,
        rss_file_bytes: status.rss_file,
        rss_shmem_bytes: status.rss_shmem,
        swap_bytes: status.vm_swap,
        ipc_ns: ns_inode(&ctx.task_path(pid, task, "ns/ipc")),
        mnt_ns: ns_inode(&ctx.task_path(pid, task, "ns/mnt")),
        smaps: None,
        // One small file: the memory cgroup, for `procs --by cgroup` and the exporter.
        cgroup: if cgroups {
            reader
                .read(&ctx.task_path(pid, task, "cgroup"))
                .ok()
                .and_then(|t| ctx.cgroups.process_cgroup(t))
        } else {
            None
        },
    };
    Read::Ok(Some((p, task)))
}

/// The first thread of `pid` other than the leader that is not a zombie.
fn live_thread(ctx: &Context, reader: &mut Reader, pid: Pid) -> Option<Pid> {
    let dir = std::fs::read_dir(ctx.pid_path(pid, "task")).ok()?;
    let mut tids: Vec<Pid> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|&tid| tid != pid)
        .collect();
    tids.sort_unstable();
    tids.into_iter().find(|&tid| {
        reader
            .read(&ctx.pid_path(pid, &format!("task/{tid}/stat")))
            .ok()
            .and_then(stat::parse)
            .is_some_and(|s| !s.is_zombie())
    })
}

/// The process title, bounded to [`TITLE_MAX`] bytes. Read for every process: on the
/// 300-worker pool (`shmwho lab pool --workers 300 --shared 64M`, 779 processes, 2 loaded
/// cores) `cat /proc/[0-9]*/cmdline` took 20-60 ms against 22-121 ms for every `stat` and
/// 195-1095 ms for a debug `shmwho objects`, and there every worker holds the pool's object:
/// reading only holders' and shown processes' titles would save nothing measurable. Reading
/// `cmdline` takes the process's mmap_lock (docs/facts.md #23): under the deadline.
fn read_title(ctx: &Context, reader: &mut Reader, pid: Pid) -> Option<String> {
    reader
        .read_prefix_locked(pid, "cmdline", &ctx.pid_path(pid, "cmdline"), TITLE_MAX)?
        .ok()
        .and_then(cmdline::title)
}

/// The titles of `processes`, read after their maps, fds and objects: `cmdline` waits on the
/// mmap_lock that `maps` (lock-free on recent kernels) does not, so a stuck process read here
/// first would be left out whole, where read last it keeps its maps and is named stuck by the
/// file that really needs the lock (map_files, smaps). A process known stuck gets no title.
pub(crate) fn read_titles(ctx: &Context, processes: &mut [Process]) {
    let pids: Vec<Pid> = processes.iter().map(|p| p.pid).collect();
    let titles =
        super::parallel::parallel_map(pids, 64, |reader, pid| read_title(ctx, reader, pid));
    for (p, t) in processes.iter_mut().zip(titles) {
        p.title = t;
    }
}

/// Maps (or smaps) and fds. Returns whether they were unreadable (permissions), in which case
/// the process is still listed with its status counters; `Ok(None)` when the process is stuck
/// (its maps or smaps did not answer in time: `super::deadline`).
pub(crate) fn scan_body(
    ctx: &Context,
    reader: &mut Reader,
    mut p: Process,
    task: Option<Pid>,
    want_smaps: bool,
) -> Read<Option<(Process, RawProcess, bool)>> {
    let pid = p.pid;
    let mnt_key = ctx.mnt_key(p.mnt_ns);
    let mut raw = RawProcess {
        task,
        ..RawProcess::default()
    };
    let mut denied = false;
    // smaps repeats every maps line, so with smaps wanted, maps is not read at all.
    let text = if want_smaps {
        reader.read_locked(
            pid,
            "smaps",
            &ctx.task_path(pid, task, "smaps"),
            SMAPS_CHUNK,
        )
    } else {
        reader.read_locked(pid, "maps", &ctx.task_path(pid, task, "maps"), usize::MAX)
    };
    let Some(text) = text else {
        return Read::Ok(None);
    };
    match classify(text) {
        Read::Ok(text) => {
            let mut keep = |e: maps::MapsEntry, smaps: Option<(u64, u64)>| {
                // Inode 0 is anonymous memory, except SysV segment 0: its shm file's inode
                // is its shmid, and the first segment of every IPC namespace is shmid 0 (on
                // the internal hugetlbfs device for SHM_HUGETLB).
                let segment_dev =
                    e.dev() == ctx.shmem_dev || ctx.hugetlb_internal.contains_key(&e.dev());
                if e.inode == 0 && !(e.path.starts_with(b"/SYSV") && segment_dev) {
                    return false;
                }
                if ctx.is_shmem_dev(e.dev()) {
                    if let Some(s) = smaps {
                        raw.smaps_by_start.insert(e.start, s);
                    }
                    raw.maps.push(e);
                    return true;
                }
                if e.dev_major == 0 {
                    raw.other_anon_dev_mapped = raw
                        .other_anon_dev_mapped
                        .saturating_add(e.end.saturating_sub(e.start));
                }
                false
            };
            if want_smaps {
                let mut totals = SmapsTotals::default();
                for vma in smaps::parse(text) {
                    totals.pss_bytes = totals.pss_bytes.saturating_add(vma.pss);
                    if !keep(vma.entry, Some((vma.pss, vma.rss))) {
                        totals.uss_bytes = totals.uss_bytes.saturating_add(vma.private);
                    }
                }
                p.smaps = Some(totals);
            } else {
                for e in maps::parse(text) {
                    keep(e, None);
                }
            }
        }
        Read::Vanished => return Read::Vanished,
        Read::Denied => denied = true,
    }
    match scan_fds(ctx, pid, task, mnt_key) {
        Read::Ok(fds) => raw.fds = fds,
        Read::Vanished => return Read::Vanished,
        Read::Denied => denied = true,
    }
    // The pid may have been reused since pass 1 read `stat` (tests/churn.rs makes it happen):
    // the maps and fds just read would then be another process's. A process is its pid and
    // start time.
    match reader.read(&ctx.pid_path(pid, "stat")) {
        Ok(t) if stat::parse(t).is_some_and(|s| s.start_ticks == p.start_ticks) => {}
        _ => return Read::Vanished,
    }
    Read::Ok(Some((p, raw, denied)))
}

/// Open fds that name a memfd or a file under a tmpfs mount, with their inode.
fn scan_fds(
    ctx: &Context,
    pid: Pid,
    task: Option<Pid>,
    mnt_key: Option<u64>,
) -> Read<Vec<(i32, Vec<u8>, measure::InodeStat)>> {
    let dir = ctx.task_path(pid, task, "fd");
    let entries = match classify(std::fs::read_dir(&dir)) {
        Read::Ok(e) => e,
        Read::Vanished => return Read::Vanished,
        Read::Denied => return Read::Denied,
    };
    let points = ctx.mount_points.get(&mnt_key);
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let Ok(target) = std::fs::read_link(&path) else {
            continue; // closed meanwhile
        };
        let target = target.into_os_string().into_encoded_bytes();
        // An fd opened on `/proc/PID/map_files/RANGE` of an anonymous shared mapping (also a
        // MAP_HUGETLB one) or a SysV attachment (checkpoint/restore tools do this) names the
        // inode as maps does (docs/facts.md 20).
        let candidate = target.starts_with(b"/memfd:")
            || target == b"/dev/zero (deleted)"
            || target == b"/anon_hugepage (deleted)"
            || target.starts_with(b"/SYSV")
            || points.is_some_and(|pts| {
                pts.iter()
                    .any(|mp| under(&target, mp.as_os_str().as_encoded_bytes()))
            });
        if !candidate {
            continue;
        }
        if let Ok(st) = measure::stat(&path) {
            if st.regular && ctx.is_shmem_dev(st.dev) {
                out.push((fd, target, st));
            }
        }
    }
    Read::Ok(out)
}

/// Whether `path` lies under mount point `mp` (component-wise).
pub fn under(path: &[u8], mp: &[u8]) -> bool {
    if mp == b"/" {
        return path.starts_with(b"/");
    }
    path.starts_with(mp) && (path.len() == mp.len() || path[mp.len()] == b'/')
}

/// The numeric entries of procfs, sorted.
pub(crate) fn list_pids(root: &Path) -> Result<Vec<Pid>, Error> {
    let dir = std::fs::read_dir(root).map_err(|source| {
        if crate::error::out_of_fds(&source) {
            return Error::too_many_open_files();
        }
        Error::Io {
            path: root.to_path_buf(),
            cause: source,
        }
    })?;
    let mut pids: Vec<Pid> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_is_component_wise() {
        assert!(under(b"/dev/shm/x", b"/dev/shm"));
        assert!(!under(b"/dev/shmx", b"/dev/shm"));
        assert!(under(b"/anything", b"/"));
        assert!(under(b"/run", b"/run"));
    }
}
