//! Reads `/proc` and `/sys` into a [`Snapshot`]. No printing, no policy.
//!
//! The default scan reads, per process, `stat`, `status`, `maps` and the fd links, and `stat`s one
//! handle per object: no page-table walk. `smaps` is read only with [`Options::smaps`].

mod body;
pub mod bounds;
pub mod bpf;
pub mod cgroup;
pub mod container;
mod context;
pub mod deadline;
pub mod drill;
#[cfg(test)]
mod guards;
mod hugetlb;
pub mod measure;
mod namespaces;
pub mod objects;
pub mod pagemap;
mod parallel;
pub mod parse;
pub mod paths;
mod process;
mod procmap;
mod pss;
mod read;
pub mod residency;
mod sysv_ns;
mod titles;
pub mod users;

pub use parse::system_stat::parse_btime;
pub use parse::{maps, meminfo, mountinfo, smaps, stat, status, sysv};
pub use paths::HostPaths;

pub(crate) use context::Context;
pub(crate) use parallel::parallel_map;
pub use process::under;
pub(crate) use process::RawProcess;
pub(crate) use read::{classify, note_errno, Read, Reader};

use crate::error::Error;
use crate::model::{self, Pid, Process, ScanNotes, Snapshot};
use std::collections::HashMap;

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
    /// May read through the BPF iterators where the host allows it ([`bpf::eligible`]). A run
    /// that gained privileges at exec must not: its capabilities are the installer's, not the
    /// caller's (the privilege module's `scan` clears it then).
    pub bpf: bool,
    /// This process scans again and again (the exporter, `top`): the BPF `task` iterator then
    /// walks only the mappings of processes whose mappings changed since the last scan.
    pub repeated: bool,
    /// Read each process's memory counters (`status`: RSS, anon, file, shmem, swap). The
    /// views that show none (objects, the exporter) skip them where the BPF iterator gives the
    /// uid and parent `status` would (the counters stay 0 then: see `process::Done`).
    pub counters: bool,
    /// Read each process's title (`cmdline`). The exporter renders none: skipping them saves
    /// it a read of every process's memory per scrape.
    pub titles: bool,
    /// With `smaps`: only each process's PSS and USS are wanted, no mapping's own PSS (which
    /// the `touched` policy and the objects' holders need), so a process may be read through
    /// smaps_rollup and pagemap where that costs less than smaps' text (`body::by_rollup`).
    pub pss_totals_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            paths: HostPaths::default(),
            smaps: false,
            cgroups: true,
            bpf: true,
            repeated: false,
            counters: true,
            titles: true,
            pss_totals_only: false,
        }
    }
}

/// Collects a snapshot of the whole host.
pub fn collect(opts: &Options) -> Result<Snapshot, Error> {
    let fd_errors = read::fd_errors();
    let snap = collect_inner(opts)?;
    if read::fd_errors() != fd_errors {
        return Err(Error::too_many_open_files());
    }
    Ok(snap)
}

