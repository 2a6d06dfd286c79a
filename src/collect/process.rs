//! One process: its O(1) files, and its maps or smaps and fds in the same pass when its mount
//! namespace is ours (else in pass 2, once its namespace's mount table is read).

use super::body::{finish, read_maps, MapsSource, PssHint};
use super::context::{ns_inode_at, Context};
use super::measure;
use super::parse::{maps, stat, status};
use super::read::{classify, open_dir, open_sub, ProcDir, Read, Reader};
use crate::error::Error;
use crate::model::{Pid, Process};
use rustix::fd::AsFd;
use rustix::fs::OFlags;
use std::collections::HashMap;
use std::path::Path;

/// The value of a [`Read::Ok`], or returns the other outcome.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Read::Ok(v) => v,
            Read::Vanished => return Read::Vanished,
            Read::Denied => return Read::Denied,
        }
    };
}

/// Per-process data the object builder needs beyond [`Process`].
#[derive(Clone, Debug, Default)]
pub(crate) struct RawProcess {
    pub maps: Vec<maps::MapsEntry>,
    /// Bytes mapped from devices with major 0 that turned out not to be shmem or tmpfs: kept so
    /// unprivileged lower bounds stay below the truth.
    pub other_anon_dev_mapped: u64,
    pub fds: Vec<(i32, Vec<u8>, measure::InodeStat)>,
    pub smaps_by_start: HashMap<u64, (Option<u64>, u64)>,
    /// A live thread to read the process through when its leader has exited.
    pub task: Option<Pid>,
    /// Mappings on a device that may turn out to be another namespace's tmpfs, with their
    /// smaps (PSS, RSS, private): see [`super::body::reclassify`].
    pub unsure_maps: Vec<(maps::MapsEntry, Option<SmapsFigures>)>,
    /// Fds likewise.
    pub unsure_fds: Vec<(i32, Vec<u8>, measure::InodeStat)>,
    /// Its directory, kept open to read its title through ([`super::titles`]).
    pub dir: Option<ProcDir>,
    /// What was read of it with its head.
    pub done: Done,
}

/// What was read of a process with its head, beyond what every scan reads.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Done {
    /// Its memory counters (`status`): a scan without [`super::Options::counters`] takes its
    /// uid and parent from the BPF `task` iterator, and leaves the counters at 0 (read later
    /// where a figure needs them).
    pub counters: bool,
    /// Its title, read while the BPF iterators ran ([`super::titles::read_early`]).
    pub title: bool,
}

/// A mapping's smaps `Pss` (none where only its process's total is known: see
/// `super::body::by_rollup`), `Rss` and private bytes.
pub(crate) type SmapsFigures = (Option<u64>, u64, u64);

/// One process as [`scan`] read it.
pub(crate) struct Scanned {
    pub p: Process,
    /// The live thread it is read through when its leader has exited.
    pub task: Option<Pid>,
    /// What was read of it with its head.
    pub done: Done,
    /// Its maps and fds (as [`finish`] returns them), read in the same pass; `None` when
    /// they wait for pass 2 ([`scan_bodies`]).
    pub body: Option<Read<Option<(RawProcess, bool)>>>,
}

/// A process's O(1) files read, with its directories opened.
struct Head {
    p: Process,
    task: Option<Pid>,
    dir: ProcDir,
    tdir: ProcDir,
    /// Its file mappings on major-0 devices as the BPF `task` iterator listed them.
    vmas: Option<Vec<super::bpf::VmaRecord>>,
    /// How many mappings the iterator's walk visited (0 when it did not walk them).
    mappings: u32,
    /// The access check of its maps, when it was made beside the iteration.
    access: Option<std::io::Result<()>>,
    done: Done,
}

/// What was read of a process through its directory while the BPF iterators ran: `status`
/// (unless the counters are not wanted), and its memory cgroup if wanted.
pub(crate) struct Early {
    status: Option<status::Status>,
    /// Its memory cgroup, when it was read then.
    cgroup: Option<Option<String>>,
    /// Its title, when it was read then (`Some(None)`: it has none).
    pub title: Option<Option<String>>,
    /// The access check of its maps, when it was made then ([`super::body::check_early`]).
    pub access: Option<std::io::Result<()>>,
}

/// A pid, with its directory when it was opened for the BPF iterators (before them, or while
/// they ran: see `super::with_kernel_snapshot`), and what was read through it meanwhile
/// ([`read_early`]).
pub(crate) type Start = (Pid, Option<Opened>, Option<Read<Early>>);

/// A process directory, and `CLOCK_BOOTTIME` (ns) before it was opened: by this scan, or by an
/// earlier one of a process that scans again and again (`super::with_kernel_snapshot`).
pub(crate) type Opened = (ProcDir, u64);

