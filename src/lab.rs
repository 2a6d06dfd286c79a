//! `shmwho lab`: build a known shared-memory situation on this host and print its ground truth.
//!
//! [`run`] recreates the write-up's experiment. The master maps an anonymous shared region and
//! never touches it; child 1 writes its first quarter and child 2 its first half, so `ps` shows
//! the master at ~0 RSS while the object holds half its size. Optional SysV, memfd, POSIX shm and
//! tmpfs objects cover every kind shmwho knows, each in the situation that hides it best: a SysV
//! segment its creator never attaches, a memfd held only as an fd, a POSIX object nobody holds, a
//! tmpfs file mapped but never touched by its holder. [`run_pool`] starts a PHP-FPM-like pool of
//! workers that all touch one region, for benchmarks.
//!
//! The truth printed is computed from the pages written (one byte per page), not measured, so
//! it can check shmwho's measurements. Where the master can measure an object cheaply
//! (`st_blocks`, `/proc/sysvipc/shm`) it compares and warns on stderr if the kernel disagrees,
//! for instance because a tmpfs mount allocates huge pages.
//!
//! After `fork` the children run only async-signal-safe code: raw libc calls on values computed
//! before the fork, no allocation, no locks, no output. Everything created is removed on every
//! exit path (success, error, signal) by `Lab`'s `Drop`.

use crate::signals::{self, StopFlag};
use anyhow::{anyhow, bail, Context as _, Result};
use rustix::fs::{FsWord, MemfdFlags, Mode, OFlags};
use rustix::mm::{Advice, MapFlags, ProtFlags};
use serde::Serialize;
use std::ffi::{c_int, c_void};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

/// The experiment [`run`] builds. Sizes are in bytes and rounded up to whole pages.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Size of the anonymous shared region (`MAP_SHARED|MAP_ANONYMOUS`).
    pub size: u64,
    /// Children exit after writing (the write-up's second phase).
    pub exit_children: bool,
    /// Add a SysV segment of this size, created by the master and attached only by child 1.
    pub sysv: Option<u64>,
    /// Add a memfd of this size, held by the master only as an fd and mapped by child 2.
    pub memfd: Option<u64>,
    /// Add a POSIX shm object of this size, written by the master and then held by nobody.
    pub posix: Option<u64>,
    /// Add a file of this size in this directory, which must be on a tmpfs other than /dev/shm;
    /// the master writes half of it and keeps it mapped without touching the mapping.
    pub tmpfs: Option<(PathBuf, u64)>,
    /// Exit by itself after this many seconds; `None` waits for SIGINT, SIGTERM or SIGHUP.
    pub for_secs: Option<f64>,
    /// Print the ground truth as one line of JSON instead of a table.
    pub json: bool,
}

/// The pool [`run_pool`] starts.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Number of workers, each touching every page of the shared region.
    pub workers: u32,
    /// Size of the shared region in bytes, rounded up to whole pages.
    pub shared: u64,
    /// Exit by itself after this many seconds; `None` waits for SIGINT, SIGTERM or SIGHUP.
    pub for_secs: Option<f64>,
    /// Print the pool as one line of JSON instead of a sentence.
    pub json: bool,
}

/// `statfs` `f_type` of tmpfs.
const TMPFS_MAGIC: FsWord = 0x0102_1994;
/// memfd name: `/memfd:shmwho-lab (deleted)` in maps.
const MEMFD_NAME: &str = "shmwho-lab";
/// Prefix of the POSIX shm object and the tmpfs file; the master's pid follows.
const FILE_PREFIX: &str = "shmwho-lab-";
/// The byte written into each page touched: anything non-zero.
const FILL: u8 = 0x5a;
/// How long the master sleeps between looks at the signal flag, in milliseconds.
const TICK_MS: u64 = 50;

// What a child reports through the pipe. The experiment's children send 8 bytes
// (index, stage, 0, 0, errno as i32 LE); pool workers send the stage byte alone.
const ST_OK: u8 = 1;
const ST_PRCTL: u8 = 2;
const ST_SHMAT: u8 = 3;
const ST_MMAP_MEMFD: u8 = 4;
const MSG_LEN: usize = 8;

/// Exit status of a child whose master died before it could set PR_SET_PDEATHSIG.
const EXIT_ORPHAN: c_int = 3;
/// Exit status of a child that failed and reported why.
const EXIT_FAILED: c_int = 4;