fn collect_inner(opts: &Options) -> Result<Snapshot, Error> {
    // Half the descriptors we may open keep process directories open for `titles`.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    body::DIRS_LEFT.store(
        isize::try_from(nofile / 2).unwrap_or(isize::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    // The directories kept open, and the reads beside them.
    let threads = threads(&opts.paths.proc_root);
    read::reserve_fds(threads.min(usize::try_from(nofile / 2).unwrap_or(usize::MAX)) + 256);
    let root = &opts.paths.proc_root;
    let meminfo_text = read::read_required(&root.join("meminfo"))?;
    let meminfo = meminfo::parse(&meminfo_text).ok_or_else(|| Error::Parse {
        path: root.join("meminfo"),
        what: "no MemTotal, or a malformed MemTotal/Shmem/SwapTotal/SwapFree/Hugepagesize".into(),
    })?;
    let page_size = rustix::param::page_size() as u64;
    let boot_time = std::fs::read(root.join("stat"))
        .ok()
        .and_then(|t| parse_btime(&t))
        .unwrap_or(0);

    // With the host's / elsewhere, the host's mount table is its init's, reached under it.
    let own_mountinfo =
        read::read_required(&root.join(own_mnt_proc(&opts.paths)).join("mountinfo"))?;
    let huge_pools = hugetlb::read_pools(&opts.paths);
    let mut ctx = Context::new(
        &opts.paths,
        page_size,
        &own_mountinfo,
        &huge_pools,
        meminfo.hugepage_bytes,
    )?;
    let mut notes = ScanNotes {
        hidepid: mountinfo::proc_hidepid(&own_mountinfo),
        shmem_drift_bytes: std::fs::read(root.join("zoneinfo"))
            .map(|t| parse::zoneinfo::shmem_drift_pages(&t).saturating_mul(page_size))
            .unwrap_or(0),
        ..ScanNotes::default()
    };
    let own_segments = std::fs::read(opts.paths.sysvipc_shm())
        .map(|t| sysv::parse(&t))
        .unwrap_or_default();

    let (mut processes, mut raws, comms) = scan_processes(&mut ctx, opts, &meminfo, &mut notes)?;
    let segments = sysv_ns::segments(&ctx, own_segments, &processes, &mut notes);
    let built = objects::build(&ctx, &meminfo, &processes, &raws, segments, &mut notes);
    if opts.titles {
        titles::read_titles(&ctx, &mut processes, &mut raws);
    }
    drop(raws);
    // Known stuck now, from this scan or, in a long-running exporter, an earlier one.
    notes.stuck = deadline::stuck_now()
        .into_iter()
        .filter_map(|(pid, file)| {
            Some(model::StuckProcess {
                pid,
                comm: comms.get(&pid)?.clone(),
                file: file.to_string(),
            })
        })
        .collect();
    notes.stuck_timeout = deadline::timeout();
    notes.mappings_reused = ctx.kernel.as_ref().map_or(0, |k| k.reused) as u32;
    let cgroups = ctx
        .cgroups
        .read_shmem(processes.iter().filter_map(|p| p.cgroup.as_deref()));
    let pod_cgroups = ctx.cgroups.read_subtree_shmem(
        processes
            .iter()
            .filter_map(|p| container::pod_cgroup(p.cgroup.as_deref()?)),
    );
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
        huge_pools,
        pod_cgroups,
        ns_tmpfs: namespaces::ns_tmpfs(&ctx),
    })
}

/// The `/proc` entry whose mount namespace counts as ours: `self`, or the host's init with
/// `--host-root`, when that procfs has a pid 1 to read (a fake /proc in tests may not).
pub(crate) fn own_mnt_proc(paths: &HostPaths) -> &'static str {
    if paths.host_root_moved() && paths.proc_root.join("1/mountinfo").exists() {
        "1"
    } else {
        "self"
    }
}