/// `f` of the directory of each process of `starts` whose directory is open and whose early
/// reads went well, in one [`super::deadline::call_each`] batch naming `file`, each result
/// given to `set` with what was read of that process.
pub(crate) fn read_beside<R: Send + 'static>(
    starts: &mut [Start],
    file: &'static str,
    f: impl Fn(&ProcDir) -> R + Send + Sync + 'static,
    set: impl Fn(&mut Early, R),
) {
    let reach: Vec<(Pid, (usize, ProcDir))> = starts
        .iter()
        .enumerate()
        .filter(|(_, (_, _, early))| matches!(early, Some(Read::Ok(_))))
        .filter_map(|(i, (pid, dir, _))| Some((*pid, (i, ProcDir::clone(&dir.as_ref()?.0)))))
        .collect();
    let read = super::deadline::call_each(reach, file, move |(i, dir)| (i, f(&dir)));
    for (i, r) in read.into_iter().flatten() {
        if let (_, _, Some(Read::Ok(early))) = &mut starts[i] {
            set(early, r);
        }
    }
}

/// `status` (with `counters`) and `cgroup` (with `cgroups`) of the process at `dir`.
pub(crate) fn read_early(
    ctx: &Context,
    reader: &mut Reader,
    dir: &ProcDir,
    cgroups: bool,
    counters: bool,
) -> Read<Early> {
    let status = match counters {
        true => Some(tri!(read_status(reader, dir))),
        false => None,
    };
    let cgroup = cgroups.then(|| read_cgroup(ctx, reader, dir));
    Read::Ok(Early {
        status,
        cgroup,
        title: None,
        access: None,
    })
}

/// The memory cgroup of the process at `dir`, from its `cgroup`.
fn read_cgroup(ctx: &Context, reader: &mut Reader, dir: &ProcDir) -> Option<String> {
    let text = reader.read_small_at(dir.as_fd(), "cgroup").ok()?;
    ctx.cgroups.process_cgroup(text)
}

/// The memory cgroup of the process at `dir`, which the BPF `task` iterator saw in the
/// cgroups of kernfs ids `ids`: named once per cgroup and scan, from the `cgroup` of the first
/// of its processes asked about, when the directory that path names still has that id as its
/// inode number (so the name is that cgroup's, not the one a process just moved to). On the
/// 300-worker pool of `bench/ratios.sh`, reading every process's `cgroup` (which formats each
/// hierarchy under `css_set_lock`) was 12% of the CPU of `shmwho procs --json`.
fn cgroup_of(
    ctx: &Context,
    reader: &mut Reader,
    dir: &ProcDir,
    ids: super::bpf::CgroupIds,
) -> Option<String> {
    let id = match ctx.cgroups.memory_version()? {
        crate::model::CgroupVersion::V1 => ids.memory,
        crate::model::CgroupVersion::V2 => ids.v2,
    };
    let Some(id) = id else {
        return read_cgroup(ctx, reader, dir);
    };
    let names = || ctx.cgroup_names.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = names().get(&id) {
        return Some(path.clone());
    }
    let path = read_cgroup(ctx, reader, dir)?;
    let named = ctx
        .cgroups
        .stat_path(&path)
        .and_then(|stat| rustix::fs::stat(stat.parent()?).ok())
        .is_some_and(|st| st.st_ino == id);
    if named {
        names().insert(id, path.clone());
    }
    Some(path)
}

/// Sets the memory counters of `p` from its `status`.
pub(crate) fn set_counters(p: &mut Process, s: &status::Status) {
    p.rss_bytes = s.vm_rss.unwrap_or(0);
    p.rss_anon_bytes = s.rss_anon;
    p.rss_file_bytes = s.rss_file;
    p.rss_shmem_bytes = s.rss_shmem;
    p.swap_bytes = s.vm_swap;
}

/// The `status` of the process at `dir`.
pub(crate) fn read_status(reader: &mut Reader, dir: &ProcDir) -> Read<status::Status> {
    let text = tri!(classify(reader.read_small_at(dir.as_fd(), "status")));
    match status::parse(text) {
        Some(s) => Read::Ok(s),
        None => Read::Vanished,
    }
}

