//! Children: async-signal-safe code only, on values prepared before the fork.

use super::*;

/// What every child needs, computed before the fork.
#[derive(Clone, Copy)]
pub(super) struct ChildCommon {
    pub(super) master: libc::pid_t,
    pub(super) page: usize,
    /// Write end of the report pipe.
    pub(super) report_fd: RawFd,
    /// Read end of the report pipe, closed in the child.
    pub(super) read_fd: RawFd,
    /// `_exit(0)` after reporting instead of waiting to be killed.
    pub(super) exit_after: bool,
}

#[derive(Clone, Copy)]
pub(super) struct SysvJob {
    pub(super) shmid: c_int,
    pub(super) size: usize,
    pub(super) write: usize,
}

#[derive(Clone, Copy)]
pub(super) struct MemfdJob {
    pub(super) fd: RawFd,
    pub(super) size: usize,
    pub(super) write: usize,
}

/// One experiment child's work. `anon` is the master's mapping, inherited by fork.
#[derive(Clone, Copy)]
pub(super) struct ChildJob {
    pub(super) index: u8,
    pub(super) common: ChildCommon,
    pub(super) anon: *mut u8,
    pub(super) anon_size: usize,
    pub(super) anon_write: usize,
    pub(super) sysv: Option<SysvJob>,
    pub(super) memfd: Option<MemfdJob>,
}

/// One pool worker's work: touch every page of `region`.
#[derive(Clone, Copy)]
pub(super) struct WorkerJob {
    pub(super) common: ChildCommon,
    pub(super) region: *mut u8,
    pub(super) len: usize,
}

pub(super) fn errno() -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread's
    // lifetime; reading it is async-signal-safe.
    unsafe { *libc::__errno_location() }
}

pub(super) fn child_exit(code: c_int) -> ! {
    // SAFETY: _exit ends the process without running destructors or atexit handlers, which is
    // exactly what a forked child must do; it is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// Writes all of `msg` to `fd`, retrying on EINTR; gives up silently on other errors (the
/// master then sees the child vanish and says so).
pub(super) fn child_send(fd: RawFd, msg: &[u8]) {
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

pub(super) fn child_message(index: u8, stage: u8, err: c_int) -> [u8; MSG_LEN] {
    let e = err.to_le_bytes();
    [index, stage, 0, 0, e[0], e[1], e[2], e[3]]
}

/// First steps of every child: die with the master, take default signal actions (the master's
/// handlers only set a flag nobody reads here), close the pipe's read end, and let go of the
/// caller's terminal or pipes on stdin/stdout/stderr. Returns errno if PR_SET_PDEATHSIG fails.
pub(super) fn child_setup(c: &ChildCommon) -> Result<(), c_int> {
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
pub(super) unsafe fn touch_pages(base: *mut u8, len: usize, page: usize) {
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
pub(super) fn child_no_huge_pages(addr: *mut c_void, len: usize) {
    // SAFETY: madvise only changes the VMA's flags; an invalid range fails with an errno.
    unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) };
}

/// Reports, closes the report pipe, then exits or waits to be killed.
pub(super) fn child_finish(c: &ChildCommon, msg: &[u8]) -> ! {
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
pub(super) unsafe fn experiment_child(job: &ChildJob) -> ! {
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
pub(super) unsafe fn pool_worker(job: &WorkerJob) -> ! {
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
pub(super) unsafe fn fork_child<T>(child: unsafe fn(&T) -> !, arg: &T) -> io::Result<libc::pid_t> {
    // SAFETY: the caller guarantees the child branch only runs async-signal-safe code and
    // diverges; the parent branch continues normally.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: `child`'s contract holds for `arg`, per the caller.
        0 => unsafe { child(arg) },
        pid => Ok(pid),
    }
}
