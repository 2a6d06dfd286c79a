//! Reads `/proc` and `/sys` into a [`Snapshot`]. No printing, no policy.
//!
//! The default scan reads, per process, `stat`, `status`, `maps` and the fd links, and `stat`s one
//! handle per object: no page-table walk. `smaps` is read only with [`Options::smaps`].

pub mod cgroup;
pub mod measure;
pub mod objects;
pub mod pagemap;
pub mod parse;
pub mod paths;
pub mod residency;
pub mod users;

pub use parse::system_stat::parse_btime;
pub use parse::{maps, meminfo, mountinfo, smaps, stat, status, sysv};
pub use paths::HostPaths;

use crate::error::Error;
use crate::model::{self, Pid, Process, ScanNotes, SmapsTotals, Snapshot};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// What to collect.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where procfs, `/dev/shm`, passwd and the mounts are; tests point them elsewhere.
    pub paths: HostPaths,
    /// Read smaps for PSS and per-mapping presence (a page-table walk).
    pub smaps: bool,
    /// Read each process's memory cgroup and each cgroup's memory.stat (procs, export,
    /// record); the objects view, show and top do without.
    pub cgroups: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            paths: HostPaths::default(),
            smaps: false,
            cgroups: true,
        }
    }
}

/// Reads procfs files into one reused buffer, without the `statx` `std::fs::read` spends on a
/// size hint procfs does not give.
///
/// Chunk size matters for smaps: a seq_file read that asks for more than the records already
/// formatted makes the kernel format (and page-walk) the next mapping, and throws that work
/// away when it overflows its 4 KiB buffer, to redo it on the next read. Reads no larger than
/// [`SMAPS_CHUNK`] stop before that happens. On 300 workers x 64 MiB, `procs --pss` (one thread) took
/// 0.48 s with 256 KiB reads, 0.30 s with std's growing reads and 0.26 s with 2 KiB reads and no maps read
/// (`cat smaps_rollup` of all: 0.23 s).
pub(crate) const SMAPS_CHUNK: usize = 2048;

