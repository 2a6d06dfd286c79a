//! A process's maps (or smaps) and fds, read through its opened directory (pass 2, or the
//! same pass as its head: see [`super::process::scan`]).

use super::bpf::VmaRecord;
use super::deadline;
use super::measure::InodeStat;
use super::parse::{maps, smaps};
use super::process::under;
use super::process::SmapsFigures;
use super::procmap::{self, Walked};
use super::pss;
use super::read::{classify, fill_file, open_sub, read_file, ProcDir, Read, SMAPS_CHUNK};
use super::{Context, RawProcess};
use crate::model::{Pid, Process, SmapsTotals};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::OFlags;
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`read_maps`] keeps of a process's maps or smaps.
pub(crate) struct MapsRead {
    /// Mappings on devices with major 0 that are not anonymous memory (the only ones that can
    /// be shared memory objects), with their smaps figures.
    entries: Vec<(maps::MapsEntry, Option<SmapsFigures>)>,
    /// smaps: `Pss` of every mapping, and private bytes of every mapping.
    pss: u64,
    private: u64,
}

/// A process's directory, with its mappings as the BPF `task` iterator listed them, if it did,
/// the access check of its maps if it was made beside the iteration ([`check_early`]), and
/// what [`by_rollup`] weighs, if known.
pub(crate) struct MapsSource {
    pub dir: ProcDir,
    pub listed: Option<Vec<VmaRecord>>,
    pub access: Option<std::io::Result<()>>,
    pub hint: Option<PssHint>,
}

impl MapsSource {
    /// A directory and nothing known of it.
    pub fn dir(dir: ProcDir) -> MapsSource {
        MapsSource {
            dir,
            listed: None,
            access: None,
            hint: None,
        }
    }
}

/// What the choice between smaps and [`by_rollup`] weighs for one process: how many mappings
/// it has (each one a record smaps formats) and how many shmem bytes it maps (each page one
/// that pagemap looks at).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PssHint {
    pub mappings: u32,
    /// `RssShmem`, exact (the `task` program's sum).
    pub shmem_bytes: u64,
    /// `RssAnon` + `RssFile`.
    pub other_bytes: u64,
}

impl PssHint {
    /// Whether [`by_rollup`] should cost less than smaps for mappings `listed`. Measured with
    /// `bench/fpm.sh` and `bench/ratios.sh` (docs/bench.md, "smaps_rollup and pagemap"):
    /// smaps formats ~4 µs of text per mapping beyond the walk smaps_rollup also makes;
    /// pagemap costs ~30 ns per present page and ~1 ns per absent one.
    pub fn rollup_cheaper(&self, listed: &[VmaRecord], page: u64) -> bool {
        let pages: u64 = listed
            .iter()
            .map(|v| v.end.saturating_sub(v.start) / page)
            .sum();
        let present = self.shmem_bytes / page;
        let pagemap_ns = present.saturating_mul(30).saturating_add(pages);
        pagemap_ns < u64::from(self.mappings) * 4000
    }

    /// Whether [`pss::Counter::count`] should cost less than smaps_rollup's walk, which looks
    /// at every page (~40 ns each on the 300-worker pool of `bench/ratios.sh`: 0.74 ms per
    /// worker of 16,700 pages). Counting looks at each mapping (a query; ~1 µs each with the
    /// pagemap read around it) and at each page that is not an object's (its pagemap entry,
    /// those of the absent pages around it, and a mapcount, mostly one read already: ~100 ns
    /// per resident page), each object's pages once per scan.
    pub fn counting_cheaper(&self, page: u64) -> bool {
        let (shmem, other) = (self.shmem_bytes / page, self.other_bytes / page);
        let counting_ns = u64::from(self.mappings)
            .saturating_mul(1000)
            .saturating_add(other.saturating_mul(100));
        counting_ns < shmem.saturating_add(other).saturating_mul(40)
    }
}