fn stage_text(stage: u8) -> &'static str {
    match stage {
        ST_PRCTL => "prctl(PR_SET_PDEATHSIG)",
        ST_SHMAT => "shmat of the SysV segment",
        ST_MMAP_MEMFD => "mmap of the memfd",
        _ => "an unknown step",
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes and the truth, as pure functions.

/// `size` rounded up to whole pages, or why it cannot be used.
fn round_to_pages(what: &str, size: u64, page: u64) -> Result<u64, String> {
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
struct Plan {
    page: u64,
    anon: u64,
    sysv: Option<u64>,
    memfd: Option<u64>,
    posix: Option<u64>,
    tmpfs: Option<u64>,
}

impl Plan {
    fn new(opts: &LabOptions, page: u64) -> Result<Plan> {
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

    fn bytes(&self, pages: u64) -> u64 {
        pages * self.page
    }

    /// Pages of the anonymous region child 1 writes: the first quarter.
    fn child1_anon(&self) -> u64 {
        self.anon / 4
    }

    /// Pages of the anonymous region child 2 writes: the first half, overlapping child 1's.
    fn child2_anon(&self) -> u64 {
        self.anon / 2
    }

    /// Resident pages of the anonymous region: the union of both children's writes.
    fn anon_resident(&self) -> u64 {
        self.child1_anon().max(self.child2_anon())
    }
}

/// Pages child 1 writes into the SysV segment: the first half.
fn sysv_written(pages: u64) -> u64 {
    pages / 2
}

/// Pages child 2 writes into the memfd: the first quarter.
fn memfd_written(pages: u64) -> u64 {
    pages / 4
}

/// Pages the master writes into the POSIX object: the first three quarters.
fn posix_written(pages: u64) -> u64 {
    pages * 3 / 4
}

/// Pages the master writes into the tmpfs file: the first half.
fn tmpfs_written(pages: u64) -> u64 {
    pages / 2
}

/// `(st_dev as "major:minor", st_ino)`: what identifies a shmem inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    dev: String,
    ino: u64,
}

impl FileId {
    fn of(st: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: format!(
                "{}:{}",
                rustix::fs::major(st.st_dev),
                rustix::fs::minor(st.st_dev)
            ),
            ino: st.st_ino,
        }
    }
}

/// The identities the experiment created, gathered for [`build_truth`].
#[derive(Debug, Clone)]
struct Ids {
    master: i32,
    children: [i32; 2],
    anon: FileId,
    sysv: Option<i32>,
    memfd: Option<FileId>,
    /// Identity and path (`/dev/shm/...`).
    posix: Option<(FileId, String)>,
    tmpfs: Option<(FileId, String)>,
}

#[derive(Serialize, Debug)]
struct Truth {
    lab: &'static str,
    master_pid: i32,
    page_size: u64,
    children: Vec<ChildTruth>,
    objects: Vec<ObjectTruth>,
}

#[derive(Serialize, Debug)]
struct ChildTruth {
    pid: i32,
    /// Bytes of the pages this child wrote, over all objects.
    wrote_bytes: u64,
    alive: bool,
    /// The same, object by object.
    wrote: Vec<Wrote>,
}

#[derive(Serialize, Debug)]
struct Wrote {
    kind: &'static str,
    bytes: u64,
}

#[derive(Serialize, Debug)]
struct ObjectTruth {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    inode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shmid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    size_bytes: u64,
    resident_bytes: u64,
    holders: Vec<HolderTruth>,
    owner_pid: Option<i32>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
struct HolderTruth {
    pid: i32,
    via: &'static str,
}

fn map(pid: i32) -> HolderTruth {
    HolderTruth { pid, via: "map" }
}

fn fd(pid: i32) -> HolderTruth {
    HolderTruth { pid, via: "fd" }
}

fn file_object(kind: &'static str, id: &FileId) -> ObjectTruth {
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
fn build_truth(plan: &Plan, ids: &Ids, alive: bool) -> Truth {
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
struct PoolTruth {
    lab: &'static str,
    master_pid: i32,
    workers: u32,
    worker_pids: Vec<i32>,
    inode: u64,
    dev: String,
    size_bytes: u64,
    resident_bytes: u64,
}

/// `1536` → "1.5 KiB", `268435456` → "256 MiB".
fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut scale = 1u64;
    while unit + 1 < UNITS.len() && bytes >= scale * 1024 {
        scale *= 1024;
        unit += 1;
    }
    if bytes % scale == 0 {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", bytes as f64 / scale as f64, UNITS[unit])
    }
}

/// Left-aligned columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn holders_text(holders: &[HolderTruth]) -> String {
    if holders.is_empty() {
        return "none".to_string();
    }
    holders
        .iter()
        .map(|h| format!("{} {}", h.pid, h.via))
        .collect::<Vec<_>>()
        .join(", ")
}

fn hold_text(hold_for: Option<Duration>) -> String {
    match hold_for {
        Some(d) => format!(
            "Holding for {} s (or until Ctrl-C/SIGTERM); everything is removed on exit.",
            d.as_secs_f64()
        ),
        None => "Holding until Ctrl-C or SIGTERM; everything is removed on exit.".to_string(),
    }
}

/// The human rendering of the experiment's truth.
fn human(truth: &Truth, hold_for: Option<Duration>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shmwho lab: master pid {}, page size {} bytes",
        truth.master_pid, truth.page_size
    );
    for (i, c) in truth.children.iter().enumerate() {
        let parts: Vec<String> = c
            .wrote
            .iter()
            .map(|w| format!("{} of {}", fmt_bytes(w.bytes), w.kind))
            .collect();
        let _ = writeln!(
            out,
            "  child {}: pid {}, wrote {}, {}",
            i + 1,
            c.pid,
            parts.join(" + "),
            if c.alive { "alive" } else { "exited" }
        );
    }
    out.push('\n');
    let mut rows = vec![vec![
        "KIND".to_string(),
        "OBJECT".to_string(),
        "SIZE".to_string(),
        "RESIDENT".to_string(),
        "OWNER".to_string(),
        "HOLDERS".to_string(),
    ]];
    for o in &truth.objects {
        let id = match (o.kind, o.shmid, o.inode) {
            ("sysv", Some(shmid), _) => format!("shmid {shmid}, key {}", o.key.unwrap_or(0)),
            ("memfd", _, Some(ino)) => format!("inode {ino}, memfd:{}", o.name.unwrap_or("")),
            (_, _, Some(ino)) => match &o.path {
                Some(p) => format!("inode {ino}, {p}"),
                None => format!("inode {ino}"),
            },
            _ => String::new(),
        };
        rows.push(vec![
            o.kind.to_string(),
            id,
            fmt_bytes(o.size_bytes),
            fmt_bytes(o.resident_bytes),
            o.owner_pid.map_or("-".to_string(), |p| p.to_string()),
            holders_text(&o.holders),
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    let resident = truth.objects.first().map_or(0, |o| o.resident_bytes);
    let _ = writeln!(
        out,
        "ps will show the master's RSS as ~0 while the object holds {} ({resident} bytes).",
        fmt_bytes(resident)
    );
    let anon_wrote: Vec<u64> = truth
        .children
        .iter()
        .map(|c| c.wrote.first().map_or(0, |w| w.bytes))
        .collect();
    if truth.children.iter().all(|c| c.alive) {
        let _ = writeln!(
            out,
            "The children's RSS include {} and {} of it: summing RSS counts {} for {}.",
            fmt_bytes(anon_wrote[0]),
            fmt_bytes(anon_wrote[1]),
            fmt_bytes(anon_wrote.iter().sum()),
            fmt_bytes(resident)
        );
    } else {
        let _ = writeln!(
            out,
            "The children have exited: no process's RSS includes these pages, yet `free` counts them as shared."
        );
    }
    out.push_str(&hold_text(hold_for));
    out.push('\n');
    out
}

fn human_pool(truth: &PoolTruth, hold_for: Option<Duration>) -> String {
    let pids = match (truth.worker_pids.first(), truth.worker_pids.last()) {
        (Some(a), Some(b)) if a != b => format!("pids {a} … {b}"),
        (Some(a), _) => format!("pid {a}"),
        _ => String::new(),
    };
    format!(
        "shmwho lab pool: master pid {} and {} worker{} ({pids}) share a {} region (inode {}, dev {}).\n\
         Every worker has touched every page: each shows ~{} of RSS, the region holds {} once.\n{}\n",
        truth.master_pid,
        truth.workers,
        if truth.workers == 1 { "" } else { "s" },
        fmt_bytes(truth.size_bytes),
        truth.inode,
        truth.dev,
        fmt_bytes(truth.size_bytes),
        fmt_bytes(truth.resident_bytes),
        hold_text(hold_for)
    )
}

/// `(dev "major:minor", inode)` of the mapping starting at `start` in `/proc/PID/maps` text.
fn maps_entry(maps: &str, start: u64) -> Option<FileId> {
    maps.lines().find_map(|line| {
        let mut f = line.split_ascii_whitespace();
        let range = f.next()?;
        let s = u64::from_str_radix(range.split('-').next()?, 16).ok()?;
        if s != start {
            return None;
        }
        let _perms = f.next()?;
        let _offset = f.next()?;
        let (maj, min) = f.next()?.split_once(':')?;
        let ino = f.next()?.parse().ok()?;
        Some(FileId {
            dev: format!(
                "{}:{}",
                u32::from_str_radix(maj, 16).ok()?,
                u32::from_str_radix(min, 16).ok()?
            ),
            ino,
        })
    })
}

/// `rss + swap` of segment `shmid` from `/proc/sysvipc/shm` text.
fn sysv_rss_swap(text: &str, shmid: i32) -> Option<u64> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.get(1)?.parse::<i32>().ok()? != shmid {
            return None;
        }
        let rss: u64 = f.get(14)?.parse().ok()?;
        let swap: u64 = f.get(15)?.parse().ok()?;
        Some(rss + swap)
    })
}

/// An OS error without std's " (os error N)" suffix: "Invalid argument".
fn describe(e: impl Into<io::Error>) -> String {
    let text = e.into().to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

fn last_error() -> String {
    describe(io::Error::last_os_error())
}

fn hold_duration(for_secs: Option<f64>) -> Result<Option<Duration>> {
    for_secs
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| anyhow!("the duration must be a number of seconds >= 0, not {s}"))
        })
        .transpose()
}