pub(crate) struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            buf: vec![0; 256 * 1024],
        }
    }

    pub fn read(&mut self, path: &Path) -> io::Result<&[u8]> {
        self.read_chunked(path, usize::MAX)
    }

    pub fn read_chunked(&mut self, path: &Path, chunk: usize) -> io::Result<&[u8]> {
        use std::io::Read as _;
        let mut f = std::fs::File::open(path)?;
        let mut filled = 0;
        loop {
            if filled == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let end = self.buf.len().min(filled.saturating_add(chunk));
            match f.read(&mut self.buf[filled..end]) {
                Ok(0) => return Ok(&self.buf[..filled]),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// How reading a per-process file went.
pub(crate) enum Read<T> {
    Ok(T),
    /// The process exited (or its pid was reused) during the scan.
    Vanished,
    /// Permission denied (another user's process, hidepid).
    Denied,
}

pub(crate) fn classify<T>(r: io::Result<T>) -> Read<T> {
    match r {
        Ok(v) => Read::Ok(v),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Read::Denied,
        // ENOENT and ESRCH both mean the process went away; anything else on a per-process
        // file (EIO on a zombie's maps, say) is treated the same: skip it.
        Err(_) => Read::Vanished,
    }
}

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

/// Collects a snapshot of the whole host.
pub fn collect(opts: &Options) -> Result<Snapshot, Error> {
    let root = &opts.paths.proc_root;
    let meminfo_text = read_required(&root.join("meminfo"))?;
    let meminfo = meminfo::parse(&meminfo_text).ok_or_else(|| Error::Parse {
        path: root.join("meminfo"),
        what: "no MemTotal, or a malformed MemTotal/Shmem/SwapTotal/SwapFree/Hugepagesize".into(),
    })?;
    let page_size = rustix::param::page_size() as u64;
    let boot_time = std::fs::read(root.join("stat"))
        .ok()
        .and_then(|t| parse_btime(&t))
        .unwrap_or(0);

    let own_mountinfo = read_required(&root.join("self/mountinfo"))?;
    let mut ctx = Context {
        paths: opts.paths.clone(),
        page_size,
        shmem_dev: shmem_device()?,
        own_ipc_ns: ns_inode(&root.join("self/ns/ipc")),
        own_mnt_ns: ns_inode(&root.join("self/ns/mnt")),
        tmpfs: HashMap::new(),
        mount_points: HashMap::new(),
        cgroups: cgroup::parse_mounts(&own_mountinfo),
    };
    ctx.add_mounts(None, &own_mountinfo);
    let mut notes = ScanNotes {
        hidepid: mountinfo::proc_hidepid(&own_mountinfo),
        ..ScanNotes::default()
    };
    let segments = std::fs::read(opts.paths.sysvipc_shm())
        .map(|t| sysv::parse(&t))
        .unwrap_or_default();

    let pids = list_pids(root)?;
    let mut users = users::Users::load(&opts.paths.passwd);
    let mut reader = Reader::new();
    // Pass 1, in parallel: the O(1) files. Then, in order, user names and the mount table of
    // each mount namespace not seen yet (pass 2 needs it to tell tmpfs files).
    let ctx_ref = &ctx;
    let firsts = parallel_map(pids, 64, |reader, pid| {
        scan_head(ctx_ref, reader, pid, opts.cgroups)
    });
    let mut heads = Vec::with_capacity(firsts.len());
    for first in firsts {
        match first {
            Read::Ok(Some((mut p, task))) => {
                p.user = users.name(p.uid);
                let mnt_key = ctx.mnt_key(p.mnt_ns);
                if !ctx.mount_points.contains_key(&mnt_key) {
                    if let Ok(text) = reader.read(&ctx.task_path(p.pid, task, "mountinfo")) {
                        ctx.add_mounts(p.mnt_ns, text);
                    }
                }
                heads.push((p, task));
            }
            Read::Ok(None) => {} // kernel thread
            Read::Vanished => notes.vanished += 1,
            Read::Denied => notes.unreadable += 1,
        }
    }
    // Pass 2, in parallel: maps (or smaps) and fds. The kernel formats these (and walks page
    // tables for smaps) in the reading thread, so threads divide the wall time.
    let ctx_ref = &ctx;
    let bodies = parallel_map(heads, 64, |reader, (p, task)| {
        scan_body(ctx_ref, reader, p, task, opts.smaps)
    });
    let mut processes = Vec::with_capacity(bodies.len());
    let mut raws = Vec::with_capacity(bodies.len());
    for body in bodies {
        match body {
            Read::Ok((p, raw, denied)) => {
                if denied {
                    notes.unreadable += 1;
                }
                processes.push(p);
                raws.push(raw);
            }
            Read::Vanished => notes.vanished += 1,
            Read::Denied => notes.unreadable += 1,
        }
    }
    let own_ipc = ctx.own_ipc_ns.unwrap_or(0);
    let mut segments: Vec<(u64, model::SysvSegment)> =
        segments.into_iter().map(|s| (own_ipc, s)).collect();
    // SysV segments of other IPC namespaces (containers): read their table from inside the
    // namespace, in a thread of our own so the rest of the scan stays in ours.
    let mut foreign: Vec<(u64, Pid)> = processes
        .iter()
        .filter_map(|p| {
            p.ipc_ns
                .filter(|&ns| Some(ns) != ctx.own_ipc_ns)
                .map(|ns| (ns, p.pid))
        })
        .collect();
    foreign.sort_unstable();
    foreign.dedup_by_key(|f| f.0);
    for (ns, pid) in foreign {
        match sysv_in_namespace(&ctx.pid_path(pid, "ns/ipc"), &ctx.paths.sysvipc_shm()) {
            Some(segs) => segments.extend(segs.into_iter().map(|s| (ns, s))),
            None => notes.foreign_ipc_ns += 1,
        }
    }

    let built = objects::build(&ctx, &meminfo, &processes, &raws, segments, &mut notes);
    let cgroups = ctx
        .cgroups
        .read_shmem(processes.iter().filter_map(|p| p.cgroup.as_deref()));
    Ok(Snapshot {
        page_size,
        clock_ticks: rustix::param::clock_ticks_per_second(),
        boot_time,
        meminfo,
        processes,
        objects: built.objects,
        mounts: built.mounts,
        notes,
        with_smaps: opts.smaps,
        cgroups,
    })
}

impl Context {
    fn add_mounts(&mut self, ns: Option<u64>, text: &[u8]) {
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

    pub(crate) fn is_shmem_dev(&self, dev: u64) -> bool {
        dev == self.shmem_dev || self.tmpfs.contains_key(&dev)
    }

    fn pid_path(&self, pid: Pid, rest: &str) -> PathBuf {
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

/// `stat`, `status`, namespaces, cgroup: what every view needs, O(1) per process. With the
/// process, the live thread to read it through when its leader has exited.
fn scan_head(
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

/// Maps (or smaps) and fds. Returns whether they were unreadable (permissions), in which case
/// the process is still listed with its status counters.
fn scan_body(
    ctx: &Context,
    reader: &mut Reader,
    mut p: Process,
    task: Option<Pid>,
    want_smaps: bool,
) -> Read<(Process, RawProcess, bool)> {
    let pid = p.pid;
    let mnt_key = ctx.mnt_key(p.mnt_ns);
    let mut raw = RawProcess {
        task,
        ..RawProcess::default()
    };
    let mut denied = false;
    // smaps repeats every maps line, so with smaps wanted, maps is not read at all.
    let text = if want_smaps {
        reader.read_chunked(&ctx.task_path(pid, task, "smaps"), SMAPS_CHUNK)
    } else {
        reader.read(&ctx.task_path(pid, task, "maps"))
    };
    match classify(text) {
        Read::Ok(text) => {
            let mut keep = |e: maps::MapsEntry, smaps: Option<(u64, u64)>| {
                if e.inode == 0 {
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
                    raw.other_anon_dev_mapped += e.end - e.start;
                }
                false
            };
            if want_smaps {
                let mut totals = SmapsTotals::default();
                for vma in smaps::parse(text) {
                    totals.pss_bytes += vma.pss;
                    if !keep(vma.entry, Some((vma.pss, vma.rss))) {
                        totals.uss_bytes += vma.private;
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
    Read::Ok((p, raw, denied))
}

/// Applies `f` to every item on up to 4 threads (one per CPU), keeping the order. Each thread
/// has its own [`Reader`]. Fewer than `min_items` items stay on the calling thread.
pub(crate) fn parallel_map<T: Send, R: Send>(
    items: Vec<T>,
    min_items: usize,
    f: impl Fn(&mut Reader, T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(items.len());
    if threads <= 1 || items.len() < min_items {
        let mut reader = Reader::new();
        return items.into_iter().map(|t| f(&mut reader, t)).collect();
    }
    // Interleaved chunks: neighbouring pids (a pool's workers) are spread over all threads.
    let mut chunks: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, t) in items.into_iter().enumerate() {
        chunks[i % threads].push((i, t));
    }
    let f = &f;
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut reader = Reader::new();
                    chunk
                        .into_iter()
                        .map(|(i, t)| (i, f(&mut reader, t)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("scan thread panicked"))
            .collect()
    });
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
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
        // An fd opened on `/proc/PID/map_files/RANGE` of an anonymous shared mapping or a SysV
        // attachment (checkpoint/restore tools do this) names the shmem inode as maps does.
        let candidate = target.starts_with(b"/memfd:")
            || target == b"/dev/zero (deleted)"
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

fn list_pids(root: &Path) -> Result<Vec<Pid>, Error> {
    let dir = std::fs::read_dir(root).map_err(|source| Error::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut pids: Vec<Pid> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

fn read_required(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `ipc:[4026531839]` → 4026531839.
fn ns_inode(link: &Path) -> Option<u64> {
    let t = std::fs::read_link(link).ok()?;
    let t = t.to_str()?;
    t.split_once('[')?.1.strip_suffix(']')?.parse().ok()
}

/// `/proc/sysvipc/shm` (at `table`) as seen from the IPC namespace behind `ns_link`; None
/// without CAP_SYS_ADMIN or when the namespace is gone.
fn sysv_in_namespace(ns_link: &Path, table: &Path) -> Option<Vec<model::SysvSegment>> {
    let ns = std::fs::File::open(ns_link).ok()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::InterProcessCommunication),
            )
            .ok()?;
            // procfs resolves the namespace when the file is opened, by the opening thread.
            std::fs::read(table).ok().map(|t| sysv::parse(&t))
        })
        .join()
        .ok()
        .flatten()
    })
}

/// The internal shmem mount's device, learnt without privileges from a memfd of our own
/// (FACTS #1).
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