/// The maps (or smaps, with `want_smaps`) of each process (its pid and the directory to read
/// through), each under the stuck deadline, all in one [`deadline::call_each`] batch: a
/// hand-over to the deadline worker per process cost two context switches (on the 300-worker
/// pool of `bench/ratios.sh`, `perf stat` counted ~800 context switches per `shmwho --json`
/// before, ~55 after; `strace -c`, 1,337 futex calls before, 33 after).
/// `None` for a process that is stuck. A process given with its mappings listed by the BPF
/// `task` iterator ([`super::bpf`]) has only their paths read ([`from_listed`]). With
/// `totals_only` (no mapping needs a PSS of its own: only the process's PSS and USS are
/// wanted), a process where it costs less is read through [`by_rollup`] instead of smaps.
pub(crate) fn read_maps(
    ctx: &Context,
    items: Vec<(Pid, MapsSource)>,
    want_smaps: bool,
    totals_only: bool,
) -> Vec<Option<std::io::Result<MapsRead>>> {
    // Devices SysV segments live on: shmem, and the internal hugetlbfs mounts (SHM_HUGETLB).
    let mut segment_devs: Vec<u64> = ctx.hugetlb_internal.keys().copied().collect();
    segment_devs.push(ctx.shmem_dev);
    // smaps repeats every maps line, so with smaps wanted, maps is not read at all.
    let file = if want_smaps { "smaps" } else { "maps" };
    let names = std::sync::Mutex::new(Names::new());
    let page = rustix::param::page_size() as u64;
    // Mappings whose pages smaps_rollup counts in `Pss_Shmem` and pagemap can tell apart:
    // shmem and tmpfs, not hugetlbfs (whose pages the rollup counts apart).
    let shmem_devs: Vec<u64> = std::iter::once(ctx.shmem_dev)
        .chain(ctx.tmpfs.keys().copied())
        .filter(|&d| ctx.huge_page_size(d).is_none())
        .collect();
    let counter = (want_smaps && totals_only)
        .then(|| pss::Counter::new(&ctx.paths.proc_root))
        .flatten();
    deadline::call_each(items, file, move |src| {
        let MapsSource {
            dir,
            listed,
            access,
            hint,
        } = src;
        BUF.with_borrow_mut(|buf| {
            match (&listed, want_smaps) {
                (Some(listed), false) => {
                    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
                    let read =
                        from_listed(dir.as_fd(), listed, access, &segment_devs, buf, &mut names)?;
                    if let Some(read) = read {
                        return Ok(read);
                    }
                }
                // No file mapping on a major-0 device: no mapping of a shared memory object
                // (kept or unsure) needs a figure of its own, and `smaps_rollup` has the
                // process's totals in one record, without a line per mapping (its `Pss` summed
                // before rounding to kB, where smaps rounds each mapping's).
                (Some(listed), true) if listed.is_empty() => {
                    let n = read_file(buf, dir.as_fd(), "smaps_rollup", usize::MAX)?;
                    return Ok(parse_maps(&buf[..n], true, &segment_devs));
                }
                (Some(listed), true)
                    if totals_only
                        && listed
                            .iter()
                            .all(|v| v.shared && shmem_devs.contains(&v.dev)) =>
                {
                    let Some(hint) = hint else {
                        return read_one(dir.as_fd(), want_smaps, &segment_devs, buf);
                    };
                    let counting = counter.as_ref().filter(|_| hint.counting_cheaper(page));
                    if counting.is_none() && !hint.rollup_cheaper(listed, page) {
                        return read_one(dir.as_fd(), want_smaps, &segment_devs, buf);
                    }
                    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
                    let read =
                        from_listed(dir.as_fd(), listed, access, &segment_devs, buf, &mut names)?;
                    drop(names);
                    if let Some(mut read) = read {
                        if let Some(counter) = counting {
                            if by_counting(counter, dir.as_fd(), &mut read, hint, buf, page)? {
                                return Ok(read);
                            }
                        }
                        if hint.rollup_cheaper(listed, page) {
                            if let Some(read) = by_rollup(dir.as_fd(), read, buf, page)? {
                                return Ok(read);
                            }
                        }
                    }
                }
                _ => {}
            }
            read_one(dir.as_fd(), want_smaps, &segment_devs, buf)
        })
    })
}

