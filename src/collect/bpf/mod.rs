//! Every process's identity, namespaces, mappings and fds on tmpfs and hugetlbfs, in one pass
//! inside the kernel: two BPF iterators (`task`, `task_file`) replace, per process, the read of
//! `/proc/PID/stat`, the readlinks of `ns/ipc` and `ns/mnt`, the walk of its maps and of
//! `/proc/PID/fd`, and (for the views that show no memory counters) the read of `status`.
//!
//! On the 300-worker pool of `bench/ratios.sh`, the fd walk (open, getdents and a readlink per
//! fd) was a quarter of the CPU of `shmwho --json` (a C loop measured it at 8.0 ms for 2,101
//! fds, 2.4 ms without the readlinks). The iterator hands back only the few fds on a shared
//! memory filesystem; the scan reads the links of those alone. A process that scans again and
//! again walks only the mappings that changed since ([`walks`]).
//!
//! Used only where it cannot change what the scan sees: as root with no privilege gained at
//! exec (`Options::bpf`, which the caller clears for such a run), on the host's own `/proc`, in
//! the initial pid, user and time namespaces (the iterators report kernel pids, uids and raw
//! boot times), unless `SHMWHO_NO_BPF` is set. Anything else, or any failure to load, and the
//! scan reads `/proc` as before. Neither iterator takes a lock a stuck process can hold (they
//! walk tasks and fd tables under RCU, and mappings only after trying their locks), so they
//! need no deadline.
//!
//! The programs are encoded by hand ([`asm`]) with field offsets from the kernel's BTF
//! ([`btf`]): no C compiler at build time, no loader library, one program for every kernel.

mod asm;
mod btf;
mod cache;
mod files;
mod sys;
mod tasks;
mod vmlinux;
mod walks;

pub(crate) use files::FdRecord;
pub(crate) use tasks::{CgroupIds, TaskRecord, VmaRecord};

use std::collections::HashMap;
use std::io::Read as _;
use walks::Walks;

/// `BPF_FUNC_seq_write`.
const SEQ_WRITE: i32 = 127;

/// The little-endian u32 at `at` of record `r` (records are whole: the caller cut them).
fn le32(r: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(r[at..at + 4].try_into().expect("a whole record"))
}

/// The little-endian u64 at `at` of record `r`.
fn le64(r: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(r[at..at + 8].try_into().expect("a whole record"))
}

/// `st_dev`'s encoding of the kernel's own dev_t (12 bits of major above 20 bits of minor).
fn user_dev(kdev: u32) -> u64 {
    rustix::fs::makedev(kdev >> 20, kdev & 0xf_ffff)
}

/// What the iterators saw.
pub(crate) struct KernelSnapshot {
    /// Thread group leaders by pid; empty when the `task` program could not load.
    tasks: HashMap<i32, TaskRecord>,
    /// Those of `tasks` the iteration found before their directories were surely in place
    /// ([`Placed`]).
    early: std::collections::HashSet<i32>,
    /// Fds on tmpfs or hugetlbfs by thread id, with the thread's start (ns after boot).
    fds: HashMap<i32, (u64, Vec<FdRecord>)>,
    /// Whether `fds` is there (the `task_file` program loaded).
    with_fds: bool,
    /// `CLOCK_BOOTTIME` (ns) when the iterations began.
    taken_ns: u64,
    /// Nanoseconds per clock tick (`/proc/PID/stat` start times).
    tick_ns: u64,
    /// Processes whose mappings were not walked again: unchanged since a walk kept.
    pub reused: usize,
}

impl KernelSnapshot {
    /// Process `pid` as the `task` iterator saw it, when that is surely the process whose
    /// directory the scan holds, opened after `opened_ns` (`CLOCK_BOOTTIME`), by this scan or
    /// an earlier one, and before the iteration found it ([`Placed`]): it started before then
    /// and still had the pid when the iteration came, so it is the one that had the pid when
    /// the directory was opened. `None`: read its `stat` and namespaces from `/proc`.
    pub fn task(&self, pid: i32, opened_ns: u64) -> Option<TaskRecord> {
        let t = self.seen(pid, opened_ns)?;
        let mut t = t.clone();
        t.stat.start_ticks = t.start_ns / self.tick_ns;
        Some(t)
    }

