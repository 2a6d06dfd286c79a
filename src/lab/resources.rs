//! The master's resources, removed on drop, and the waiting between the steps.

use super::*;

pub(super) struct Child {
    pub(super) pid: libc::pid_t,
    pub(super) reaped: bool,
}

pub(super) struct Mapping {
    pub(super) addr: *mut c_void,
    pub(super) len: usize,
}

/// Everything the lab created. Dropping it kills and reaps the children, removes the SysV
/// segment, the POSIX object and the tmpfs file, unmaps and closes, then says so on stderr.
pub(super) struct Lab {
    pub(super) children: Vec<Child>,
    pub(super) sysv: Option<c_int>,
    /// shm_open name (`/shmwho-lab-PID`).
    pub(super) posix: Option<String>,
    pub(super) tmpfs: Option<PathBuf>,
    pub(super) maps: Vec<Mapping>,
    pub(super) memfd: Option<OwnedFd>,
    /// Removes the segment and files if the master dies without dropping this.
    pub(super) watcher: Watcher,
    /// Dropped after the cleanup above, so a signal during cleanup is still caught.
    pub(super) signals: StopFlag,
}

impl Lab {
    pub(super) fn new() -> Result<Lab> {
        Ok(Lab {
            children: Vec::new(),
            sysv: None,
            posix: None,
            tmpfs: None,
            maps: Vec::new(),
            memfd: None,
            // Before anything is created: the watcher must hold none of it.
            watcher: Watcher::start(master_pid())?,
            signals: StopFlag::register(&signals::HANGUP).context("installing a signal handler")?,
        })
    }

    pub(super) fn check_signal(&self) -> Result<()> {
        if self.signals.raised() {
            bail!("interrupted by a signal before the lab was ready");
        }
        Ok(())
    }