/// Every process of `pids` ([`scan`] of each): their O(1) files, then the maps of those in our
/// own mount namespace in one deadline batch, then their fds.
pub(crate) fn scan_all(
    ctx: &Context,
    reader: &mut Reader,
    pids: Vec<Start>,
    opts: &super::Options,
) -> Vec<Read<Option<Scanned>>> {
    let want_smaps = opts.smaps;
    let mut heads: Vec<Read<Option<Head>>> = pids
        .into_iter()
        .map(|(pid, dir, early)| head(ctx, reader, pid, dir, early, opts))
        .collect();
    // In our own mount namespace: its maps and fds are read in this pass.
    let own = |h: &Head| ctx.mnt_key(h.p.mnt_ns).is_none();
    let items = heads
        .iter_mut()
        .filter_map(|h| match h {
            Read::Ok(Some(h)) if own(h) => Some(h),
            _ => None,
        })
        .map(|h| {
            let hint = PssHint {
                mappings: h.mappings,
                shmem_bytes: h.p.rss_shmem_bytes,
                other_bytes: h.p.rss_anon_bytes.saturating_add(h.p.rss_file_bytes),
            };
            let source = MapsSource {
                dir: ProcDir::clone(&h.tdir),
                listed: h.vmas.take(),
                access: h.access.take(),
                hint: Some(hint).filter(|_| h.done.counters),
            };
            (h.p.pid, source)
        })
        .collect();
    let mut maps = read_maps(ctx, items, want_smaps, opts.pss_totals_only).into_iter();
    heads
        .into_iter()
        .map(|h| {
            let mine = matches!(&h, Read::Ok(Some(h)) if own(h));
            h.map(|h| {
                h.map(|mut h| {
                    let body = mine.then(|| {
                        let m = maps.next().expect("one read per own process");
                        let (dir, tdir, done) = (&h.dir, &h.tdir, h.done);
                        finish(ctx, &mut h.p, dir, tdir, h.task, want_smaps, done, m)
                    });
                    Scanned {
                        p: h.p,
                        task: h.task,
                        done: h.done,
                        body,
                    }
                })
            })
        })
        .collect()
}