/// A process's PSS and USS without smaps' text: its totals from `smaps_rollup`, and each of
/// its mappings' resident and private bytes from pagemap (present pages, and present pages
/// mapped only once: bit 56, which the kernel sets by the same mapcount test by which smaps
/// counts a page as private). `read` holds its mappings of shared memory objects as
/// [`from_listed`] named them; the caller has checked they are all shared mappings of shmem
/// or tmpfs files and the process has no other file mapping on a device of major 0, so
/// `Pss_Shmem` is theirs alone: a mapping gets it as its PSS when it is the only one with pages
/// present, else none (smaps alone could split it). `Ok(None)` where the rollup shows
/// shmem mapped by PMD, whose pages pagemap and smaps test by separate code paths that this
/// was not checked against: read smaps then (the rollup's walk is then paid twice).
///
/// On 300 PHP-FPM workers (`bench/fpm.sh`: ~155 mappings each, two objects, ~3 MiB of them
/// resident) `procs --pss` took 128.3 ms of CPU against 269.6 ms with smaps (`cat
/// smaps_rollup` of all: 85.3 ms).
fn by_rollup(
    dir: BorrowedFd<'_>,
    mut read: MapsRead,
    buf: &mut Vec<u8>,
    page: u64,
) -> std::io::Result<Option<MapsRead>> {
    let n = read_file(buf, dir, "smaps_rollup", usize::MAX)?;
    let Some(rollup) = smaps::parse(&buf[..n]).into_iter().next() else {
        return Ok(None);
    };
    if rollup.shmem_pmd_mapped != 0 {
        return Ok(None);
    }
    let pagemap = open_sub(dir, "pagemap", OFlags::RDONLY)?;
    let mut with_pages = 0;
    let mut figures = Vec::with_capacity(read.entries.len());
    for (e, _) in &read.entries {
        let (present, only) =
            super::pagemap::count_range(pagemap.as_fd(), e.start, e.end, page, buf)?;
        with_pages += usize::from(present > 0);
        figures.push((present * page, only * page));
    }
    for ((_, f), (rss, private)) in read.entries.iter_mut().zip(figures) {
        let pss = if rss == 0 {
            Some(0)
        } else {
            (with_pages == 1).then_some(rollup.pss_shmem)
        };
        *f = Some((pss, rss, private));
    }
    read.pss = rollup.pss;
    read.private = rollup.private;
    Ok(Some(read))
}

/// A process's PSS and USS counted from pagemap and kpagecount ([`pss::Counter::count`]) into
/// `read` (its mappings of shared memory objects as [`from_listed`] named them; the caller
/// has checked they are all shared mappings of shmem or tmpfs files and the process has no
/// other file mapping on a device of major 0). `Ok(false)` where that cannot be done.
///
/// On the 300-worker pool of `bench/ratios.sh` (each worker maps all of a 64 MiB region)
/// `procs --pss` took 44.1 ms of CPU against 207.8 ms through smaps (`cat smaps_rollup` of
/// all: 197.5 ms; docs/bench.md, "PSS counted from pagemap and kpagecount").
fn by_counting(
    counter: &pss::Counter,
    dir: BorrowedFd<'_>,
    read: &mut MapsRead,
    hint: PssHint,
    buf: &mut Vec<u8>,
    page: u64,
) -> std::io::Result<bool> {
    let objects: Vec<&maps::MapsEntry> = read.entries.iter().map(|(e, _)| e).collect();
    let Some(figures) = counter.count(dir, &objects, hint.shmem_bytes, page, buf)? else {
        return Ok(false);
    };
    for ((_, f), (pss, rss, private)) in read.entries.iter_mut().zip(figures.mappings) {
        *f = Some((Some(pss), rss, private));
    }
    read.pss = figures.pss;
    read.private = figures.private;
    Ok(true)
}