    /// A fresh `MAP_SHARED|MAP_ANONYMOUS` region the master never touches.
    pub(super) fn map_anon(&mut self, len: usize) -> Result<*mut u8> {
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

    pub(super) fn create_sysv(&mut self, bytes: u64) -> Result<c_int> {
        // SAFETY: shmget takes integers only and touches none of our memory.
        let id =
            unsafe { libc::shmget(libc::IPC_PRIVATE, bytes as usize, 0o600 | libc::IPC_CREAT) };
        if id < 0 {
            bail!("shmget {bytes} bytes: {}", last_error());
        }
        self.sysv = Some(id);
        self.watcher.sysv(id, master_pid())?;
        Ok(id)
    }

    pub(super) fn create_memfd(&mut self, bytes: u64) -> Result<FileId> {
        // MFD_CLOEXEC: fork keeps the fd (the children inherit it), only exec would close it.
        let fd = rustix::fs::memfd_create(MEMFD_NAME, MemfdFlags::CLOEXEC)
            .map_err(|e| anyhow!("memfd_create {MEMFD_NAME}: {}", describe(e)))?;
        rustix::fs::ftruncate(&fd, bytes)
            .map_err(|e| anyhow!("ftruncate memfd to {bytes} bytes: {}", describe(e)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| anyhow!("fstat memfd: {}", describe(e)))?;
        self.memfd = Some(fd);
        Ok(FileId::of(&st))
    }

    /// Tells the watcher about a file just created at `path`.
    fn watch_file(&self, fd: &OwnedFd, path: &Path) -> Result<()> {
        let st = rustix::fs::fstat(fd)
            .map_err(|e| anyhow!("fstat {}: {}", path.display(), describe(e)))?;
        self.watcher.file(path, &st)
    }

    /// The POSIX object: written by the master with pwrite, then closed. Returns its identity
    /// and `/dev/shm` path.
    pub(super) fn create_posix(
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
        self.watch_file(&fd, Path::new(&path))?;
        let id = write_file(&fd, &path, bytes, write, page)?;
        Ok((id, path))
        // fd closed here: the object is held by nobody.
    }

    /// The tmpfs file: written by the master with pwrite, then mapped read-only (never
    /// touched) and closed, so the master holds it only through the mapping.
    pub(super) fn create_tmpfs(
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
        self.tmpfs = Some(path.clone());
        self.watch_file(&fd, &path)?;
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
        self.watcher.done();
        eprintln!("shmwho lab: cleaned up");
    }
}

/// waitpid(pid), retrying on EINTR; returns the wait status.
pub(super) fn wait_for(pid: libc::pid_t) -> io::Result<c_int> {
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
pub(super) fn try_wait(pid: libc::pid_t) -> Option<c_int> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into our local and nothing else.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(status)
}

/// ftruncate to `bytes`, pwrite one byte into each of the first `write` bytes' pages, fstat.
pub(super) fn write_file(
    fd: &OwnedFd,
    shown: &str,
    bytes: u64,
    write: u64,
    page: u64,
) -> Result<FileId> {
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
pub(super) fn check_measured(what: &str, measured: u64, written: u64) {
    if measured != written {
        eprintln!(
            "shmwho lab: warning: the kernel counts {measured} bytes in {what}, not the {written} \
             written (huge pages on this mount? swap?); the truth printed is what was written"
        );
    }
}

pub(super) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

pub(super) fn master_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// `dir` must be on a tmpfs other than the one at /dev/shm (files there are POSIX shm objects).
pub(super) fn check_tmpfs_dir(dir: &Path) -> Result<()> {
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
pub(super) fn anon_identity(addr: *mut u8) -> Result<FileId> {
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    maps_entry(&maps, addr as u64)
        .ok_or_else(|| anyhow!("no line for address {:#x} in /proc/self/maps", addr as u64))
}

/// Compares the region's `st_blocks` with the truth, when map_files can be stat'ed (root or
/// CAP_CHECKPOINT_RESTORE); silent otherwise.
pub(super) fn check_anon(addr: *mut u8, len: usize, resident: u64) {
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

pub(super) fn check_sysv(shmid: c_int, resident: u64) {
    if let Ok(text) = std::fs::read_to_string("/proc/sysvipc/shm") {
        if let Some(measured) = sysv_rss_swap(&text, shmid) {
            check_measured(&format!("SysV segment {shmid}"), measured, resident);
        }
    }
}

pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes exactly two fds into the two-element array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", last_error());
    }
    // SAFETY: both fds were just created by pipe2 and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(super) enum Reports {
    Complete,
    /// Every write end closed before `want` bytes arrived: a child died.
    Eof,
    Interrupted,
}

/// Reads up to `want` bytes from the children's pipe into `sink`, waking every tick to look at
/// the signal flag.
pub(super) fn read_reports(
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
pub(super) fn hold(signals: &StopFlag, hold_for: Option<Duration>) {
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

pub(super) fn print_line(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `(dev "major:minor", inode)` of the mapping starting at `start` in `/proc/PID/maps` text,
/// through the scan's own maps parser (one parser per /proc file).
pub(super) fn maps_entry(maps: &str, start: u64) -> Option<FileId> {
    crate::collect::parse::maps::parse(maps.as_bytes())
        .find(|e| e.start == start)
        .map(|e| FileId {
            dev: crate::report::dev_text(e.dev()),
            ino: e.inode,
        })
}

/// `rss + swap` of segment `shmid` from `/proc/sysvipc/shm` text.
pub(super) fn sysv_rss_swap(text: &str, shmid: i32) -> Option<u64> {
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
pub(super) fn describe(e: impl Into<io::Error>) -> String {
    let text = e.into().to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

pub(super) fn last_error() -> String {
    describe(io::Error::last_os_error())
}

pub(super) fn hold_duration(for_secs: Option<f64>) -> Result<Option<Duration>> {
    for_secs
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| anyhow!("the duration must be a number of seconds >= 0, not {s}"))
        })
        .transpose()
}

pub(super) fn fork_failed_message(
    started: u32,
    workers: u32,
    err: &str,
    nproc: Option<u64>,
) -> String {
    let limit = nproc.map_or("unlimited".to_string(), |n| n.to_string());
    format!(
        "fork failed after starting {started} of {workers} workers: {err}; raise the limit on \
         processes (`ulimit -u`, now {limit}) or kernel.pid_max / kernel.threads-max (sysctl)"
    )
}

pub(super) fn describe_status(status: c_int) -> String {
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

/// Reads what the host allows (each part None when unreadable).
pub(super) fn host_limits() -> HostLimits {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let number = |p: &str| read(p).and_then(|t| t.trim().parse().ok());
    // The kernel does not apply RLIMIT_NPROC to root (or CAP_SYS_RESOURCE/CAP_SYS_ADMIN); a
    // root lab is bounded by pid_max and threads-max alone.
    let nproc = (!rustix::process::geteuid().is_root())
        .then(|| rustix::process::getrlimit(rustix::process::Resource::Nproc).current)
        .flatten();
    HostLimits {
        mem_available: read("/proc/meminfo").and_then(|t| mem_available(&t)),
        pid_max: number("/proc/sys/kernel/pid_max"),
        threads_max: number("/proc/sys/kernel/threads-max"),
        tasks: read("/proc/loadavg").and_then(|t| crate::collect::parse::loadavg::tasks(&t)),
        nproc,
    }
}
