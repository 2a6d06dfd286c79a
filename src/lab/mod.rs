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
//! exit path (success, error, signal) by `Lab`'s `Drop`; a watcher process removes what would
//! outlive the master (SysV segment, files) even when the master is killed with SIGKILL.
//!
//! `plan` holds the sizes and the truth (pure), `children` the forked code, `resources` what the
//! master creates and removes, `report` the table for people.

mod children;
mod plan;
mod report;
mod resources;
#[cfg(test)]
mod tests;
mod watcher;

use children::*;
use plan::*;
use report::*;
use resources::*;
pub use watcher::watch;
use watcher::Watcher;

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
    /// Go on even when the objects' sizes exceed MemAvailable.
    pub force: bool,
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
    /// Go on even beyond MemAvailable or the host's limits on processes.
    pub force: bool,
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
// The two entry points.

/// Builds the experiment, prints its ground truth, holds it until a signal or `for_secs`, and
/// removes everything (also on error).
pub fn run(opts: &LabOptions) -> Result<()> {
    let page = page_size();
    let plan = Plan::new(opts, page)?;
    let hold_for = hold_duration(opts.for_secs)?;
    if !opts.force {
        check_memory("the lab's objects", plan.total_bytes(), &host_limits())
            .map_err(|e| anyhow!(e))?;
    }
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
    if !opts.force {
        let limits = host_limits();
        check_workers(opts.workers, &limits).map_err(|e| anyhow!(e))?;
        // Each worker maps every page: 8 bytes of page table per page per worker.
        let tables = (bytes / page)
            .saturating_mul(8)
            .saturating_mul(u64::from(opts.workers));
        check_memory(
            "the shared region and the workers' page tables",
            bytes.saturating_add(tables),
            &limits,
        )
        .map_err(|e| anyhow!(e))?;
    }
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