/// The mappings the BPF `task` iterator listed for the process at `dir` ([`super::bpf`]),
/// each named by one `PROCMAP_QUERY` at its address ([`procmap::named`]: the name maps gives),
/// or from `names` when another process's mapping of the same file of an internal mount was
/// named already. Not by its `map_files` link: reading that takes the mmap_lock a stuck process
/// holds, where the query takes the mapping's own lock (tests/stuck.rs). The kernel's access
/// check is made all the same (maps is opened), so a process refused to us stays refused.
/// `Ok(None)` when a mapping changed since the iteration, or a query cannot name it: read maps
/// then.
///
/// On the 300-worker pool of `bench/ratios.sh` this is one open of maps per worker instead of
/// the ~21 queries of a walk of all its file mappings ([`procmap::walk`]).
fn from_listed(
    dir: BorrowedFd<'_>,
    listed: &[VmaRecord],
    access: Option<std::io::Result<()>>,
    segment_devs: &[u64],
    buf: &mut Vec<u8>,
    names: &mut Names,
) -> std::io::Result<Option<MapsRead>> {
    let mut maps = None;
    let mut entries = Vec::new();
    for v in listed {
        // Only SysV segment 0 needs its path to be told from anonymous memory (`wanted`).
        if v.inode == 0 && !segment_devs.contains(&v.dev) {
            continue;
        }
        // A file of the kernel's internal mounts (shmem, hugetlbfs: anonymous shared, SysV,
        // memfd) is named by its inode alone, the same in every process: asked once.
        let internal = segment_devs.contains(&v.dev);
        let e = match names.get(&(v.dev, v.inode)).filter(|_| internal) {
            Some(path) => maps::MapsEntry {
                start: v.start,
                end: v.end,
                shared: v.shared,
                offset: v.offset,
                dev_major: rustix::fs::major(v.dev),
                dev_minor: rustix::fs::minor(v.dev),
                inode: v.inode,
                path: path.clone(),
            },
            None => {
                if !PROCMAP_QUERY.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                if maps.is_none() {
                    maps = Some(open_sub(dir, "maps", OFlags::RDONLY)?);
                }
                let maps = maps.as_ref().expect("opened above");
                if buf.len() < procmap::NAME_BUF {
                    buf.resize(procmap::NAME_BUF, 0);
                }
                let name = &mut buf[..procmap::NAME_BUF];
                let Some(e) = procmap::named(maps.as_fd(), v.start, v.end, name)? else {
                    return Ok(None);
                };
                if e.dev() != v.dev || e.inode != v.inode {
                    return Ok(None); // another mapping there now
                }
                if internal {
                    names.insert((v.dev, v.inode), e.path.clone());
                }
                e
            }
        };
        if wanted(&e, segment_devs) {
            entries.push((e, None));
        }
    }
    if maps.is_none() {
        // The access check of the walk of maps is the open of maps, made beside the iteration
        // where it could be ([`check_early`]). (A readlink of `ns/ipc` is cheaper but stricter:
        // refused to a root without CAP_SYS_PTRACE where maps is not.)
        match access {
            Some(made) => made?,
            None => drop(open_sub(dir, "maps", OFlags::RDONLY)?),
        }
    }
    Ok(Some(MapsRead {
        entries,
        pss: 0,
        private: 0,
    }))
}

/// The access check of [`from_listed`] (the open of maps) of the processes of `starts` whose
/// directory is open and whose early reads went well, made in one [`deadline::call_each`]
/// batch beside the BPF iteration (`super::with_kernel_snapshot`), where a CPU is free while
/// it ends. (A process of another mount namespace, read in pass 2 through [`read_one`], is
/// checked again there.)
pub(crate) fn check_early(starts: &mut [super::process::Start]) {
    super::process::read_beside(
        starts,
        "maps",
        |dir| open_sub(dir.as_fd(), "maps", OFlags::RDONLY).map(drop),
        |early, access| early.access = Some(access),
    );
}

/// Names of files of the internal mounts, by device and inode ([`from_listed`]).
type Names = std::collections::HashMap<(u64, u64), Vec<u8>>;

/// [`read_maps`] of one process directory `dir`, reading into `buf`.
fn read_one(
    dir: BorrowedFd<'_>,
    want_smaps: bool,
    segment_devs: &[u64],
    buf: &mut Vec<u8>,
) -> std::io::Result<MapsRead> {
    if want_smaps {
        let n = read_file(buf, dir, "smaps", SMAPS_CHUNK)?;
        return Ok(parse_maps(&buf[..n], want_smaps, segment_devs));
    }
    let f = open_sub(dir, "maps", OFlags::RDONLY)?;
    if PROCMAP_QUERY.load(Ordering::Relaxed) {
        if buf.len() < procmap::NAME_BUF {
            buf.resize(procmap::NAME_BUF, 0);
        }
        let name = &mut buf[..procmap::NAME_BUF];
        match procmap::walk(f.as_fd(), name, |e| wanted(e, segment_devs))? {
            Walked::Entries(entries) => {
                return Ok(MapsRead {
                    entries: entries.into_iter().map(|e| (e, None)).collect(),
                    pss: 0,
                    private: 0,
                })
            }
            Walked::Unsupported => PROCMAP_QUERY.store(false, Ordering::Relaxed),
            Walked::Text => {}
        }
    }
    // Queries leave the file position at 0: the text is read through the same open.
    let n = fill_file(buf, std::fs::File::from(f), usize::MAX)?;
    Ok(parse_maps(&buf[..n], want_smaps, segment_devs))
}