/// Every process: in parallel, its O(1) files, and its maps and fds too when its mount
/// namespace is ours ([`process::scan`]). Then, in order, user names and the mount table of
/// each mount namespace not seen yet, and, in parallel again, the maps and fds of the
/// processes of those namespaces (which need their mount tables to tell tmpfs files). With
/// the processes, their raw maps and fds, and every process's command by pid.
#[allow(clippy::type_complexity)]
fn scan_processes(
    ctx: &mut Context,
    opts: &Options,
    meminfo: &model::Meminfo,
    notes: &mut ScanNotes,
) -> Result<(Vec<Process>, Vec<RawProcess>, HashMap<Pid, String>), Error> {
    let pids = with_kernel_snapshot(ctx, opts)?;
    let mut users = users::Users::load(&opts.paths.passwd);
    let mut reader = Reader::new();
    let ctx_ref = &*ctx;
    let firsts = parallel::parallel_chunks(pids, 64, |reader, pids| {
        process::scan_all(ctx_ref, reader, pids, opts)
    });
    let mounts_known = ctx.mount_points.len();
    let mut comms = HashMap::new();
    // In pid order: a body read, or the index of the head waiting for pass 2.
    let mut slots = Vec::with_capacity(firsts.len());
    let mut waiting = Vec::new();
    for first in firsts {
        match first {
            Read::Ok(Some(process::Scanned {
                mut p,
                task,
                done,
                body,
            })) => {
                p.user = users.name(p.uid);
                comms.insert(p.pid, p.comm.clone());
                let mnt_key = ctx.mnt_key(p.mnt_ns);
                // One process per mount namespace: its mountinfo names the namespace's
                // mounts, and its root reaches them.
                if !ctx.mount_points.contains_key(&mnt_key) {
                    if let Ok(text) = reader.read(&ctx.task_path(p.pid, task, "mountinfo")) {
                        ctx.add_mounts(p.mnt_ns, Some(p.pid), text);
                    }
                }
                match body {
                    Some(body) => slots.push(Some(body.map(|b| b.map(|(raw, d)| (p, raw, d))))),
                    None => {
                        waiting.push((slots.len(), (p, task, done)));
                        slots.push(None);
                    }
                }
            }
            Read::Ok(None) => {} // kernel thread
            Read::Vanished => notes.vanished += 1,
            Read::Denied => notes.unreadable += 1,
        }
    }
    let ctx = &*ctx;
    let (at, heads): (Vec<usize>, Vec<_>) = waiting.into_iter().unzip();
    let bodies = parallel::parallel_chunks(heads, 64, |reader, heads| {
        process::scan_bodies(ctx, reader, heads, opts.smaps)
    });
    for (i, body) in at.into_iter().zip(bodies) {
        slots[i] = Some(body);
    }
    // Another namespace's tmpfs can only be told after its table was read.
    let more_mounts = ctx.mount_points.len() != mounts_known;
    let euid = rustix::process::geteuid().as_raw();
    let mut processes = Vec::with_capacity(slots.len());
    let mut raws = Vec::with_capacity(slots.len());
    for body in slots.into_iter().flatten() {
        match body {
            Read::Ok(None) => {} // stuck: named from `deadline::stuck_now` at the end
            Read::Ok(Some((mut p, mut raw, denied))) => {
                if more_mounts {
                    body::reclassify(ctx, &mut p, &mut raw);
                }
                raw.unsure_maps = Vec::new();
                raw.unsure_fds = Vec::new();
                if denied {
                    notes.unreadable += 1;
                    notes.unreadable_processes.push(unreadable(&p, euid));
                }
                if bounds::process(&mut p, bounds::ceiling(meminfo)) {
                    notes.absurd_processes += 1;
                }
                processes.push(p);
                raws.push(raw);
            }
            Read::Vanished => notes.vanished += 1,
            Read::Denied => notes.unreadable += 1,
        }
    }
    notes.unreadable_processes.sort_by(|a, b| {
        b.rss_shmem_bytes
            .cmp(&a.rss_shmem_bytes)
            .then(a.pid.cmp(&b.pid))
    });
    Ok((processes, raws, comms))
}