    /// Whether [`KernelSnapshot::task`] has process `pid` for a directory opened after
    /// `opened_ns`, without a copy of what the iteration saw of it.
    pub fn saw(&self, pid: i32, opened_ns: u64) -> bool {
        self.seen(pid, opened_ns).is_some()
    }

    fn seen(&self, pid: i32, opened_ns: u64) -> Option<&TaskRecord> {
        self.tasks
            .get(&pid)
            .filter(|t| t.start_ns < opened_ns && !self.early.contains(&pid))
    }

    /// The fds on tmpfs or hugetlbfs of thread `tid`, which started at `start_ticks` (clock
    /// ticks after boot): `None` when the iteration may not have seen that process (it started
    /// within a tick of it or after, so its pid may even be another's now): walk its fds then.
    pub fn fds_of(&self, tid: i32, start_ticks: u64) -> Option<&[FdRecord]> {
        if !self.with_fds {
            return None;
        }
        let started_ns = start_ticks.checked_add(1)?.checked_mul(self.tick_ns)?;
        if started_ns >= self.taken_ns {
            return None;
        }
        match self.fds.get(&tid) {
            None => Some(&[]),
            Some((start, fds)) if start / self.tick_ns == start_ticks => Some(fds),
            Some(_) => None, // another process with this pid then
        }
    }
}

/// The loaded programs, kept for the life of the process (an exporter scans again and again).
struct Programs {
    tasks: Option<rustix::fd::OwnedFd>,
    files: Option<rustix::fd::OwnedFd>,
    /// For a process that scans again and again, the `task` program's map of the generations
    /// whose walks [`Walks`] keeps.
    walks: Option<std::sync::Mutex<Walks>>,
    /// Whether the `task` program gives each process's cgroups' kernfs ids.
    cgroup_ids: bool,
    /// Whether the `task` program gives each process's memory counters.
    counters: bool,
}