/// Whether maps is walked with `PROCMAP_QUERY` ([`procmap`]): until the kernel says it has
/// none, so that an older kernel pays one failed ioctl per shmwho process, not per scan.
static PROCMAP_QUERY: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// The deadline worker's read buffer.
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether mapping `e` can be a shared memory object, SysV segments living on
/// `segment_devs`.
fn wanted(e: &maps::MapsEntry, segment_devs: &[u64]) -> bool {
    // Inode 0 is anonymous memory, except SysV segment 0: its shm file's inode is its shmid,
    // and the first segment of every IPC namespace is shmid 0 (on the internal hugetlbfs
    // device for SHM_HUGETLB). Every shared memory device (shmem, tmpfs, hugetlbfs) has
    // major 0.
    e.dev_major == 0
        && (e.inode != 0 || (e.path.starts_with(b"/SYSV") && segment_devs.contains(&e.dev())))
}

/// The mappings of `text` that can be shared memory objects, and smaps totals.
fn parse_maps(text: &[u8], want_smaps: bool, segment_devs: &[u64]) -> MapsRead {
    let wanted = |e: &maps::MapsEntry| wanted(e, segment_devs);
    let mut out = MapsRead {
        entries: Vec::new(),
        pss: 0,
        private: 0,
    };
    if want_smaps {
        for vma in smaps::parse(text) {
            out.pss = out.pss.saturating_add(vma.pss);
            out.private = out.private.saturating_add(vma.private);
            if wanted(&vma.entry) {
                out.entries
                    .push((vma.entry, Some((Some(vma.pss), vma.rss, vma.private))));
            }
        }
    } else {
        out.entries = maps::parse(text)
            .filter(wanted)
            .map(|e| (e, None))
            .collect();
    }
    out
}

/// Turns what [`read_maps`] returned for `p` into its holdings, and reads its fds through
/// `tdir` (its directory, or its live thread's); `dir`, its own directory, is kept in the
/// result for [`super::titles`] while descriptors last. Returns whether they were unreadable
/// (permissions); `Ok(None)` when the process is stuck (`maps` is `None`).
///
/// A mapping or fd on a major-0 device that is not known shared memory yet, and not mounted in
/// our own namespace (so possibly another namespace's tmpfs, whose mount table may be read
/// after this), is kept aside in `unsure_*` for [`reclassify`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    ctx: &Context,
    p: &mut Process,
    dir: &ProcDir,
    tdir: &ProcDir,
    task: Option<Pid>,
    want_smaps: bool,
    done: super::process::Done,
    maps: Option<std::io::Result<MapsRead>>,
) -> Read<Option<(RawProcess, bool)>> {
    let mnt_key = ctx.mnt_key(p.mnt_ns);
    let mut raw = RawProcess {
        task,
        done,
        ..RawProcess::default()
    };
    let mut denied = false;
    let Some(maps) = maps else {
        return Read::Ok(None);
    };
    raw.dir = keep_dir(dir);
    match classify(maps) {
        Read::Ok(m) => {
            let mut kept_private = 0u64;
            for (e, smaps) in m.entries {
                if ctx.is_shmem_dev(e.dev()) {
                    if let Some((pss, rss, private)) = smaps {
                        raw.smaps_by_start.insert(e.start, (pss, rss));
                        kept_private = kept_private.saturating_add(private);
                    }
                    raw.maps.push(e);
                    continue;
                }
                raw.other_anon_dev_mapped = raw
                    .other_anon_dev_mapped
                    .saturating_add(e.end.saturating_sub(e.start));
                if !ctx.own_devs.contains(&e.dev()) {
                    raw.unsure_maps.push((e, smaps));
                }
            }
            if want_smaps {
                // USS: private bytes outside the mappings kept as holders'.
                p.smaps = Some(SmapsTotals {
                    pss_bytes: m.pss,
                    uss_bytes: m.private.saturating_sub(kept_private),
                });
            }
        }
        Read::Vanished => return Read::Vanished,
        Read::Denied => denied = true,
    }
    let listed = match (&ctx.kernel, task) {
        // A leader gone zombie may have left its fds behind after the iteration: walk.
        (Some(index), None) => index.fds_of(p.pid, p.start_ticks),
        _ => None,
    };
    let fds = match listed {
        Some(fds) => scan_listed_fds(ctx, tdir, mnt_key, fds, &mut raw),
        None => scan_fds(ctx, tdir, mnt_key, &mut raw),
    };
    match fds {
        Read::Ok(()) => {}
        Read::Vanished => return Read::Vanished,
        Read::Denied => denied = true,
    }
    // Refused processes are listed with their RssShmem.
    if denied && !raw.done.counters {
        let mut reader = super::read::Reader::new();
        if let Read::Ok(s) = super::process::read_status(&mut reader, tdir) {
            super::process::set_counters(p, &s);
            raw.done.counters = true;
        }
    }
    Read::Ok(Some((raw, denied)))
}