/// Each pid of `/proc`, with its directory opened when the BPF iterators may be used
/// ([`bpf::eligible`]). The iterators run (into `ctx.kernel`) while `/proc` is listed and the
/// directories opened, in pid order, as the iteration walks the processes: a process it
/// found after its directory was opened ([`bpf::Placed`]) and that had started before the
/// directories were opened is surely the one its directory reaches
/// ([`bpf::KernelSnapshot::task`]); the others are read from `/proc`. Listing and opening
/// 10,000 took 40-60 ms before the iteration could start, when the rule was that all were
/// opened first. As they open, the other CPUs read through the opened directories what the
/// view wants and the iterators do not give: `status` (with `Options::counters`), `cgroup`
/// (when the iterator gives no cgroup ids), or else the titles, and the access checks of the
/// maps walks. At 10,000 processes the iteration alone takes ~115 ms here.
fn with_kernel_snapshot(ctx: &mut Context, opts: &Options) -> Result<Vec<process::Start>, Error> {
    if !bpf::eligible(opts) {
        let pids = process::list_pids(&opts.paths.proc_root)?;
        return Ok(pids.into_iter().map(|pid| (pid, None, None)).collect());
    }
    // As many as `titles` may keep open; the rest open their own directory and read `stat`.
    let budget =
        usize::try_from(body::DIRS_LEFT.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(0);
    let ctx_ref = &*ctx;
    let plan = bpf::Plan {
        repeated: opts.repeated,
        counters: opts.counters,
    };
    let placed = bpf::Placed::none();
    // What the views read beside the iteration depends on what the programs give: asked by
    // the first chunk read (the programs load meanwhile, on the iteration's thread).
    let wants = std::sync::OnceLock::new();
    // One CPU is the iteration's; the others read through the opened directories what the
    // view wants and the iterators do not give, and so does the iteration's thread once it is
    // done: at 10,000 processes reading `status` took longer than the iteration, and
    // `procs --json` took 477 ms of wall time with that help against 529 without (medians of
    // 40 runs, ABBA order). The views that read no counters (`Options::counters`: the objects
    // view, the exporter) read the titles here instead, when they want them
    // ([`titles::read_early`]). Every view makes the access checks of the maps walks here
    // ([`body::check_early`]): the objects view's reads ended before the iteration, and with
    // the checks in that time it took 360 ms of wall time against 395 (30 runs, ABBA order).
    // `status` is not read where the iteration sums the counters (`process::head`). The views
    // that show the counters read titles last all the same: a process found stuck in `cmdline`
    // beside the iteration is left out of the view (`titles::read_early`), where `procs` and
    // `show` list a stuck process with its counters.
    let early = |reader: &mut Reader, items: Vec<(Pid, Option<process::Opened>, bool)>| {
        let &(early_status, early_titles, early_cgroups) = wants.get_or_init(|| {
            (
                opts.counters && !bpf::gives_counters(plan),
                opts.titles && !opts.counters,
                // Cgroups are named after the iteration where it gives their ids
                // (`process::head`).
                opts.cgroups && !bpf::gives_cgroup_ids(plan),
            )
        });
        let (mut starts, kept): (Vec<process::Start>, Vec<bool>) = items
            .into_iter()
            .map(|(pid, dir, kept)| {
                let early = dir.as_ref().map(|(d, _)| {
                    process::read_early(ctx_ref, reader, d, early_cgroups, early_status)
                });
                ((pid, dir, early), kept)
            })
            .unzip();
        if early_titles {
            titles::read_early(&mut starts);
        }
        body::check_early(&mut starts);
        starts.into_iter().zip(kept).collect::<Vec<_>>()
    };
    let queue = parallel::Queue::new(64);
    let (listed, kernel) = std::thread::scope(|s| {
        // The programs load (BTF, verifier) and `task_file` runs while `/proc` is listed;
        // `task` starts once the first directories are open (`START_AFTER`).
        let snapshot = s.spawn(|| {
            let k = bpf::snapshot(plan, &placed);
            queue.help(&early);
            k
        });
        // Up to 4 reading threads, this one included once the directories are open, on the
        // CPUs the iteration leaves.
        let readers = parallel::cpus().saturating_sub(1).clamp(1, 4);
        let helpers: Vec<_> = (1..readers)
            .map(|_| s.spawn(|| queue.help(&early)))
            .collect();
        let listed = open_dirs(ctx_ref, opts, budget, &queue, &placed);
        queue.help(&early);
        for h in helpers {
            h.join().expect("scan thread panicked");
        }
        (listed, snapshot.join().ok().flatten())
    });
    listed?;
    let starts = queue.results();
    let starts = keep_dirs(ctx_ref, opts, starts, kernel.as_ref());
    ctx.kernel = kernel;
    Ok(starts)
}

/// Lists `/proc` and feeds `queue` each pid, in order, with its directory: kept from an
/// earlier scan, or opened now (within `budget` directories), saying to `placed` as each is
/// in place. (Opening them on two threads was slower: at 10,000 processes, 476 ms of wall
/// time per scan against 417.)
fn open_dirs(
    ctx: &Context,
    opts: &Options,
    budget: usize,
    queue: &parallel::Queue<(Pid, Option<process::Opened>, bool), (process::Start, bool)>,
    placed: &bpf::Placed,
) -> Result<(), Error> {
    let _closing = queue.closing();
    let _placed = Finally(|| {
        placed.up_to(i32::MAX);
        placed.start();
    });
    let pids = process::list_pids(&opts.paths.proc_root)?;
    // Taken: another scan at once (tests) opens its own.
    let mut kept = match opts.repeated {
        true => kept_dirs().take().unwrap_or_default(),
        false => HashMap::new(),
    };
    // The directories of processes gone are closed before any is opened: kept and new ones
    // together stay within the budget. (`pids` is sorted.)
    kept.retain(|pid, _| pids.binary_search(pid).is_ok());
    let opened_ns = bpf::boottime_ns();
    for (i, pid) in pids.into_iter().enumerate() {
        queue.feed(match kept.remove(&pid) {
            _ if i >= budget => (pid, None, false),
            Some(dir) => (pid, Some(dir), true),
            None => {
                let dir = read::open_dir(&ctx.pid_path(pid, "")).ok();
                (pid, dir.map(|d| (d, opened_ns)), false)
            }
        });
        placed.up_to(pid);
        if i + 1 == START_AFTER {
            placed.start();
        }
    }
    Ok(())
}

/// Directories opened before the `task` iteration starts ([`bpf::Placed::start`]), so that it
/// trails their opening: two `read`s of it (256 records of 128 bytes each) at least.
const START_AFTER: usize = 512;

/// Runs a closure when dropped, even by a panic.
struct Finally<F: FnMut()>(F);

impl<F: FnMut()> Drop for Finally<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Threads on the host (`/proc/loadavg`), known before `/proc` is listed; 0 if unreadable.
fn threads(proc_root: &std::path::Path) -> usize {
    std::fs::read_to_string(proc_root.join("loadavg"))
        .ok()
        .and_then(|t| parse::loadavg::tasks(&t))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// Process directories that a process that scans again and again (`Options::repeated`) keeps
/// from one scan to the next, by pid, with when each was opened: a scan opens only the
/// directories of processes new to it. At 10,000 processes, opening them took 40-60 ms of
/// each scan.
static KEPT: std::sync::Mutex<Option<HashMap<Pid, process::Opened>>> = std::sync::Mutex::new(None);

fn kept_dirs() -> std::sync::MutexGuard<'static, Option<HashMap<Pid, process::Opened>>> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The starts of a scan, each with whether its directory was kept from an earlier scan, as
/// the scan reads them: a kept directory whose process the iteration did not see as started
/// before that directory was opened may reach a process gone, its pid now another's, so it is
/// opened again, after the iteration (nothing the iteration saw is then taken for it, and
/// what was read through the old one is read again). With `Options::repeated`, the
/// directories are kept for the next scan.
fn keep_dirs(
    ctx: &Context,
    opts: &Options,
    starts: Vec<(process::Start, bool)>,
    kernel: Option<&bpf::KernelSnapshot>,
) -> Vec<process::Start> {
    let mut keep = opts.repeated.then(HashMap::new);
    let mut kept_for_next = |pid, dir: &read::ProcDir, at| {
        if let Some(keep) = &mut keep {
            keep.insert(pid, (read::ProcDir::clone(dir), at));
        }
    };
    let starts = starts
        .into_iter()
        .map(|((pid, dir, early), kept)| {
            let sure = |at| kernel.is_some_and(|k| k.saw(pid, at));
            let (dir, early) = match dir {
                Some((_, at)) if kept && !sure(at) => {
                    let at = bpf::boottime_ns();
                    let dir = read::open_dir(&ctx.pid_path(pid, "")).ok();
                    if let Some(d) = &dir {
                        kept_for_next(pid, d, at);
                    }
                    // Opened after the iteration: nothing it saw is sure to be this process.
                    (dir.map(|d| (d, 0)), None)
                }
                Some((d, at)) => {
                    kept_for_next(pid, &d, at);
                    (Some((d, at)), early)
                }
                None => (None, early),
            };
            (pid, dir, early)
        })
        .collect();
    if keep.is_some() {
        *kept_dirs() = keep;
    }
    starts
}

/// What is known of a process whose maps or fds were refused to a caller of uid `euid`.
fn unreadable(p: &Process, euid: u32) -> model::UnreadableProcess {
    use model::UnreadableReason as R;
    model::UnreadableProcess {
        pid: p.pid,
        comm: p.comm.clone(),
        user: p.user.clone(),
        rss_shmem_bytes: p.rss_shmem_bytes,
        reason: if euid == 0 {
            R::DeniedToRoot
        } else if p.uid == euid {
            R::NotDumpable
        } else {
            R::OtherUser
        },
    }
}
