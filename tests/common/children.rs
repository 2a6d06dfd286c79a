//! Children that touch objects on request, forked under the lock (see the parent module).

#[allow(unused_imports)]
use super::*;

/// What a child does after its closure returned and its value was sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum After {
    /// Stay alive (holding what it maps) until the guard kills it.
    Pause,
    /// `_exit(0)`; `fork_child` reaps it before returning.
    Exit,
}

/// A forked child: SIGKILLed and reaped on drop.
pub struct Child {
    pub(super) pid: libc::pid_t,
    /// What the child's closure returned.
    pub value: i64,
    pub(super) reaped: bool,
}

impl Child {
    pub fn pid(&self) -> i64 {
        self.pid as i64
    }

    /// Kills and reaps the child now (its mappings and fds are gone when this returns).
    pub fn kill(mut self) {
        self.reap(true);
    }

    fn reap(&mut self, kill: bool) {
        if self.reaped {
            return;
        }
        self.reaped = true;
        // SAFETY: plain syscalls on our own child.
        unsafe {
            if kill {
                libc::kill(self.pid, libc::SIGKILL);
            }
            let mut status = 0;
            while libc::waitpid(self.pid, &mut status, 0) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.reap(true);
    }
}

pub fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: buf[got..] is valid for writing.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            panic!("read from child pipe: {}", std::io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    got
}

/// Async-signal-safe write of all of `buf` (child side).
pub unsafe fn write_all_raw(fd: RawFd, buf: &[u8]) {
    let mut done = 0;
    while done < buf.len() {
        let n = libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done);
        if n <= 0 {
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            libc::_exit(120);
        }
        done += n as usize;
    }
}

/// Forks a child that runs `f` and sends its return value back.
///
/// `f` runs in a child of a multi-threaded process: it must use raw syscalls only (no
/// allocation, no printing, no panics) and capture only plain `Copy` values (a captured
/// `String` would be freed in the child when `f` returns); helpers in [`child`] qualify. It exits with `_exit` to
/// report failure. The child inherits only the regions in `inherit` and the fds in `keep_fds`
/// (plus 0-2); it dies with the forking thread (`PR_SET_PDEATHSIG`).
pub fn fork_child<F: FnOnce() -> i64>(
    inherit: &[&SharedRegion],
    keep_fds: &[RawFd],
    after: After,
    f: F,
) -> Child {
    let guard = lock();
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for two ints.
    check(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        "pipe2",
    );
    let (rfd, wfd) = (fds[0], fds[1]);
    let mut keep: Vec<RawFd> = keep_fds.iter().copied().chain([wfd]).collect();
    keep.sort_unstable();
    keep.dedup();
    let parent = std::process::id() as libc::pid_t;
    for r in inherit {
        // SAFETY: switching inheritance of a mapping we own.
        check(
            unsafe { libc::madvise(r.addr as *mut _, r.len, libc::MADV_DOFORK) },
            "madvise",
        );
    }
    // SAFETY: the child runs only raw syscalls and `f` (see the contract above), then _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Child.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() != parent {
                libc::_exit(121);
            }
            let mut lo: u32 = 3;
            for &k in keep.iter() {
                if k < 3 {
                    continue;
                }
                let k = k as u32;
                if k > lo {
                    libc::syscall(libc::SYS_close_range, lo, k - 1, 0u32);
                }
                lo = k + 1;
            }
            libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0u32);
            write_all_raw(wfd, b"S");
            let v = f();
            write_all_raw(wfd, &v.to_ne_bytes());
            match after {
                After::Exit => libc::_exit(0),
                After::Pause => loop {
                    libc::pause();
                },
            }
        }
    }
    let fork_err = std::io::Error::last_os_error();
    for r in inherit {
        // SAFETY: as above.
        unsafe { libc::madvise(r.addr as *mut _, r.len, libc::MADV_DONTFORK) };
    }
    // SAFETY: closing our copy of the write end; the child has its own.
    unsafe { libc::close(wfd) };
    // SAFETY: rfd is ours from pipe2 above.
    let rfd = unsafe { OwnedFd::from_raw_fd(rfd) };
    assert!(pid > 0, "fork: {fork_err}");
    let mut child = Child {
        pid,
        value: 0,
        reaped: false,
    };
    let mut started = [0u8; 1];
    let ok = read_full(rfd.as_raw_fd(), &mut started) == 1;
    drop(guard);
    let mut v = [0u8; 8];
    if !ok || read_full(rfd.as_raw_fd(), &mut v) != 8 {
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        child.reaped = true;
        panic!(
            "child {pid} failed before reporting (exit code {}, signal {})",
            libc::WEXITSTATUS(status),
            if libc::WIFSIGNALED(status) {
                libc::WTERMSIG(status)
            } else {
                0
            }
        );
    }
    child.value = i64::from_ne_bytes(v);
    if after == After::Exit {
        child.reap(false);
    }
    child
}