fn fork_failed_message(started: u32, workers: u32, err: &str, nproc: Option<u64>) -> String {
    let limit = nproc.map_or("unlimited".to_string(), |n| n.to_string());
    format!(
        "fork failed after starting {started} of {workers} workers: {err}; raise the limit on \
         processes (`ulimit -u`, now {limit}) or kernel.pid_max / kernel.threads-max (sysctl)"
    )
}

fn describe_status(status: c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let hint = match sig {
            libc::SIGBUS => " (SIGBUS: the shmem mount is out of space?)",
            libc::SIGKILL => " (SIGKILL: the OOM killer?)",
            _ => "",
        };
        format!("was killed by signal {sig}{hint}")
    } else if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            EXIT_ORPHAN => "exited: its master was gone".to_string(),
            code => format!("exited with status {code}"),
        }
    } else {
        format!("ended with wait status {status:#x}")
    }
}

// ---------------------------------------------------------------------------------------------
// Children: async-signal-safe code only, on values prepared before the fork.

/// What every child needs, computed before the fork.
#[derive(Clone, Copy)]
struct ChildCommon {
    master: libc::pid_t,
    page: usize,
    /// Write end of the report pipe.
    report_fd: RawFd,
    /// Read end of the report pipe, closed in the child.
    read_fd: RawFd,
    /// `_exit(0)` after reporting instead of waiting to be killed.
    exit_after: bool,
}

#[derive(Clone, Copy)]
struct SysvJob {
    shmid: c_int,
    size: usize,
    write: usize,
}

#[derive(Clone, Copy)]
struct MemfdJob {
    fd: RawFd,
    size: usize,
    write: usize,
}

/// One experiment child's work. `anon` is the master's mapping, inherited by fork.
#[derive(Clone, Copy)]
struct ChildJob {
    index: u8,
    common: ChildCommon,
    anon: *mut u8,
    anon_size: usize,
    anon_write: usize,
    sysv: Option<SysvJob>,
    memfd: Option<MemfdJob>,
}

/// One pool worker's work: touch every page of `region`.
#[derive(Clone, Copy)]
struct WorkerJob {
    common: ChildCommon,
    region: *mut u8,
    len: usize,
}

fn errno() -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread's
    // lifetime; reading it is async-signal-safe.
    unsafe { *libc::__errno_location() }
}

fn child_exit(code: c_int) -> ! {
    // SAFETY: _exit ends the process without running destructors or atexit handlers, which is
    // exactly what a forked child must do; it is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// Writes all of `msg` to `fd`, retrying on EINTR; gives up silently on other errors (the
/// master then sees the child vanish and says so).
fn child_send(fd: RawFd, msg: &[u8]) {
    let mut done = 0;
    while done < msg.len() {
        let rest = &msg[done..];
        // SAFETY: `rest` is a live slice; write reads at most rest.len() bytes from it.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return;
        }
        done += n as usize;
    }
}

fn child_message(index: u8, stage: u8, err: c_int) -> [u8; MSG_LEN] {
    let e = err.to_le_bytes();
    [index, stage, 0, 0, e[0], e[1], e[2], e[3]]
}

/// First steps of every child: die with the master, take default signal actions (the master's
/// handlers only set a flag nobody reads here), close the pipe's read end, and let go of the
/// caller's terminal or pipes on stdin/stdout/stderr. Returns errno if PR_SET_PDEATHSIG fails.
fn child_setup(c: &ChildCommon) -> Result<(), c_int> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(errno());
    }
    // SAFETY: getppid takes no arguments and cannot fail.
    if unsafe { libc::getppid() } != c.master {
        // The master died between fork and prctl: nobody would ever kill this child.
        child_exit(EXIT_ORPHAN);
    }
    crate::signals::reset_in_child(&crate::signals::HANGUP);
    // SAFETY: closes the child's copy of the read end; the master keeps its own.
    unsafe { libc::close(c.read_fd) };
    // SAFETY: open takes a NUL-terminated literal; dup2/close act on fds of this child only.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for target in 0..=2 {
                libc::dup2(null, target);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// Writes one non-zero byte at the start of each page in `base .. base + len`.
///
/// # Safety
/// `base .. base + len` must be a writable mapping of this process, page-aligned at `base`,
/// that no Rust reference points into.
unsafe fn touch_pages(base: *mut u8, len: usize, page: usize) {
    // Fill the page tables in one call first (Linux 5.14+; older kernels say EINVAL and the
    // writes below fault the pages in one by one): half the time of faulting 16384 pages per
    // pool worker. It allocates exactly the pages the writes would.
    // SAFETY: madvise on a range of our own mapping; it changes no memory Rust can see.
    unsafe { libc::madvise(base.cast(), len, libc::MADV_POPULATE_WRITE) };
    let mut off = 0usize;
    while off < len {
        // SAFETY: off < len, so base + off lies inside the mapping the caller vouches for;
        // a volatile write so the store is really made.
        unsafe { ptr::write_volatile(base.add(off), FILL) };
        off += page;
    }
}

/// Best effort: base pages in this mapping even when THP for shmem is enabled, so the truth
/// (one page per byte written) holds.
fn child_no_huge_pages(addr: *mut c_void, len: usize) {
    // SAFETY: madvise only changes the VMA's flags; an invalid range fails with an errno.
    unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) };
}

/// Reports, closes the report pipe, then exits or waits to be killed.
fn child_finish(c: &ChildCommon, msg: &[u8]) -> ! {
    child_send(c.report_fd, msg);
    // SAFETY: closing our copy of the write end lets the master see EOF once every child has
    // reported or died.
    unsafe { libc::close(c.report_fd) };
    if c.exit_after {
        child_exit(0);
    }
    loop {
        // SAFETY: pause only sleeps until a signal; PR_SET_PDEATHSIG or the master's SIGKILL ends
        // the child.
        unsafe { libc::pause() };
    }
}