/// The programs, loaded by the first call, as its [`Plan`] asks.
fn loaded(plan: Plan) -> Result<&'static Programs, String> {
    static PROGS: std::sync::OnceLock<Result<Programs, String>> = std::sync::OnceLock::new();
    PROGS
        .get_or_init(|| {
            let map = plan.repeated.then(generations_map).flatten();
            let build = |lookup: &dyn cache::Lookup| build(lookup, map.as_ref(), plan.counters);
            // This boot's answers from the cache, if both programs load with them.
            if let Some(p) = cache::read().and_then(|c| build(&c).ok().filter(|_| !c.missed())) {
                if p.files.is_some() && p.tasks.is_some() {
                    return Ok(p);
                }
            }
            let blob = vmlinux::Vmlinux::open().map_err(|e| format!("BTF: {e}"))?;
            let wanted: Vec<&str> = files::WANTED.iter().chain(tasks::WANTED).copied().collect();
            let btf = btf::Btf::parse(blob.bytes(), &wanted).ok_or("BTF: not parsable")?;
            let recorded = cache::Recorded::new(&btf);
            let progs = build(&recorded)?;
            if progs.files.is_some() && progs.tasks.is_some() {
                cache::write(&recorded);
            }
            Ok(progs)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The map of [`tasks::Generation`]s by tgid: a key per process at most (the kernel's
/// `PID_MAX_LIMIT`), its entries allocated as they are set.
fn generations_map() -> Option<rustix::fd::OwnedFd> {
    sys::hash_map("shmwho_gens", 4, 16, 1 << 22).ok()
}

/// Both programs, laid out by `lookup`'s answers, loaded (the `task` one with the map of
/// generations `map`, if given and the kernel has them); an error if neither loads.
fn build(
    lookup: &dyn cache::Lookup,
    map: Option<&rustix::fd::OwnedFd>,
    want_counters: bool,
) -> Result<Programs, String> {
    let files = files::Layout::read(lookup)
        .ok_or_else(|| "BTF: no task_file layout".to_string())
        .and_then(|l| {
            sys::load_iter("shmwho_fds", &files::program(&l), l.attach)
                .map_err(|e| format!("load task_file: {e}"))
        });
    use rustix::fd::AsRawFd;
    let mut walks = None;
    let mut cgroup_ids = false;
    let mut counters = false;
    let tasks = tasks::Layout::read(lookup)
        .ok_or_else(|| "BTF: no task layout".to_string())
        .and_then(|l| {
            let map = map.filter(|_| l.has_generations());
            let fd = map.map(|m| m.as_raw_fd());
            // Its only use is to tell the program each CPU's per-CPU offset.
            let cpus = (want_counters && l.has_counters())
                .then(|| sys::percpu_array("shmwho_cpus", 8).ok())
                .flatten();
            let l = if cpus.is_some() {
                l
            } else {
                l.without_counters()
            };
            let cpus = cpus.as_ref().map(|m| m.as_raw_fd());
            let load = |l: &tasks::Layout| {
                sys::load_iter("shmwho_tasks", &tasks::program(l, fd, cpus), l.attach)
                    .map_err(|e| format!("load task: {e}"))
            };
            // A kernel that refuses the sum of the counters (a lockdown that denies
            // `bpf_probe_read_kernel`, a kernel before 5.19 without
            // `bpf_map_lookup_percpu_elem`) gets the program without it: `status` is read then.
            let (l, loaded) = match load(&l) {
                Err(_) if l.has_counters() => {
                    let l = l.without_counters();
                    let loaded = load(&l);
                    (l, loaded)
                }
                loaded => (l, loaded),
            };
            let loaded = loaded?;
            cgroup_ids = l.has_cgroup_ids();
            counters = l.has_counters();
            walks = map
                .and_then(|m| m.try_clone().ok())
                .map(|map| std::sync::Mutex::new(Walks::new(map)));
            Ok(loaded)
        });
    if let (Err(a), Err(b)) = (&files, &tasks) {
        return Err(format!("{a}; {b}"));
    }
    Ok(Programs {
        walks: walks.filter(|_| tasks.is_ok()),
        cgroup_ids: cgroup_ids && tasks.is_ok(),
        counters: counters && tasks.is_ok(),
        tasks: tasks.ok(),
        files: files.ok(),
    })
}

/// For each `read` of an iteration, where its bytes begin and what [`Placed`] held just before
/// the read before it.
type Marks = Vec<(usize, i32)>;

/// Everything program `prog` writes in one iteration, with its [`Marks`] from `dirs`.
fn run(prog: &rustix::fd::OwnedFd, dirs: &Placed) -> Result<(Vec<u8>, Marks), String> {
    let iter = sys::open_iter(prog).map_err(|e| format!("iterator: {e}"))?;
    // At least the kernel's buffer of an iteration (`bpf_seq_read`: 8 pages): a read then
    // takes all it made, so nothing made in one read is left for the next.
    let size = (64 * 1024).max(8 * rustix::param::page_size());
    let mut iter = std::fs::File::from(iter);
    let mut chunk = vec![0u8; size];
    let mut bytes = Vec::with_capacity(size);
    let mut marks = Vec::new();
    // What `dirs` held before the read before this one.
    let mut last = dirs.now();
    loop {
        let now = dirs.now();
        let at = bytes.len();
        let n = match iter.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                last = now;
                continue;
            }
            other => other.map_err(|e| format!("read: {e}"))?,
        };
        if n == 0 {
            return Ok((bytes, marks));
        }
        marks.push((at, last));
        bytes.extend_from_slice(&chunk[..n]);
        last = now;
    }
}

/// How far a scan has put its process directories in place while the `task` iteration runs
/// (`collect::with_kernel_snapshot` opens them beside it): every pid up to the value has its
/// directory opened (or given up on). The iteration finds each process in some `read` of it;
/// if that pid's directory was in place before the read began, the process the iteration
/// found had that pid then, after the directory was opened ([`KernelSnapshot::task`]). As a
/// margin, a record counts as found in the read before the one that handed it over ([`run`]
/// reads at least what one read makes, so none is left over for the next). The iteration
/// starts once the scan says so ([`Placed::start`]), a little behind the opening.
pub(crate) struct Placed {
    up_to: std::sync::atomic::AtomicI32,
    started: std::sync::Mutex<bool>,
    start: std::sync::Condvar,
}

impl Placed {
    /// None yet.
    pub fn none() -> Placed {
        Placed {
            up_to: std::sync::atomic::AtomicI32::new(0),
            started: std::sync::Mutex::new(false),
            start: std::sync::Condvar::new(),
        }
    }

    /// Every one (the directories are not used), the iteration free to start.
    pub fn all() -> Placed {
        let p = Placed::none();
        p.up_to(i32::MAX);
        p.start();
        p
    }

    /// The directory of `pid`, and of every lower pid, is in place.
    pub fn up_to(&self, pid: i32) {
        self.up_to.store(pid, std::sync::atomic::Ordering::Release);
    }

    /// The iteration may start.
    pub fn start(&self) {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.start.notify_all();
    }

    fn wait(&self) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        while !*started {
            started = self.start.wait(started).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn now(&self) -> i32 {
        self.up_to.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// `CLOCK_BOOTTIME` in ns, the clock of `start_boottime`.
pub(crate) fn boottime_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

/// Whether a scan with `opts` may use the iterators (see the module's comment).
pub(crate) fn eligible(opts: &super::Options) -> bool {
    opts.bpf
        && std::env::var_os("SHMWHO_NO_BPF").is_none()
        && opts.paths == super::HostPaths::default()
        && rustix::process::geteuid().is_root()
        && initial_namespaces()
}

/// How the programs are to be loaded (by the first scan of the process).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Plan {
    /// This process scans again and again (the exporter, `top`): the `task` program skips
    /// the walk of every process whose mappings did not change since the walk kept of it
    /// ([`walks`]).
    pub repeated: bool,
    /// The scan wants the memory counters: the `task` program sums them where it can
    /// (`tasks::sum_counters`), so that `status` is not read. (The views that show no counters
    /// load it without: three helper calls per CPU and process they would have no use for.)
    pub counters: bool,
}

/// Whether the loaded `task` program gives each process's cgroups' kernfs ids
/// ([`TaskRecord::cgroup_ids`]).
pub(crate) fn gives_cgroup_ids(plan: Plan) -> bool {
    loaded(plan).is_ok_and(|p| p.cgroup_ids)
}

/// Whether the loaded `task` program gives each process's memory counters
/// ([`TaskRecord::counters`]), so that a scan need not read `status` for them.
pub(crate) fn gives_counters(plan: Plan) -> bool {
    loaded(plan).is_ok_and(|p| p.counters)
}

/// Runs the iterators, for a scan that puts its process directories in place as `dirs` says;
/// `None` when they cannot load.
pub(crate) fn snapshot(plan: Plan, dirs: &Placed) -> Option<KernelSnapshot> {
    take(plan, dirs).ok()
}

fn take(plan: Plan, dirs: &Placed) -> Result<KernelSnapshot, String> {
    let progs = loaded(plan)?;
    let taken_ns = boottime_ns();
    let generations = progs.walks.is_some();
    let tasks_of = |prog: &Option<rustix::fd::OwnedFd>| match prog {
        Some(p) => run(p, dirs).map(|(b, marks)| {
            let early = tasks::found_early(&b, &marks);
            (tasks::parse(&b, generations), early)
        }),
        None => Ok(Default::default()),
    };
    let files_of = || match &progs.files {
        Some(p) => run(p, &Placed::all()).map(|(b, _)| files::parse(&b)),
        None => Ok(HashMap::new()),
    };
    // `task_file` first: it needs no process directory in place, so it runs while the scan
    // lists `/proc` and opens the first of them: at 10,000 processes the objects view took
    // 235.4 and 261.0 ms of wall time so against 256.0 and 295.4 with `task` first (two
    // batches of 30 runs, ABBA order, one quiet and one loaded), `procs --json` 322.8 against
    // 345.5. (It ran beside `task`, on a thread of its own, on hosts of 2,048 processes or
    // more, when all the directories were opened before the iterations: 341 against 371 ms.
    // With the iteration running while they open, that thread saved nothing: 234.7 against
    // 228.8 ms, 30 runs.)
    let fds = files_of()?;
    dirs.wait();
    let (mut tasks, early) = tasks_of(&progs.tasks)?;
    let reused = match &progs.walks {
        Some(w) => w
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(&mut tasks),
        None => 0,
    };
    Ok(KernelSnapshot {
        reused,
        tasks,
        early,
        fds,
        with_fds: progs.files.is_some(),
        taken_ns,
        tick_ns: 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1),
    })
}

/// Whether we are in the initial pid, user and time namespaces, whose inode numbers the kernel
/// fixes (`PROC_PID_INIT_INO`, `PROC_USER_INIT_INO`, `PROC_TIME_INIT_INO`): the iterators report
/// kernel pids, uids and boot times, which `/proc` shows us unchanged only there.
fn initial_namespaces() -> bool {
    let ino = |name| super::context::ns_inode_at(rustix::fs::CWD, &format!("/proc/self/ns/{name}"));
    ino("pid") == Some(0xEFFF_FFFC)
        && ino("user") == Some(0xEFFF_FFFD)
        && ino("time").is_none_or(|i| i == 0xEFFF_FFFA)
}

/// What [`probe`] tells of one process: its fds on tmpfs or hugetlbfs (fd, device, inode), and
/// what the `task` iterator saw of it: command, start in clock ticks, IPC and mount namespace
/// inodes, and its file mappings on devices of major 0 (start, end, shared, offset, device,
/// inode) when their walk listed them all.
pub type Probed = (
    Vec<(i32, u64, u64)>,
    Option<(
        String,
        u64,
        Option<u64>,
        Option<u64>,
        Option<Vec<ProbedVma>>,
    )>,
);

/// A mapping as [`Probed`] gives it.
pub type ProbedVma = (u64, u64, bool, u64, u64, u64);

/// Runs the iterators for process `tid`, or says why they cannot (for tests).
pub fn probe(tid: i32) -> Result<Probed, String> {
    probe_with(tid, false).map(|(p, _)| p)
}

/// [`probe`] for a process that scans again and again ([`load`]'s `repeated`), with whether
/// the walk of `tid`'s mappings was skipped (unchanged since the last probe's); an error
/// where the kernel gives no generations.
pub fn probe_again(tid: i32) -> Result<(Probed, bool), String> {
    let plan = Plan {
        repeated: true,
        counters: true,
    };
    if loaded(plan)?.walks.is_none() {
        return Err("the task program keeps no walks here (no mm_lock_seq seqcount?)".into());
    }
    probe_with(tid, true)
}

/// What the `task` program summed of the memory counters of each of `pids`, as `status` would
/// print them (`None` where it summed none), or why it cannot sum them (for tests).
pub fn probe_counters(pids: &[i32]) -> Result<Vec<Option<super::status::Status>>, String> {
    let plan = Plan {
        repeated: false,
        counters: true,
    };
    if !loaded(plan)?.counters {
        return Err("the task program sums no counters here".into());
    }
    let s = take(plan, &Placed::all())?;
    Ok(pids
        .iter()
        .map(|pid| {
            let t = s.tasks.get(pid)?;
            Some(t.counters?.status(t.stat.ppid, t.uid))
        })
        .collect())
}

fn probe_with(tid: i32, repeated: bool) -> Result<(Probed, bool), String> {
    let plan = Plan {
        repeated,
        counters: true,
    };
    let progs = loaded(plan)?;
    let s = take(plan, &Placed::all())?;
    if progs.files.is_none() || progs.tasks.is_none() {
        return Err(format!(
            "only one program loads (task_file: {}, task: {})",
            progs.files.is_some(),
            progs.tasks.is_some()
        ));
    }
    let fds = s.fds.get(&tid).map_or_else(Vec::new, |(_, f)| {
        f.iter().map(|f| (f.fd, f.dev, f.ino)).collect()
    });
    let task = s.task(tid, s.taken_ns).map(|t| {
        let vmas = t.vmas.map(|v| {
            v.iter()
                .map(|m| (m.start, m.end, m.shared, m.offset, m.dev, m.inode))
                .collect()
        });
        (t.stat.comm, t.stat.start_ticks, t.ipc_ns, t.mnt_ns, vmas)
    });
    let skipped = s.tasks.get(&tid).is_some_and(|t| t.unchanged);
    Ok(((fds, task), skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(fds: &[u8], tick: u64, taken: u64) -> KernelSnapshot {
        KernelSnapshot {
            tasks: HashMap::new(),
            early: Default::default(),
            fds: files::parse(fds),
            with_fds: true,
            reused: 0,
            taken_ns: taken,
            tick_ns: tick,
        }
    }

    #[test]
    fn fds_answer_only_for_processes_the_iteration_saw() {
        let tick: u64 = 10_000_000;
        let mut r = Vec::new();
        for w in [10u32, 10, 7, 1] {
            r.extend(w.to_le_bytes());
        }
        r.extend(99u64.to_le_bytes());
        r.extend((5 * tick + 3).to_le_bytes());
        let s = snap(&r, tick, 100 * tick);
        assert_eq!(s.fds_of(10, 5).unwrap()[0].fd, 7);
        assert_eq!(s.fds_of(10, 6), None, "pid reused: another start time");
        assert_eq!(s.fds_of(11, 50), Some(&[][..]), "seen, no such fds");
        assert_eq!(
            s.fds_of(11, 99),
            None,
            "started within a tick of the iteration"
        );
        assert_eq!(s.fds_of(11, 200), None, "started after it");
    }

    #[test]
    fn a_task_counts_only_if_it_started_before_the_directories_were_opened() {
        let mut s = snap(&[], 10, 2000);
        let t = TaskRecord::started;
        s.tasks.insert(1, t(999));
        s.tasks.insert(2, t(1000));
        assert_eq!(s.task(1, 1000).unwrap().stat.start_ticks, 99);
        assert_eq!(
            s.task(2, 1000),
            None,
            "may have taken the pid after the directory was opened"
        );
        assert_eq!(s.task(3, 1000), None);
        // A directory kept from an earlier scan, opened at 500, reaches another process.
        assert_eq!(
            s.task(1, 500),
            None,
            "started after that directory was opened"
        );
        assert!(s.saw(1, 1000) && !s.saw(1, 500) && !s.saw(3, 1000));
        // Found before its directory was in place: that directory may reach another process.
        s.early.insert(1);
        assert_eq!(s.task(1, 1000), None);
        assert!(!s.saw(1, 1000));
    }

    /// A process the iteration finds before the scan says its directory is in place is not
    /// taken for that directory's.
    #[test]
    fn processes_found_ahead_of_their_directories_are_not_taken() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: loading a BPF iterator needs root (tests/bpf.rs says so)");
            return;
        }
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let s = take(Plan::default(), &Placed::all()).expect("iterators run");
        let low = *s.tasks.keys().min().expect("processes");
        assert!(low < me && s.task(low, s.taken_ns).is_some() && s.task(me, s.taken_ns).is_some());
        // Only the lowest pid's directory in place while the iteration runs.
        let placed = Placed::none();
        placed.up_to(low);
        placed.start();
        let s = take(Plan::default(), &placed).expect("iterators run");
        assert!(s.task(low, s.taken_ns).is_some(), "pid {low} was in place");
        assert!(s.task(me, s.taken_ns).is_none(), "we were found ahead");
        assert!(s.tasks.contains_key(&me), "but found all the same");
    }

    #[test]
    fn iterators_list_a_memfd_of_ours_and_our_namespaces() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: loading a BPF iterator needs root (tests/bpf.rs says so)");
            return;
        }
        use rustix::fd::AsRawFd;
        let memfd = rustix::fs::memfd_create(
            "shmwho bpf (deleted)\ntest",
            rustix::fs::MemfdFlags::CLOEXEC,
        )
        .unwrap();
        let (socket, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let st = rustix::fs::fstat(&memfd).unwrap();
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let (fds, task) = probe(me).expect("iterators run");
        assert!(
            fds.contains(&(memfd.as_raw_fd(), st.st_dev, st.st_ino)),
            "{fds:?} lacks fd {} ({}, {})",
            memfd.as_raw_fd(),
            st.st_dev,
            st.st_ino
        );
        assert!(
            !fds.iter().any(|f| f.0 == socket.as_raw_fd()),
            "a socket is no tmpfs file"
        );
        let (comm, start_ticks, ipc, mnt, vmas) = task.expect("our own process is listed");
        assert!(vmas.is_some(), "the walk of our own mappings completes");
        let stat = std::fs::read("/proc/self/stat").unwrap();
        let stat = crate::collect::stat::parse(&stat).unwrap();
        assert_eq!((comm, start_ticks), (stat.comm, stat.start_ticks));
        let ns = |n| super::super::context::ns_inode_at(rustix::fs::CWD, n);
        assert_eq!(ipc, ns("/proc/self/ns/ipc"));
        assert_eq!(mnt, ns("/proc/self/ns/mnt"));
    }

    /// The `task` program gives the uid and parent `status` gives.
    #[test]
    fn task_records_give_the_uid_and_parent_status_gives() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: loading a BPF iterator needs root (tests/bpf.rs says so)");
            return;
        }
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let status = std::fs::read("/proc/self/status").unwrap();
        let status = crate::collect::status::parse(&status).unwrap();
        let _memfd = rustix::fs::memfd_create("shmwho bpf beside", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        let s = take(Plan::default(), &Placed::all()).expect("iterators run");
        let t = &s.tasks[&me];
        assert_eq!((t.uid, t.stat.ppid), (status.uid, status.ppid));
        assert!(s.with_fds && s.fds.contains_key(&me), "our memfd is listed");
    }

    /// The `task` program counts every mapping maps lists, but the gate page (`[vsyscall]`),
    /// which is not one of the process's own (`body::PssHint` weighs smaps' text by it).
    #[test]
    fn task_records_count_the_mappings_maps_lists() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: loading a BPF iterator needs root (tests/bpf.rs says so)");
            return;
        }
        struct Killed(std::process::Child);
        impl Drop for Killed {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let child = Killed(
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id() as i32;
        // Asleep: exec and the dynamic loader are done, its mappings stay as they are.
        let asleep = || {
            let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
            crate::collect::stat::parse(&stat).is_some_and(|s| s.state == b'S')
        };
        let t0 = std::time::Instant::now();
        while !asleep() {
            assert!(t0.elapsed().as_secs() < 10, "sleep did not fall asleep");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let own = maps.lines().filter(|l| !l.ends_with("[vsyscall]")).count();
        let s = take(Plan::default(), &Placed::all()).expect("iterators run");
        assert_eq!(s.tasks[&pid].mappings as usize, own, "{maps}");
    }
}