/// Process directories kept open at once, at most: half the soft descriptor limit, set by
/// [`super::collect`] (kept beyond it, a process's title is read by path and its `stat` again).
pub(crate) static DIRS_LEFT: std::sync::atomic::AtomicIsize =
    std::sync::atomic::AtomicIsize::new(0);

/// `dir`, to keep, when [`DIRS_LEFT`] allows.
fn keep_dir(dir: &ProcDir) -> Option<ProcDir> {
    use std::sync::atomic::Ordering;
    (DIRS_LEFT.fetch_sub(1, Ordering::Relaxed) > 0).then(|| ProcDir::clone(dir))
}

/// Open fds that name a memfd or a file under a tmpfs mount, with their inode, into `raw`.
///
/// The links are read relative to the opened `fd` directory: on the 300-worker pool
/// (`bench/ratios.sh`) a readlink of `/proc/PID/fd/N` spent two thirds of its kernel time in
/// the lookup of `/proc`, `PID` and `fd`, not in naming the file.
fn scan_fds(ctx: &Context, dir: &ProcDir, mnt_key: Option<u64>, raw: &mut RawProcess) -> Read<()> {
    let fd_dir = match classify(open_sub(
        dir.as_fd(),
        "fd",
        OFlags::RDONLY | OFlags::DIRECTORY,
    )) {
        Read::Ok(d) => d,
        Read::Vanished => return Read::Vanished,
        Read::Denied => return Read::Denied,
    };
    // Listed with a borrowed descriptor into a buffer on the stack (a `Dir` owns its
    // descriptor: a dup, and its close, per process).
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    let mut entries = rustix::fs::RawDir::new(&fd_dir, &mut space);
    let points = ctx.mount_points.get(&mnt_key);
    let mut link = Vec::with_capacity(256);
    while let Some(entry) = entries.next() {
        let Ok(entry) = entry else {
            break; // the process exited while its fds were listed
        };
        let name = entry.file_name();
        let Some(fd) = name.to_str().ok().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        link.clear();
        let Ok(target) = rustix::fs::readlinkat(&fd_dir, name, std::mem::take(&mut link)) else {
            continue; // closed meanwhile
        };
        let target = target.into_bytes();
        link = keep_fd(ctx, points, &fd_dir, name, fd, target, raw);
    }
    Read::Ok(())
}

/// [`scan_fds`] for the fds the BPF iterator listed ([`super::bpf`]): only those on tmpfs or
/// hugetlbfs, read and judged as the walk would, relative to the process's directory.
fn scan_listed_fds(
    ctx: &Context,
    dir: &ProcDir,
    mnt_key: Option<u64>,
    fds: &[super::bpf::FdRecord],
    raw: &mut RawProcess,
) -> Read<()> {
    let points = ctx.mount_points.get(&mnt_key);
    for f in fds {
        let name = format!("fd/{}", f.fd);
        match rustix::fs::readlinkat(dir.as_fd(), name.as_str(), Vec::new()) {
            Ok(target) => {
                keep_fd(ctx, points, dir, &name, f.fd, target.into_bytes(), raw);
            }
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => return Read::Denied,
            Err(_) => {} // closed meanwhile, or the process exited
        }
    }
    Read::Ok(())
}