/// `stat`, `status`, namespaces, cgroup: what every view needs, O(1) per process. When the
/// process is in our own mount namespace (whose mount table is known from the start),
/// [`scan_all`] reads its maps and fds through the same opened directory in the same pass.
/// Reads through one opened directory all come from one process even if its pid is reused
/// meanwhile, so this needs no second read of `stat` (pass 2 does). With the fds read
/// relative to their directory and the deadline batch, `shmwho --json` on the 300-worker pool
/// of `bench/ratios.sh` went from 34.2 to 26.7 syscalls per process (`strace -c -f`).
///
/// With `opened`, its directory opened for the BPF iterators (and when), what they saw of it
/// replaces `stat` and the namespace links where that is surely the process the directory
/// reaches ([`super::bpf::KernelSnapshot::task`]), and `early`
/// is what was read through it while they ran. Without [`super::Options::counters`], their
/// uid and parent replace `status` too.
fn head(
    ctx: &Context,
    reader: &mut Reader,
    pid: Pid,
    opened: Option<Opened>,
    early: Option<Read<Early>>,
    opts: &super::Options,
) -> Read<Option<Head>> {
    let cgroups = opts.cgroups;
    let known = match (&opened, &ctx.kernel) {
        (Some((_, at)), Some(k)) => k.task(pid, *at),
        _ => None,
    };
    let dir = match opened {
        Some((dir, _)) => dir,
        None => tri!(classify(open_dir(&ctx.pid_path(pid, "")))),
    };
    let ids = known.as_ref().map(|t| (t.stat.ppid, t.uid));
    let cgroup_ids = known.as_ref().map(|t| t.cgroup_ids);
    let counted = known.as_ref().and_then(|t| t.counters);
    let mappings = known.as_ref().map_or(0, |t| t.mappings);
    let (stat, namespaces, vmas) = match known {
        Some(t) => (t.stat, Some((t.ipc_ns, t.mnt_ns)), t.vmas),
        None => {
            let text = tri!(classify(reader.read_small_at(dir.as_fd(), "stat")));
            let Some(stat) = stat::parse(text) else {
                return Read::Vanished;
            };
            (stat, None, None)
        }
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
    let tdir = tri!(task_dir(&dir, task));
    // A zombie leader's namespaces are its live thread's, read through `tdir`.
    let (ipc_ns, mnt_ns) = match namespaces.filter(|_| task.is_none()) {
        Some(ns) => ns,
        None => (
            ns_inode_at(tdir.as_fd(), "ns/ipc"),
            ns_inode_at(tdir.as_fd(), "ns/mnt"),
        ),
    };
    // Read early through the leader's directory, unless the leader is a zombie.
    let (status, cgroup, title, access) = match early.filter(|_| task.is_none()) {
        Some(e) => {
            let e = tri!(e);
            (e.status, e.cgroup, e.title, e.access)
        }
        None => {
            let counters = opts.counters;
            let e = tri!(read_early(ctx, reader, &tdir, cgroups, counters));
            (e.status, e.cgroup, None, None)
        }
    };
    // Not read early where the iterator gives the cgroups' ids.
    let cgroup = match (cgroup, cgroup_ids.filter(|_| task.is_none())) {
        (Some(c), _) => c,
        (None, Some(ids)) if cgroups => cgroup_of(ctx, reader, &tdir, ids),
        (None, _) if cgroups => read_cgroup(ctx, reader, &tdir),
        (None, _) => None,
    };
    // The uid and parent come from the iterator, if it saw the leader, and so do the counters
    // where it summed them (`status` is read where they are wanted and it did not).
    let ids = ids.filter(|_| task.is_none());
    let counted = counted.filter(|_| task.is_none());
    let status = match (status, ids, counted) {
        (Some(s), _, _) => s,
        (None, Some((ppid, uid)), Some(c)) => c.status(ppid, uid),
        (None, Some((ppid, uid)), None) if !opts.counters => status::Status {
            name: String::new(),
            ppid,
            uid,
            ..status::Status::default()
        },
        (None, _, _) => tri!(read_status(reader, &tdir)),
    };
    let counters = opts.counters || ids.is_none() || counted.is_some();
    let done = Done {
        counters,
        title: title.is_some(),
    };
    let mut p = Process {
        pid,
        ppid: status.ppid,
        comm: stat.comm,
        // Read under the deadline, beside the iteration or last: see `super::titles`.
        title: title.flatten(),
        uid: status.uid,
        user: String::new(),
        start_ticks: stat.start_ticks,
        ipc_ns,
        mnt_ns,
        smaps: None,
        // One small file: the memory cgroup, for `procs --by cgroup` and the exporter.
        cgroup,
        ..Process::default()
    };
    set_counters(&mut p, &status);
    // A zombie leader's mappings are its live thread's: read through `tdir`.
    let vmas = vmas.filter(|_| task.is_none());
    Read::Ok(Some(Head {
        p,
        task,
        dir,
        tdir,
        vmas,
        mappings,
        access,
        done,
    }))
}

/// The directory of live thread `task` of the process at `dir`, or `dir` itself.
fn task_dir(dir: &ProcDir, task: Option<Pid>) -> Read<ProcDir> {
    match task {
        None => Read::Ok(ProcDir::clone(dir)),
        Some(tid) => classify(
            open_sub(
                dir.as_fd(),
                &format!("task/{tid}"),
                OFlags::PATH | OFlags::DIRECTORY,
            )
            .map(ProcDir::new),
        ),
    }
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

/// Pass 2 for processes whose heads [`scan_all`] read alone: maps (or smaps) and fds as
/// [`finish`] reads them, then `stat` again, since the pid may have been reused meanwhile.
#[allow(clippy::type_complexity)]
pub(crate) fn scan_bodies(
    ctx: &Context,
    reader: &mut Reader,
    heads: Vec<(Process, Option<Pid>, Done)>,
    want_smaps: bool,
) -> Vec<Read<Option<(Process, RawProcess, bool)>>> {
    let dirs: Vec<Read<(ProcDir, ProcDir)>> = heads
        .iter()
        .map(|(p, task, _)| {
            let dir = tri!(classify(open_dir(&ctx.pid_path(p.pid, ""))));
            let tdir = tri!(task_dir(&dir, *task));
            Read::Ok((dir, tdir))
        })
        .collect();
    let items = heads
        .iter()
        .zip(&dirs)
        .filter_map(|((p, _, _), d)| match d {
            Read::Ok((_, tdir)) => Some((p.pid, MapsSource::dir(ProcDir::clone(tdir)))),
            _ => None,
        })
        .collect();
    let mut maps = read_maps(ctx, items, want_smaps, false).into_iter();
    heads
        .into_iter()
        .zip(dirs)
        .map(|((mut p, task, done), d)| {
            let (dir, tdir) = tri!(d);
            let m = maps.next().expect("one read per opened process");
            let body = finish(ctx, &mut p, &dir, &tdir, task, want_smaps, done, m);
            let Some((raw, denied)) = tri!(body) else {
                return Read::Ok(None);
            };
            // The pid may have been reused since pass 1 read `stat` (tests/churn.rs makes it
            // happen): the maps and fds just read would then be another process's. A process
            // is its pid and start time.
            match reader.read_small_at(dir.as_fd(), "stat") {
                Ok(t) if stat::parse(t).is_some_and(|s| s.start_ticks == p.start_ticks) => {}
                _ => return Read::Vanished,
            }
            Read::Ok(Some((p, raw, denied)))
        })
        .collect()
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
