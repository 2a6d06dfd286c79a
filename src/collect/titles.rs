//! Process titles (`cmdline`), read after everything else of the scan, or (the objects view,
//! as root with the BPF iterators) beside the iteration, on the CPU it leaves free.
//!
//! The kernel reads `cmdline` from the process's memory under its mmap_lock, so a process
//! stuck as [`super::deadline`] describes does not answer it. Read last, the title of a process
//! found stuck earlier (in `maps`, `map_files`) is not even tried, and a process stuck here is
//! named stuck in `cmdline`; read early, a stuck process is named stuck in `cmdline` and its
//! later reads are skipped. Read in one [`deadline::call_each`] batch per thread, the titles
//! cost no hand-over per process.

use super::deadline;
use super::parse::{cmdline, stat};
use super::process::Start;
use super::read::{open_dir, open_sub, read_prefix, ProcDir};
use super::{Context, RawProcess};
use crate::model::{Pid, Process, TITLE_MAX};
use rustix::fd::AsFd;
use rustix::fs::OFlags;
use std::path::PathBuf;

/// What reaches a process's `cmdline`: its directory kept open since its maps were read, or
/// its path and start time (then `stat` is read again, as the pid may have been reused).
type Reach = (Option<ProcDir>, PathBuf, u64);

/// A process's index and title.
type Titled = (usize, Option<String>);

/// Sets the title of every process not titled yet ([`read_early`]), bounded to [`TITLE_MAX`]
/// bytes, and closes the directories kept for it.
pub(crate) fn read_titles(ctx: &Context, processes: &mut [Process], raws: &mut [RawProcess]) {
    let left: Vec<usize> = (0..processes.len())
        .filter(|&i| !raws[i].done.title)
        .collect();
    // One batch on this thread up to 4096 processes (no thread to start: on the 300-worker
    // pool four threads cost more CPU than the reads), else up to one per CPU.
    let threads = super::parallel::cpus().min(4).min(left.len() / 4096 + 1);
    let mut chunks: Vec<Vec<(Pid, (usize, Reach))>> = (0..threads).map(|_| Vec::new()).collect();
    for (n, i) in left.into_iter().enumerate() {
        let p = &processes[i];
        let reach = (raws[i].dir.take(), ctx.pid_path(p.pid, ""), p.start_ticks);
        chunks[n % threads].push((p.pid, (i, reach)));
    }
    let batch = |chunk| deadline::call_each(chunk, "cmdline", |(i, reach)| (i, title(reach)));
    let titles: Vec<Vec<Option<Titled>>> = if threads == 1 {
        chunks.into_iter().map(batch).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| s.spawn(move || batch(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("title thread panicked"))
                .collect()
        })
    };
    for (i, title) in titles.into_iter().flatten().flatten() {
        processes[i].title = title;
    }
}

/// The titles of the processes of `starts` whose directory is open and whose early reads
/// went well, read through that directory in one [`deadline::call_each`] batch, while the BPF
/// iterators run on another CPU (`super::with_kernel_snapshot`). A process whose memory map is
/// locked is named stuck in `cmdline` then, and its later reads are skipped.
pub(crate) fn read_early(starts: &mut [Start]) {
    super::process::read_beside(starts, "cmdline", title_at, |early, t| {
        early.title = Some(t)
    });
}

/// One process's title.
fn title((dir, path, start_ticks): Reach) -> Option<String> {
    let dir = match dir {
        Some(dir) => return title_at(&dir),
        None => open_dir(&path).ok()?,
    };
    let title = title_at(&dir);
    // Reached by path: the pid may be another process's now.
    let f = open_sub(dir.as_fd(), "stat", OFlags::RDONLY).ok()?;
    let mut st = Vec::new();
    let m = read_prefix(&mut st, std::fs::File::from(f), 4096).ok()?;
    if stat::parse(&st[..m]).is_none_or(|s| s.start_ticks != start_ticks) {
        return None;
    }
    title
}

/// The title of the process at `dir`.
fn title_at(dir: &ProcDir) -> Option<String> {
    let mut buf = Vec::new();
    let f = open_sub(dir.as_fd(), "cmdline", OFlags::RDONLY).ok()?;
    let n = read_prefix(&mut buf, std::fs::File::from(f), TITLE_MAX).ok()?;
    cmdline::title(&buf[..n])
}