/// Keeps fd `fd` (its link `name` under `dir` reads `target`) in `raw` when it names a memfd or
/// a file under a tmpfs mount; returns `target`'s buffer for reuse.
fn keep_fd(
    ctx: &Context,
    points: Option<&Vec<std::path::PathBuf>>,
    dir: impl AsFd,
    name: impl rustix::path::Arg,
    fd: i32,
    target: Vec<u8>,
    raw: &mut RawProcess,
) -> Vec<u8> {
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
        return target;
    }
    if let Ok(st) = rustix::fs::statat(dir, name, rustix::fs::AtFlags::empty()) {
        let st = InodeStat::from(st);
        if st.regular && ctx.is_shmem_dev(st.dev) {
            raw.fds.push((fd, target, st));
        } else if st.regular && !ctx.own_devs.contains(&st.dev) {
            raw.unsure_fds.push((fd, target, st));
        }
    }
    Vec::with_capacity(256)
}

/// Once every mount namespace's table is read: the mappings and fds [`read_body`] kept aside
/// that turned out to be on shared memory (another namespace's tmpfs) join the others, in the
/// order a read after the tables would have given them.
pub(crate) fn reclassify(ctx: &Context, p: &mut Process, raw: &mut RawProcess) {
    let mut moved = false;
    for (e, smaps) in std::mem::take(&mut raw.unsure_maps) {
        if !ctx.is_shmem_dev(e.dev()) {
            continue;
        }
        raw.other_anon_dev_mapped = raw
            .other_anon_dev_mapped
            .saturating_sub(e.end.saturating_sub(e.start));
        if let Some((pss, rss, private)) = smaps {
            raw.smaps_by_start.insert(e.start, (pss, rss));
            if let Some(t) = p.smaps.as_mut() {
                t.uss_bytes = t.uss_bytes.saturating_sub(private);
            }
        }
        raw.maps.push(e);
        moved = true;
    }
    if moved {
        raw.maps.sort_by_key(|e| e.start);
    }
    let mut moved = false;
    for (fd, target, st) in std::mem::take(&mut raw.unsure_fds) {
        if ctx.is_shmem_dev(st.dev) {
            raw.fds.push((fd, target, st));
            moved = true;
        }
    }
    if moved {
        raw.fds.sort_by_key(|f| f.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`by_rollup`] against smaps for one mapping: a child maps 64 pages of an anonymous
    /// shared region and writes pages 4..24, of which this process wrote 4..8 as well: 20
    /// pages resident in the child, 16 of them its alone, PSS 16 pages and 4 halves. (Pages of
    /// shared mappings are not copied at fork, so no other mapping of the child has any.)
    #[test]
    fn rollup_and_pagemap_give_what_smaps_gives() {
        let _mappings = super::super::guards::hold_mappings();
        use super::super::guards::{fork_paused, Region};
        let pg = rustix::param::page_size();
        let len = 64 * pg;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_SHARED | libc::MAP_ANONYMOUS;
        // SAFETY: a new mapping, unmapped by `Region`.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
        assert_ne!(addr, libc::MAP_FAILED);
        let region = Region(addr as usize, len);
        let base = region.0;
        let write = |range: std::ops::Range<usize>| {
            for i in range {
                // SAFETY: page i < 64 of the mapping above.
                unsafe { std::ptr::write_volatile((base + i * pg) as *mut u8, 1) };
            }
        };
        write(4..8);
        let child = fork_paused(|| write(4..24));
        let pid = child.0;
        let proc_dir = format!("/proc/{pid}");
        let dir = super::super::read::open_dir(std::path::Path::new(&proc_dir)).unwrap();
        let maps = std::fs::read(format!("{proc_dir}/maps")).unwrap();
        let entry = maps::parse(&maps).find(|e| e.start == base as u64).unwrap();
        let read = MapsRead {
            entries: vec![(entry, None)],
            pss: 0,
            private: 0,
        };
        let mut buf = Vec::new();
        let got = by_rollup(dir.as_fd(), read, &mut buf, pg as u64)
            .unwrap()
            .expect("no shmem mapped by PMD");
        let smaps = std::fs::read(format!("{proc_dir}/smaps")).unwrap();
        let vma = smaps::parse(&smaps)
            .into_iter()
            .find(|v| v.entry.start == base as u64)
            .unwrap();
        let pg = pg as u64;
        let want = (Some(16 * pg + 4 * pg / 2), 20 * pg, 16 * pg);
        assert_eq!(got.entries[0].1, Some(want));
        assert_eq!(Some((Some(vma.pss), vma.rss, vma.private)), Some(want));
        drop(region);
    }

    #[test]
    fn the_cheapest_way_is_chosen() {
        let vma = |pages: u64| VmaRecord {
            start: 0,
            end: pages * 4096,
            shared: true,
            offset: 0,
            dev: 1,
            inode: 7,
        };
        // 300 PHP-FPM workers: ~155 mappings, 64 MiB of opcache, ~3 MiB of it resident.
        let fpm = PssHint {
            mappings: 155,
            shmem_bytes: 3 << 20,
            other_bytes: 12 << 20,
        };
        assert!(fpm.rollup_cheaper(&[vma(16384), vma(86)], 4096));
        // The lab pool of bench/ratios.sh: 36 mappings, all 64 MiB resident.
        let lab = PssHint {
            mappings: 36,
            shmem_bytes: 64 << 20,
            other_bytes: 1500 << 10,
        };
        assert!(!lab.rollup_cheaper(&[vma(16384)], 4096));
        // Counting beats both where the objects' pages are most of a process's, not elsewhere.
        assert!(lab.counting_cheaper(4096));
        assert!(!fpm.counting_cheaper(4096));
        let no_objects = PssHint {
            shmem_bytes: 0,
            ..lab
        };
        assert!(!no_objects.counting_cheaper(4096));
    }

    /// A mapping of a file whose path is longer than `PATH_MAX` (the kernel's name buffer for
    /// `PROCMAP_QUERY`): the walk gives way to the text, which names it in full.
    #[test]
    fn a_name_too_long_for_the_query_is_read_as_text() {
        use rustix::fs::{Mode, OFlags};
        let top = tempfile::Builder::new()
            .prefix("shmwho-body-test")
            .tempdir_in("/dev/shm")
            .unwrap();
        let part = "d".repeat(240);
        let mut dir = rustix::fs::open(top.path(), OFlags::DIRECTORY, Mode::empty()).unwrap();
        let mut path = top.path().as_os_str().as_encoded_bytes().to_vec();
        while path.len() <= procmap::NAME_BUF {
            rustix::fs::mkdirat(&dir, part.as_str(), Mode::RWXU).unwrap();
            dir =
                rustix::fs::openat(&dir, part.as_str(), OFlags::DIRECTORY, Mode::empty()).unwrap();
            path.push(b'/');
            path.extend_from_slice(part.as_bytes());
        }
        let file = rustix::fs::openat(
            &dir,
            "f",
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap();
        path.extend_from_slice(b"/f");
        let len = rustix::param::page_size();
        rustix::fs::ftruncate(&file, len as u64).unwrap();
        // SAFETY: a new shared mapping at an address the kernel picks, unmapped below.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &file,
                0,
            )
        }
        .unwrap();
        let start = p as u64;

        let maps = std::fs::File::open("/proc/self/maps").unwrap();
        let mut name = vec![0; procmap::NAME_BUF];
        let walked = procmap::walk(maps.as_fd(), &mut name, |e| e.start == start).unwrap();
        let me = rustix::fs::open(
            "/proc/self",
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let read = read_one(me.as_fd(), false, &[], &mut Vec::new());
        // SAFETY: our own mapping, made above, not referenced by anything else.
        unsafe { rustix::mm::munmap(p, len) }.unwrap();

        match walked {
            Walked::Text => {}
            Walked::Unsupported => {
                eprintln!("skipped: this kernel has no PROCMAP_QUERY (6.11+)");
                return;
            }
            Walked::Entries(e) => panic!("walked a name past PATH_MAX: {e:?}"),
        }
        let read = read.unwrap();
        let ours: Vec<_> = read.entries.iter().filter(|e| e.0.start == start).collect();
        assert_eq!(ours.len(), 1, "{:?}", read.entries);
        assert_eq!(ours[0].0.path, path);
        assert!(ours[0].0.shared);
    }
}