/// An experiment child's whole life.
///
/// # Safety
/// Call only in a child just forked from the master, with a job whose `anon` pointer is the
/// master's shared anonymous mapping of `anon_size` bytes (inherited by fork), whose memfd fd is
/// open in the child and whose shmid names an existing segment. Uses only async-signal-safe calls
/// and never returns.
unsafe fn experiment_child(job: &ChildJob) -> ! {
    let c = &job.common;
    if let Err(e) = child_setup(c) {
        child_send(c.report_fd, &child_message(job.index, ST_PRCTL, e));
        child_exit(EXIT_FAILED);
    }
    // SAFETY: the caller guarantees `anon` is the inherited mapping of anon_size bytes and
    // anon_write <= anon_size.
    unsafe { touch_pages(job.anon, job.anon_write.min(job.anon_size), c.page) };
    if let Some(s) = job.sysv {
        // SAFETY: shmat maps the segment at an address of the kernel's choosing; a failure is
        // reported as (void*)-1.
        let p = unsafe { libc::shmat(s.shmid, ptr::null(), 0) };
        if p as isize == -1 {
            child_send(c.report_fd, &child_message(job.index, ST_SHMAT, errno()));
            child_exit(EXIT_FAILED);
        }
        child_no_huge_pages(p, s.size);
        // SAFETY: p is a fresh read-write attachment of s.size bytes, and write <= size.
        unsafe { touch_pages(p.cast(), s.write.min(s.size), c.page) };
    }
    if let Some(m) = job.memfd {
        // SAFETY: a new shared mapping of the memfd at an address of the kernel's choosing; it
        // aliases nothing.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                m.size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                m.fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            child_send(
                c.report_fd,
                &child_message(job.index, ST_MMAP_MEMFD, errno()),
            );
            child_exit(EXIT_FAILED);
        }
        child_no_huge_pages(p, m.size);
        // SAFETY: p is the mapping of m.size bytes just made, and write <= size.
        unsafe { touch_pages(p.cast(), m.write.min(m.size), c.page) };
    }
    child_finish(c, &child_message(job.index, ST_OK, 0))
}

/// A pool worker's whole life.
///
/// # Safety
/// As for [`experiment_child`]: `region` must be the master's inherited shared mapping of
/// `len` bytes.
unsafe fn pool_worker(job: &WorkerJob) -> ! {
    let c = &job.common;
    if child_setup(c).is_err() {
        child_send(c.report_fd, &[ST_PRCTL]);
        child_exit(EXIT_FAILED);
    }
    // SAFETY: region is the inherited mapping of len bytes, per the caller.
    unsafe { touch_pages(job.region, job.len, c.page) };
    child_finish(c, &[ST_OK])
}

/// Forks a child that runs `child(arg)`.
///
/// # Safety
/// `child` runs in the forked child of a process that may have other threads (whose locks it
/// may inherit held): it must use only async-signal-safe operations and never return, so that
/// no code of the parent's (destructors, the lab's cleanup) ever runs in the child. Its own
/// safety contract must hold for `arg` in the child.
unsafe fn fork_child<T>(child: unsafe fn(&T) -> !, arg: &T) -> io::Result<libc::pid_t> {
    // SAFETY: the caller guarantees the child branch only runs async-signal-safe code and
    // diverges; the parent branch continues normally.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: `child`'s contract holds for `arg`, per the caller.
        0 => unsafe { child(arg) },
        pid => Ok(pid),
    }
}

// ---------------------------------------------------------------------------------------------
// The master's resources, removed on drop.

struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

struct Mapping {
    addr: *mut c_void,
    len: usize,
}

/// Everything the lab created. Dropping it kills and reaps the children, removes the SysV
/// segment, the POSIX object and the tmpfs file, unmaps and closes, then says so on stderr.
struct Lab {
    children: Vec<Child>,
    sysv: Option<c_int>,
    /// shm_open name (`/shmwho-lab-PID`).
    posix: Option<String>,
    tmpfs: Option<PathBuf>,
    maps: Vec<Mapping>,
    memfd: Option<OwnedFd>,
    /// Dropped after the cleanup above, so a signal during cleanup is still caught.
    signals: StopFlag,
}

impl Lab {
    fn new() -> Result<Lab> {
        Ok(Lab {
            children: Vec::new(),
            sysv: None,
            posix: None,
            tmpfs: None,
            maps: Vec::new(),
            memfd: None,
            signals: StopFlag::register(&signals::HANGUP).context("installing a signal handler")?,
        })
    }

    fn check_signal(&self) -> Result<()> {
        if self.signals.raised() {
            bail!("interrupted by a signal before the lab was ready");
        }
        Ok(())
    }

    /// A fresh `MAP_SHARED|MAP_ANONYMOUS` region the master never touches.
    fn map_anon(&mut self, len: usize) -> Result<*mut u8> {
        // SAFETY: a new mapping at an address the kernel chooses (null hint) aliases no Rust
        // object; nothing in Rust ever borrows it.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(|e| anyhow!("mmap {len} bytes MAP_SHARED|MAP_ANONYMOUS: {}", describe(e)))?;
        self.maps.push(Mapping { addr: p, len });
        // Base pages even if THP for shmem is on, so one byte written is one page resident.
        // Best effort: inherited by the children through the VMA flags.
        // SAFETY: p..p+len is the mapping just created; madvise only changes VMA flags.
        let _ = unsafe { rustix::mm::madvise(p, len, Advice::LinuxNoHugepage) };
        Ok(p.cast())
    }

    fn create_sysv(&mut self, bytes: u64) -> Result<c_int> {
        // SAFETY: shmget takes integers only and touches none of our memory.
        let id =
            unsafe { libc::shmget(libc::IPC_PRIVATE, bytes as usize, 0o600 | libc::IPC_CREAT) };
        if id < 0 {
            bail!("shmget {bytes} bytes: {}", last_error());
        }
        self.sysv = Some(id);
        Ok(id)
    }