/// Async-signal-safe building blocks for child closures.
pub mod child {
    /// Writes one non-zero byte at the start of pages `first..first+n` of the memory at `addr`.
    pub fn touch(addr: usize, first: u64, n: u64, page: u64) {
        for i in first..first + n {
            // SAFETY: callers pass a writable mapping that covers these pages.
            unsafe { core::ptr::write_volatile((addr + (i * page) as usize) as *mut u8, 0xa5) };
        }
    }

    /// `mmap(MAP_SHARED)` of `fd` (or anonymous when `fd` is -1), or `_exit(code)`.
    pub fn map(fd: i32, len: usize, code: i32) -> usize {
        let flags = if fd < 0 {
            libc::MAP_SHARED | libc::MAP_ANONYMOUS
        } else {
            libc::MAP_SHARED
        };
        // SAFETY: a fresh mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(code) };
        }
        super::super::no_huge_pages(p as usize, len);
        p as usize
    }

    /// A private anonymous mapping of `len` bytes (the child's own memory), or `_exit(code)`.
    pub fn private(len: usize, code: i32) -> usize {
        // SAFETY: a fresh mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(code) };
        }
        p as usize
    }

    /// [`map`], then closes `fd`: the child holds the object only through the mapping.
    pub fn map_and_close(fd: i32, len: usize, code: i32) -> usize {
        let p = map(fd, len, code);
        // SAFETY: the fd was handed to this child; the mapping keeps the file.
        unsafe { libc::close(fd) };
        p
    }

    /// `shmat` or `_exit(code)`.
    pub fn shmat(shmid: i32, code: i32) -> usize {
        // SAFETY: attaching a segment at a kernel-chosen address.
        let p = unsafe { libc::shmat(shmid, core::ptr::null(), 0) };
        if p as isize == -1 {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(code) };
        }
        // SAFETY: shmid_ds is plain data, filled by the kernel.
        let mut ds: libc::shmid_ds = unsafe { core::mem::zeroed() };
        // SAFETY: plain syscall.
        if unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) } != 0 {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(code) };
        }
        super::super::no_huge_pages(p as usize, ds.shm_segsz);
        p as usize
    }

    /// `nanosleep`, ignoring interruptions.
    pub fn sleep(t: &libc::timespec) {
        // SAFETY: plain syscall.
        unsafe { libc::nanosleep(t, core::ptr::null_mut()) };
    }

    /// Becomes uid/gid `id` with no supplementary groups (raw syscalls: only this thread
    /// exists), stays dumpable so the same user may read its `/proc` files, and re-arms the
    /// parent-death signal (a credential change clears it). `_exit(code)` on failure.
    pub fn become_user(id: u32, code: i32) {
        // SAFETY: plain syscalls.
        unsafe {
            if libc::syscall(
                libc::SYS_setgroups,
                0usize,
                core::ptr::null::<libc::gid_t>(),
            ) != 0
                || libc::syscall(libc::SYS_setresgid, id, id, id) != 0
                || libc::syscall(libc::SYS_setresuid, id, id, id) != 0
                || libc::prctl(libc::PR_SET_DUMPABLE, 1 as libc::c_ulong) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0
            {
                libc::_exit(code);
            }
        }
    }

    /// Writes one byte into each page `first..first+n` of `fd` (allocating the whole page),
    /// through a `MADV_NOHUGEPAGE` mapping so each is one base page whatever `shmem_enabled`
    /// says (see [`super::super::pwrite_pages`]). The pages must lie inside the file.
    pub fn pwrite_pages(fd: i32, first: u64, n: u64, page: u64, code: i32) {
        if n == 0 {
            return;
        }
        let len = (n * page) as usize;
        // SAFETY: fstat into a zeroed stat buffer of our own.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fd is the caller's open file; st is ours.
        if unsafe { libc::fstat(fd, &mut st) } < 0 {
            fail(code);
        }
        if ((first + n) * page) as i64 > st.st_size {
            // Past the end a mapping would SIGBUS: one byte per page extends the file, as
            // the parent-side helper does (tests/common/mod.rs pwrite_pages_plain).
            let b = [0x5au8; 1];
            for i in first..first + n {
                // SAFETY: b is valid for one byte.
                let w =
                    unsafe { libc::pwrite(fd, b.as_ptr().cast(), 1, (i * page) as libc::off_t) };
                if w != 1 {
                    fail(code);
                }
            }
            return;
        }
        // SAFETY: a fresh shared mapping of the file, inside its size.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                (first * page) as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            fail(code);
        }
        super::super::no_huge_pages(p as usize, len);
        touch(p as usize, 0, n, page);
        // SAFETY: unmapping the mapping made above.
        unsafe { libc::munmap(p, len) };
    }

    pub fn fail(code: i32) -> ! {
        // SAFETY: exiting the child.
        unsafe { libc::_exit(code) }
    }
}