    fn create_memfd(&mut self, bytes: u64) -> Result<FileId> {
        // MFD_CLOEXEC: fork keeps the fd (the children inherit it), only exec would close it.
        let fd = rustix::fs::memfd_create(MEMFD_NAME, MemfdFlags::CLOEXEC)
            .map_err(|e| anyhow!("memfd_create {MEMFD_NAME}: {}", describe(e)))?;
        rustix::fs::ftruncate(&fd, bytes)
            .map_err(|e| anyhow!("ftruncate memfd to {bytes} bytes: {}", describe(e)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| anyhow!("fstat memfd: {}", describe(e)))?;
        self.memfd = Some(fd);
        Ok(FileId::of(&st))
    }

    /// The POSIX object: written by the master with pwrite, then closed. Returns its identity
    /// and `/dev/shm` path.
    fn create_posix(
        &mut self,
        master: i32,
        bytes: u64,
        write: u64,
        page: u64,
    ) -> Result<(FileId, String)> {
        let name = format!("/{FILE_PREFIX}{master}");
        let path = format!("/dev/shm{name}");
        let fd = rustix::shm::open(
            name.as_str(),
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| {
            let hint = if e == rustix::io::Errno::EXIST {
                format!(" (left by an earlier lab? remove {path})")
            } else {
                String::new()
            };
            anyhow!("shm_open {name}: {}{hint}", describe(e))
        })?;
        self.posix = Some(name);
        let id = write_file(&fd, &path, bytes, write, page)?;
        Ok((id, path))
        // fd closed here: the object is held by nobody.
    }

    /// The tmpfs file: written by the master with pwrite, then mapped read-only (never
    /// touched) and closed, so the master holds it only through the mapping.
    fn create_tmpfs(
        &mut self,
        dir: &Path,
        master: i32,
        bytes: u64,
        write: u64,
        page: u64,
    ) -> Result<(FileId, String)> {
        let path = dir.join(format!("{FILE_PREFIX}{master}"));
        let shown = path.display().to_string();
        let fd = rustix::fs::open(
            &path,
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| anyhow!("create {shown}: {}", describe(e)))?;
        self.tmpfs = Some(path);
        let id = write_file(&fd, &shown, bytes, write, page)?;
        let len = bytes as usize;
        // SAFETY: a new read-only shared mapping of our file at an address the kernel chooses;
        // it aliases nothing and is never read.
        let p = unsafe {
            rustix::mm::mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| anyhow!("mmap {shown}: {}", describe(e)))?;
        self.maps.push(Mapping { addr: p, len });
        // Only the master holds it: the children forked later must not inherit the mapping.
        // SAFETY: p..p+len is the mapping just created; madvise only changes VMA flags.
        unsafe { rustix::mm::madvise(p, len, Advice::LinuxDontFork) }
            .map_err(|e| anyhow!("madvise(MADV_DONTFORK) on {shown}: {}", describe(e)))?;
        Ok((id, shown))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let warn = |what: String| eprintln!("shmwho lab: cleanup: {what}");
        for c in self.children.iter().filter(|c| !c.reaped) {
            // SAFETY: kill takes integers only; the pid is our unreaped child, so it cannot have
            // been recycled for another process.
            if unsafe { libc::kill(c.pid, libc::SIGKILL) } != 0 && errno() != libc::ESRCH {
                warn(format!("kill {}: {}", c.pid, last_error()));
            }
        }
        for c in self.children.iter_mut().filter(|c| !c.reaped) {
            if let Err(e) = wait_for(c.pid) {
                warn(format!("waitpid {}: {}", c.pid, describe(e)));
            }
            c.reaped = true;
        }
        if let Some(id) = self.sysv.take() {
            // SAFETY: IPC_RMID ignores the buffer argument, so null is allowed.
            if unsafe { libc::shmctl(id, libc::IPC_RMID, ptr::null_mut()) } != 0 {
                warn(format!("shmctl({id}, IPC_RMID): {}", last_error()));
            }
        }
        if let Some(name) = self.posix.take() {
            if let Err(e) = rustix::shm::unlink(name.as_str()) {
                warn(format!("shm_unlink {name}: {}", describe(e)));
            }
        }
        if let Some(path) = self.tmpfs.take() {
            if let Err(e) = rustix::fs::unlink(&path) {
                warn(format!("unlink {}: {}", path.display(), describe(e)));
            }
        }
        for m in self.maps.drain(..) {
            // SAFETY: each mapping was created by this Lab, is unmapped once, and no Rust
            // reference points into it.
            if let Err(e) = unsafe { rustix::mm::munmap(m.addr, m.len) } {
                warn(format!("munmap: {}", describe(e)));
            }
        }
        self.memfd = None;
        eprintln!("shmwho lab: cleaned up");
    }
}

/// waitpid(pid), retrying on EINTR; returns the wait status.
fn wait_for(pid: libc::pid_t) -> io::Result<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into our local and nothing else.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// waitpid(pid, WNOHANG): `Some(status)` if the child has ended.
fn try_wait(pid: libc::pid_t) -> Option<c_int> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into our local and nothing else.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(status)
}

/// ftruncate to `bytes`, pwrite one byte into each of the first `write` bytes' pages, fstat.
fn write_file(fd: &OwnedFd, shown: &str, bytes: u64, write: u64, page: u64) -> Result<FileId> {
    rustix::fs::ftruncate(fd, bytes)
        .map_err(|e| anyhow!("ftruncate {shown} to {bytes} bytes: {}", describe(e)))?;
    let mut off = 0;
    while off < write {
        match rustix::io::pwrite(fd, &[FILL], off) {
            Ok(1) => off += page,
            Ok(_) => bail!("pwrite {shown} at offset {off}: nothing written"),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => bail!("pwrite {shown} at offset {off}: {}", describe(e)),
        }
    }
    let st = rustix::fs::fstat(fd).map_err(|e| anyhow!("fstat {shown}: {}", describe(e)))?;
    check_measured(shown, st.st_blocks as u64 * 512, write);
    Ok(FileId::of(&st))
}

/// Warns when the kernel's count differs from what was written: the truth stays what was
/// written, but shmwho will (rightly) report the kernel's figure.
fn check_measured(what: &str, measured: u64, written: u64) {
    if measured != written {
        eprintln!(
            "shmwho lab: warning: the kernel counts {measured} bytes in {what}, not the {written} \
             written (huge pages on this mount? swap?); the truth printed is what was written"
        );
    }
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

fn master_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// `dir` must be on a tmpfs other than the one at /dev/shm (files there are POSIX shm objects).
fn check_tmpfs_dir(dir: &Path) -> Result<()> {
    let shown = dir.display();
    let fs = rustix::fs::statfs(dir).map_err(|e| anyhow!("statfs {shown}: {}", describe(e)))?;
    if fs.f_type != TMPFS_MAGIC {
        bail!(
            "{shown} is not on tmpfs (filesystem type {:#x}); give a tmpfs directory such as /run \
             or mount one: mount -t tmpfs none DIR",
            fs.f_type
        );
    }
    let dir_dev = rustix::fs::stat(dir)
        .map_err(|e| anyhow!("stat {shown}: {}", describe(e)))?
        .st_dev;
    if let Ok(shm) = rustix::fs::stat("/dev/shm") {
        if shm.st_dev == dir_dev {
            bail!(
                "{shown} is on the /dev/shm tmpfs, where files are POSIX shm objects; give \
                 another tmpfs directory such as /run"
            );
        }
    }
    Ok(())
}

/// Identity of the anonymous shared mapping at `addr`, from /proc/self/maps.
fn anon_identity(addr: *mut u8) -> Result<FileId> {
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    maps_entry(&maps, addr as u64)
        .ok_or_else(|| anyhow!("no line for address {:#x} in /proc/self/maps", addr as u64))
}

/// Compares the region's `st_blocks` with the truth, when map_files can be stat'ed (root or
/// CAP_CHECKPOINT_RESTORE); silent otherwise.
fn check_anon(addr: *mut u8, len: usize, resident: u64) {
    let start = addr as u64;
    let link = format!("/proc/self/map_files/{start:x}-{:x}", start + len as u64);
    if let Ok(st) = rustix::fs::stat(link.as_str()) {
        check_measured(
            "the anonymous shared region",
            st.st_blocks as u64 * 512,
            resident,
        );
    }
}

fn check_sysv(shmid: c_int, resident: u64) {
    if let Ok(text) = std::fs::read_to_string("/proc/sysvipc/shm") {
        if let Some(measured) = sysv_rss_swap(&text, shmid) {
            check_measured(&format!("SysV segment {shmid}"), measured, resident);
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes exactly two fds into the two-element array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", last_error());
    }
    // SAFETY: both fds were just created by pipe2 and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

enum Reports {
    Complete,
    /// Every write end closed before `want` bytes arrived: a child died.
    Eof,
    Interrupted,
}

/// Reads up to `want` bytes from the children's pipe into `sink`, waking every tick to look at
/// the signal flag.
fn read_reports(
    fd: &OwnedFd,
    want: usize,
    signals: &StopFlag,
    mut sink: impl FnMut(&[u8]),
) -> Result<Reports> {
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while got < want {
        if signals.raised() {
            return Ok(Reports::Interrupted);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and the count says one.
        let r = unsafe { libc::poll(&mut pfd, 1, TICK_MS as c_int) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            bail!("poll on the children's pipe: {}", last_error());
        }
        if r == 0 {
            continue;
        }
        let max = (want - got).min(buf.len());
        match rustix::io::read(fd, &mut buf[..max]) {
            Ok(0) => return Ok(Reports::Eof),
            Ok(n) => {
                sink(&buf[..n]);
                got += n;
            }
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
            Err(e) => bail!("read from the children's pipe: {}", describe(e)),
        }
    }
    Ok(Reports::Complete)
}

/// Waits for a signal or for `hold_for` to pass.
fn hold(signals: &StopFlag, hold_for: Option<Duration>) {
    let deadline = hold_for.and_then(|d| Instant::now().checked_add(d));
    let tick = Duration::from_millis(TICK_MS);
    while !signals.raised() {
        let nap = match deadline {
            Some(end) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                left.min(tick)
            }
            // No deadline, or one so far away that it overflows: until a signal.
            None => tick,
        };
        std::thread::sleep(nap);
    }
}

fn print_line(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The two entry points.

/// Builds the experiment, prints its ground truth, holds it until a signal or `for_secs`, and
/// removes everything (also on error).
pub fn run(opts: &LabOptions) -> Result<()> {
    let page = page_size();
    let plan = Plan::new(opts, page)?;
    let hold_for = hold_duration(opts.for_secs)?;
    if let Some((dir, _)) = &opts.tmpfs {
        check_tmpfs_dir(dir)?;
    }
    let master = master_pid();
    let mut lab = Lab::new()?;

    let anon_size = plan.bytes(plan.anon) as usize;
    let anon = lab.map_anon(anon_size)?;
    let anon_id = anon_identity(anon)?;
    let shmid = match plan.sysv {
        Some(pages) => Some(lab.create_sysv(plan.bytes(pages))?),
        None => None,
    };
    let memfd_id = match plan.memfd {
        Some(pages) => Some(lab.create_memfd(plan.bytes(pages))?),
        None => None,
    };
    let posix = match plan.posix {
        Some(pages) => Some(lab.create_posix(
            master,
            plan.bytes(pages),
            plan.bytes(posix_written(pages)),
            page,
        )?),
        None => None,
    };
    let tmpfs = match (&opts.tmpfs, plan.tmpfs) {
        (Some((dir, _)), Some(pages)) => Some(lab.create_tmpfs(
            dir,
            master,
            plan.bytes(pages),
            plan.bytes(tmpfs_written(pages)),
            page,
        )?),
        _ => None,
    };

    let (read_end, write_end) = pipe()?;
    let common = ChildCommon {
        master,
        page: page as usize,
        report_fd: write_end.as_raw_fd(),
        read_fd: read_end.as_raw_fd(),
        exit_after: opts.exit_children,
    };
    let child1 = ChildJob {
        index: 1,
        common,
        anon,
        anon_size,
        anon_write: plan.bytes(plan.child1_anon()) as usize,
        sysv: shmid.zip(plan.sysv).map(|(shmid, pages)| SysvJob {
            shmid,
            size: plan.bytes(pages) as usize,
            write: plan.bytes(sysv_written(pages)) as usize,
        }),
        memfd: None,
    };
    let child2 = ChildJob {
        index: 2,
        anon_write: plan.bytes(plan.child2_anon()) as usize,
        sysv: None,
        memfd: lab
            .memfd
            .as_ref()
            .zip(plan.memfd)
            .map(|(fd, pages)| MemfdJob {
                fd: fd.as_raw_fd(),
                size: plan.bytes(pages) as usize,
                write: plan.bytes(memfd_written(pages)) as usize,
            }),
        ..child1
    };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    for job in [&child1, &child2] {
        lab.check_signal()?;
        // SAFETY: experiment_child uses only async-signal-safe calls and never returns; the
        // anon pointer, memfd fd and shmid in the job exist in the child (fork copies the
        // mappings and fds; the segment is system-wide).
        let pid = unsafe { fork_child(experiment_child, job) }
            .map_err(|e| anyhow!("fork of child {}: {}", job.index, describe(e)))?;
        lab.children.push(Child { pid, reaped: false });
    }
    drop(write_end);

    let mut msgs = Vec::with_capacity(2 * MSG_LEN);
    let end = read_reports(&read_end, 2 * MSG_LEN, &lab.signals, |b| {
        msgs.extend_from_slice(b)
    })?;
    for msg in msgs.chunks_exact(MSG_LEN) {
        if msg[1] != ST_OK {
            let index = usize::from(msg[0]).clamp(1, 2);
            let err = i32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]);
            bail!(
                "child {index} (pid {}): {}: {}",
                lab.children[index - 1].pid,
                stage_text(msg[1]),
                describe(io::Error::from_raw_os_error(err))
            );
        }
    }
    match end {
        Reports::Complete => {}
        Reports::Interrupted => lab.check_signal()?,
        Reports::Eof => {
            let reported: Vec<u8> = msgs.chunks_exact(MSG_LEN).map(|m| m[0]).collect();
            let (i, c) = (1u8..)
                .zip(lab.children.iter_mut())
                .find(|(i, _)| !reported.contains(i))
                .ok_or_else(|| anyhow!("the children's pipe closed early"))?;
            let status = wait_for(c.pid).map_err(|e| anyhow!("waitpid {}: {}", c.pid, describe(e)));
            c.reaped = true;
            bail!(
                "child {i} (pid {}) {} before reporting",
                c.pid,
                describe_status(status?)
            );
        }
    }
    drop(read_end);

    if opts.exit_children {
        for (i, c) in (1..).zip(lab.children.iter_mut()) {
            let status = wait_for(c.pid);
            c.reaped = true;
            let status = status.map_err(|e| anyhow!("waitpid {}: {}", c.pid, describe(e)))?;
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                bail!("child {i} (pid {}) {}", c.pid, describe_status(status));
            }
        }
    }

    check_anon(anon, anon_size, plan.bytes(plan.anon_resident()));
    if let (Some(id), Some(pages)) = (shmid, plan.sysv) {
        check_sysv(id, plan.bytes(sysv_written(pages)));
    }
    if let (Some(fd), Some(pages)) = (&lab.memfd, plan.memfd) {
        if let Ok(st) = rustix::fs::fstat(fd) {
            check_measured(
                "the memfd",
                st.st_blocks as u64 * 512,
                plan.bytes(memfd_written(pages)),
            );
        }
    }

    let ids = Ids {
        master,
        children: [lab.children[0].pid, lab.children[1].pid],
        anon: anon_id,
        sysv: shmid,
        memfd: memfd_id,
        posix,
        tmpfs,
    };
    let truth = build_truth(&plan, &ids, !opts.exit_children);
    let text = if opts.json {
        serde_json::to_string(&truth)? + "\n"
    } else {
        human(&truth, hold_for)
    };
    print_line(&text)?;
    hold(&lab.signals, hold_for);
    Ok(())
}

/// Starts a PHP-FPM-like pool: `workers` children that each touch every page of one shared
/// region. Prints it, holds it until a signal or `for_secs`, and kills everything.
pub fn run_pool(opts: &PoolOptions) -> Result<()> {
    if opts.workers == 0 {
        bail!("a pool needs at least 1 worker");
    }
    let page = page_size();
    let bytes = round_to_pages("shared region", opts.shared, page).map_err(|e| anyhow!(e))?;
    let hold_for = hold_duration(opts.for_secs)?;
    let master = master_pid();
    let mut lab = Lab::new()?;
    let len = bytes as usize;
    let region = lab.map_anon(len)?;
    let id = anon_identity(region)?;

    // One pipe for all workers: each writes one byte, so 10,000 workers need no more fds.
    let (read_end, write_end) = pipe()?;
    let job = WorkerJob {
        common: ChildCommon {
            master,
            page: page as usize,
            report_fd: write_end.as_raw_fd(),
            read_fd: read_end.as_raw_fd(),
            exit_after: false,
        },
        region,
        len,
    };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    lab.children.reserve(opts.workers as usize);
    for started in 0..opts.workers {
        lab.check_signal()?;
        // SAFETY: pool_worker uses only async-signal-safe calls and never returns; the region
        // pointer is the master's shared mapping, which fork copies into the child.
        match unsafe { fork_child(pool_worker, &job) } {
            Ok(pid) => lab.children.push(Child { pid, reaped: false }),
            Err(e) => {
                let nproc = rustix::process::getrlimit(rustix::process::Resource::Nproc).current;
                bail!(fork_failed_message(
                    started,
                    opts.workers,
                    &describe(e),
                    nproc
                ));
            }
        }
    }
    drop(write_end);

    let mut ok = 0u64;
    let mut failed = None;
    let end = read_reports(&read_end, opts.workers as usize, &lab.signals, |b| {
        for &stage in b {
            if stage == ST_OK {
                ok += 1;
            } else {
                failed = Some(stage);
            }
        }
    })?;
    if let Some(stage) = failed {
        bail!("a worker failed: {}", stage_text(stage));
    }
    match end {
        Reports::Complete => {}
        Reports::Interrupted => lab.check_signal()?,
        Reports::Eof => {
            let dead = lab
                .children
                .iter_mut()
                .find_map(|c| try_wait(c.pid).map(|st| (c, st)));
            let why = match dead {
                Some((c, status)) => {
                    c.reaped = true;
                    format!("worker {} {}", c.pid, describe_status(status))
                }
                None => "a worker died".to_string(),
            };
            bail!("only {ok} of {} workers reported: {why}", opts.workers);
        }
    }
    drop(read_end);
    check_anon(region, len, bytes);

    let truth = PoolTruth {
        lab: "pool",
        master_pid: master,
        workers: opts.workers,
        worker_pids: lab.children.iter().map(|c| c.pid).collect(),
        inode: id.ino,
        dev: id.dev,
        size_bytes: bytes,
        resident_bytes: bytes,
    };
    let text = if opts.json {
        serde_json::to_string(&truth)? + "\n"
    } else {
        human_pool(&truth, hold_for)
    };
    print_line(&text)?;
    hold(&lab.signals, hold_for);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn opts(size: u64) -> LabOptions {
        LabOptions {
            size,
            exit_children: false,
            sysv: None,
            memfd: None,
            posix: None,
            tmpfs: None,
            for_secs: None,
            json: true,
        }
    }

    #[test]
    fn rounds_up_to_pages() {
        assert_eq!(round_to_pages("x", 1, 4096), Ok(4096));
        assert_eq!(round_to_pages("x", 4096, 4096), Ok(4096));
        assert_eq!(round_to_pages("x", 4097, 4096), Ok(8192));
        assert_eq!(round_to_pages("x", 1000, 16384), Ok(16384));
    }

    #[test]
    fn rejects_zero_and_huge_sizes() {
        let zero = round_to_pages("memfd", 0, 4096).unwrap_err();
        assert!(zero.contains("memfd must be at least 1 byte"), "{zero}");
        assert!(round_to_pages("x", u64::MAX, 4096).is_err());
        assert!(round_to_pages("x", u64::MAX - 4095, 4096).is_err());
        assert!(Plan::new(&opts(0), 4096).is_err());
        let mut o = opts(MIB);
        o.sysv = Some(0);
        let e = Plan::new(&o, 4096).unwrap_err().to_string();
        assert!(e.contains("SysV segment"), "{e}");
    }

    #[test]
    fn written_pages_are_integer_fractions() {
        let plan = Plan::new(&opts(256 * MIB), 4096).unwrap();
        assert_eq!(plan.anon, 65536);
        assert_eq!(plan.child1_anon(), 16384);
        assert_eq!(plan.child2_anon(), 32768);
        assert_eq!(plan.bytes(plan.anon_resident()), 128 * MIB);

        // 7 pages: child 1 writes 1, child 2 writes 3; the union is 3.
        let plan = Plan::new(&opts(7 * 4096 - 100), 4096).unwrap();
        assert_eq!(plan.anon, 7);
        assert_eq!((plan.child1_anon(), plan.child2_anon()), (1, 3));
        assert_eq!(plan.anon_resident(), 3);
        assert_eq!(sysv_written(7), 3);
        assert_eq!(memfd_written(7), 1);
        assert_eq!(posix_written(7), 5);
        assert_eq!(tmpfs_written(7), 3);

        // One page: nothing from child 1 or child 2.
        let plan = Plan::new(&opts(1), 4096).unwrap();
        assert_eq!(plan.anon_resident(), 0);
    }

    fn fid(ino: u64) -> FileId {
        FileId {
            dev: "0:1".to_string(),
            ino,
        }
    }

    fn all_ids() -> (Plan, Ids) {
        let mut o = opts(256 * MIB);
        o.sysv = Some(64 * MIB);
        o.memfd = Some(32 * MIB);
        o.posix = Some(16 * MIB);
        o.tmpfs = Some((PathBuf::from("/run/x"), 8 * MIB));
        let plan = Plan::new(&o, 4096).unwrap();
        let ids = Ids {
            master: 100,
            children: [101, 102],
            anon: fid(7),
            sysv: Some(5),
            memfd: Some(fid(8)),
            posix: Some((
                FileId {
                    dev: "0:27".to_string(),
                    ino: 3,
                },
                "/dev/shm/shmwho-lab-100".to_string(),
            )),
            tmpfs: Some((
                FileId {
                    dev: "0:30".to_string(),
                    ino: 4,
                },
                "/run/x/shmwho-lab-100".to_string(),
            )),
        };
        (plan, ids)
    }

    fn holders(v: &serde_json::Value) -> Vec<(i64, String)> {
        v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["pid"].as_i64().unwrap(),
                    h["via"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn h(list: &[(i64, &str)]) -> Vec<(i64, String)> {
        list.iter().map(|&(p, v)| (p, v.to_string())).collect()
    }

    #[test]
    fn truth_with_live_children() {
        let (plan, ids) = all_ids();
        let t = serde_json::to_value(build_truth(&plan, &ids, true)).unwrap();
        assert_eq!(t["lab"], "experiment");
        assert_eq!(t["master_pid"], 100);
        assert_eq!(t["page_size"], 4096);
        let c = &t["children"];
        assert_eq!(c[0]["pid"], 101);
        assert_eq!(c[0]["wrote_bytes"], 64 * MIB + 32 * MIB);
        assert_eq!(c[0]["alive"], true);
        assert_eq!(c[1]["wrote_bytes"], 128 * MIB + 8 * MIB);
        assert_eq!(c[1]["wrote"][1]["kind"], "memfd");

        let o = t["objects"].as_array().unwrap();
        let kinds: Vec<&str> = o.iter().map(|x| x["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["anon_shared", "sysv", "memfd", "posix_shm", "tmpfs"]
        );

        assert_eq!(o[0]["inode"], 7);
        assert_eq!(o[0]["dev"], "0:1");
        assert_eq!(o[0]["size_bytes"], 256 * MIB);
        assert_eq!(o[0]["resident_bytes"], 128 * MIB);
        assert_eq!(
            holders(&o[0]),
            h(&[(100, "map"), (101, "map"), (102, "map")])
        );
        assert_eq!(o[0]["owner_pid"], 100);

        assert_eq!(o[1]["shmid"], 5);
        assert_eq!(o[1]["key"], 0);
        assert!(o[1].get("inode").is_none());
        assert_eq!(o[1]["resident_bytes"], 32 * MIB);
        assert_eq!(holders(&o[1]), h(&[(101, "map")]));
        assert_eq!(o[1]["owner_pid"], 100);

        assert_eq!(o[2]["name"], "shmwho-lab");
        assert_eq!(o[2]["resident_bytes"], 8 * MIB);
        assert_eq!(
            holders(&o[2]),
            h(&[(100, "fd"), (101, "fd"), (102, "map"), (102, "fd")])
        );

        assert_eq!(o[3]["path"], "/dev/shm/shmwho-lab-100");
        assert_eq!(o[3]["resident_bytes"], 12 * MIB);
        assert_eq!(holders(&o[3]), h(&[]));
        assert!(o[3]["owner_pid"].is_null());

        assert_eq!(o[4]["resident_bytes"], 4 * MIB);
        assert_eq!(holders(&o[4]), h(&[(100, "map")]));
        assert_eq!(o[4]["owner_pid"], 100);
    }

    #[test]
    fn exited_children_hold_nothing() {
        let (plan, ids) = all_ids();
        let t = serde_json::to_value(build_truth(&plan, &ids, false)).unwrap();
        assert_eq!(t["children"][0]["alive"], false);
        let o = t["objects"].as_array().unwrap();
        assert_eq!(holders(&o[0]), h(&[(100, "map")]));
        assert_eq!(o[0]["resident_bytes"], 128 * MIB);
        assert_eq!(holders(&o[1]), h(&[]));
        assert_eq!(o[1]["owner_pid"], 100);
        assert_eq!(holders(&o[2]), h(&[(100, "fd")]));
        assert_eq!(holders(&o[4]), h(&[(100, "map")]));
    }

    #[test]
    fn truth_without_extras_is_one_object() {
        let plan = Plan::new(&opts(MIB), 4096).unwrap();
        let ids = Ids {
            master: 1,
            children: [2, 3],
            anon: fid(9),
            sysv: None,
            memfd: None,
            posix: None,
            tmpfs: None,
        };
        let truth = build_truth(&plan, &ids, true);
        assert_eq!(truth.objects.len(), 1);
        let line = serde_json::to_string(&truth).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"lab":"experiment","master_pid":1,"page_size":4096,"#));
        let text = human(&truth, None);
        assert!(
            text.contains(
                "ps will show the master's RSS as ~0 while the object holds 512 KiB (524288 bytes)"
            ),
            "{text}"
        );
        assert!(text.contains("Ctrl-C"));
    }

    #[test]
    fn finds_the_mapping_in_maps() {
        let maps = "\
55c6fef76000-55c6fef77000 r--p 00000000 fe:00 18504   /usr/bin/x
7f95d41eb000-7f95d42eb000 rw-s 00000000 00:01 1027    /memfd:lab buf (deleted)
7f95d43eb000-7f95d44eb000 rw-s 00000000 00:1b 1025    /dev/zero (deleted)
7f95d4521000-7f95d4654000 rw-p 00000000 00:00 0
";
        assert_eq!(
            maps_entry(maps, 0x7f95d43eb000),
            Some(FileId {
                dev: "0:27".to_string(),
                ino: 1025
            })
        );
        assert_eq!(maps_entry(maps, 0x7f95d41eb000).unwrap().ino, 1027);
        assert_eq!(maps_entry(maps, 0x7f95d43ec000), None);
    }

    #[test]
    fn reads_sysv_rss() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    0          5 600    268435456 100 101 1 0 0 0 0 1 0 1 134217728 4096\n\
                    4660       6 1600   4096 100 101 0 0 0 0 0 1 0 1 0 0\n";
        assert_eq!(sysv_rss_swap(text, 5), Some(134217728 + 4096));
        assert_eq!(sysv_rss_swap(text, 6), Some(0));
        assert_eq!(sysv_rss_swap(text, 7), None);
    }

    #[test]
    fn formats_bytes() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(1000), "1000 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(256 * MIB), "256 MiB");
        assert_eq!(fmt_bytes(3 * (1 << 30)), "3 GiB");
    }

    #[test]
    fn describes_errors_without_os_error_suffix() {
        assert_eq!(
            describe(io::Error::from_raw_os_error(libc::EINVAL)),
            "Invalid argument"
        );
        assert_eq!(
            describe(rustix::io::Errno::NOSPC),
            "No space left on device"
        );
    }

    #[test]
    fn validates_durations() {
        assert_eq!(hold_duration(None).unwrap(), None);
        assert_eq!(
            hold_duration(Some(1.5)).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert!(hold_duration(Some(-1.0)).is_err());
        assert!(hold_duration(Some(f64::NAN)).is_err());
    }

    #[test]
    fn fork_failure_says_what_to_raise() {
        let m = fork_failed_message(1200, 10000, "Resource temporarily unavailable", Some(1234));
        assert!(m.contains("after starting 1200 of 10000 workers"), "{m}");
        assert!(m.contains("ulimit -u"), "{m}");
        assert!(m.contains("1234"), "{m}");
        assert!(m.contains("pid_max"), "{m}");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["AAA".into(), "B".into(), "CC".into()],
        ]);
        assert_eq!(t, "A    BB  C\nAAA  B   CC\n");
    }
}
