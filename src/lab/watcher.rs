//! The watcher: a small process forked before anything is created, holding a pidfd of the
//! master. The master tells it each object that would outlive the lab (the SysV segment, the
//! files on /dev/shm and the tmpfs); when the master exits without saying it cleaned up (a
//! SIGKILL, the OOM killer), the watcher removes them. SysV segments and tmpfs files outlive
//! processes, so without it a killed lab leaks memory until reboot.
//!
//! The watcher is a grandchild of the master (its parent exits at once, so it is in no tree of
//! the lab's) and execs `shmwho lab-watcher`, so it shares no page with the master: the lab's
//! processes and their memory look as they did before there was a watcher. Between fork and
//! exec it runs only async-signal-safe code.

use super::*;

/// One record on the pipe: kind, padding, two numbers, a NUL-terminated path. Written whole
/// in one `write` (under PIPE_BUF, so atomic) and read whole.
const REC_LEN: usize = 512;
const _: () = assert!(REC_LEN <= libc::PIPE_BUF, "one write is atomic");
/// Byte offset of the path in a record.
const PATH_AT: usize = 24;
/// A SysV segment: `a` is the shmid, `b` the pid that must have created it.
const KIND_SYSV: u8 = 1;
/// A file: `a` is its device, `b` its inode; removed only if the path still names that file.
const KIND_FILE: u8 = 2;
/// The master removed everything itself: the watcher exits without touching anything (a
/// shmid or a name could meanwhile belong to someone else).
const KIND_DONE: u8 = 3;
/// The lab creates at most one segment and two files.
const MAX_RECORDS: usize = 8;

/// The master's handle on its watcher.
pub(super) struct Watcher {
    tx: Option<OwnedFd>,
}

impl Watcher {
    /// Forks the watcher of `master` (this process). Call before creating anything, so the
    /// watcher holds no mapping or fd of the lab's objects.
    pub(super) fn start(master: libc::pid_t) -> Result<Watcher> {
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(master).context("no pid")?,
            rustix::process::PidfdFlags::empty(),
        )
        .map_err(|e| anyhow!("pidfd_open of the lab master: {}", describe(e)))?;
        let (rx, tx) = pipe()?;
        // Everything exec needs, built before the fork: the child may not allocate.
        let exe = c"/proc/self/exe";
        let args: Vec<std::ffi::CString> = [
            "shmwho".to_string(),
            "lab-watcher".to_string(),
            "--pidfd".to_string(),
            pidfd.as_raw_fd().to_string(),
            "--rx".to_string(),
            rx.as_raw_fd().to_string(),
        ]
        .into_iter()
        .map(|a| std::ffi::CString::new(a).expect("no NUL"))
        .collect();
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(ptr::null());
        let job = WatchJob {
            pidfd: pidfd.as_raw_fd(),
            rx: rx.as_raw_fd(),
            tx: tx.as_raw_fd(),
            exe: exe.as_ptr(),
            argv: argv.as_ptr(),
        };
        // SAFETY: detach_and_watch uses only async-signal-safe calls and never returns; the fds
        // in the job exist in the child (fork copies the fd table).
        let pid = unsafe { fork_child(detach_and_watch, &job) }
            .map_err(|e| anyhow!("fork of the lab's watcher: {}", describe(e)))?;
        let status = wait_for(pid).map_err(|e| anyhow!("waitpid {pid}: {}", describe(e)))?;
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!(
                "fork of the lab's watcher failed ({})",
                describe_status(status)
            );
        }
        Ok(Watcher { tx: Some(tx) })
    }

    fn send(&self, kind: u8, a: u64, b: u64, path: &[u8]) -> Result<()> {
        let rec = record(kind, a, b, path).context("a path too long for the lab's watcher")?;
        let tx = self
            .tx
            .as_ref()
            .context("the lab's watcher was already told to exit")?;
        match rustix::io::write(tx, &rec) {
            Ok(n) if n == REC_LEN => Ok(()),
            Ok(_) => bail!("the lab's watcher took part of a record"),
            Err(e) => bail!("telling the lab's watcher: {}", describe(e)),
        }
    }

    /// Segment `shmid`, created by `master`, is to be removed if the master dies.
    pub(super) fn sysv(&self, shmid: c_int, master: libc::pid_t) -> Result<()> {
        self.send(KIND_SYSV, shmid as u64, master as u64, b"")
    }

    /// The file at `path`, whose identity `st` is, is to be removed if the master dies.
    pub(super) fn file(&self, path: &Path, st: &rustix::fs::Stat) -> Result<()> {
        use std::os::unix::ffi::OsStrExt as _;
        self.send(KIND_FILE, st.st_dev, st.st_ino, path.as_os_str().as_bytes())
    }

    /// The master cleaned up: the watcher exits without acting.
    pub(super) fn done(&mut self) {
        if self.tx.is_some() {
            // Failing means the watcher is gone already (killed by someone): nothing to tell.
            let _ = self.send(KIND_DONE, 0, 0, b"");
            self.tx = None;
        }
    }
}

/// A record, or None when the path does not fit.
fn record(kind: u8, a: u64, b: u64, path: &[u8]) -> Option<[u8; REC_LEN]> {
    if path.len() >= REC_LEN - PATH_AT || path.contains(&0) {
        return None;
    }
    let mut rec = [0u8; REC_LEN];
    rec[0] = kind;
    rec[8..16].copy_from_slice(&a.to_le_bytes());
    rec[16..24].copy_from_slice(&b.to_le_bytes());
    rec[PATH_AT..PATH_AT + path.len()].copy_from_slice(path);
    Some(rec)
}

/// (kind, a, b) of a record; its path starts at [`PATH_AT`], NUL-terminated.
fn fields(rec: &[u8; REC_LEN]) -> (u8, u64, u64) {
    let num = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rec[at..at + 8]);
        u64::from_le_bytes(b)
    };
    (rec[0], num(8), num(16))
}

/// What the watcher needs, prepared before the fork.
struct WatchJob {
    pidfd: RawFd,
    rx: RawFd,
    tx: RawFd,
    /// NUL-terminated path of this program.
    exe: *const libc::c_char,
    /// NULL-terminated argument vector for `shmwho lab-watcher`.
    argv: *const *const libc::c_char,
}

/// The intermediate child: forks the watcher and exits, so the watcher is reparented away
/// from the master's tree. Exit status 0 when the watcher started.
///
/// # Safety
/// Only for the child side of `fork`: runs async-signal-safe code and never returns.
unsafe fn detach_and_watch(job: &WatchJob) -> ! {
    // SAFETY: fork in a single-threaded child; the grandchild runs only exec_watcher(), which
    // is async-signal-safe and never returns.
    match unsafe { libc::fork() } {
        -1 => child_exit(EXIT_FAILED),
        // SAFETY: as above.
        0 => unsafe { exec_watcher(job) },
        _ => child_exit(0),
    }
}

/// The grandchild: leaves the lab's process group, ignores the signals that end the lab,
/// lets go of the caller's stdio, and execs `shmwho lab-watcher` with the pidfd and the pipe.
///
/// # Safety
/// Only for the child side of `fork`: runs async-signal-safe code and never returns.
unsafe fn exec_watcher(job: &WatchJob) -> ! {
    // Its own process group: a Ctrl-C or a kill of the lab's group must not take the watcher
    // with the master. SIG_IGN survives exec.
    signals::ignore_in_child(&signals::TERMINAL);
    // SAFETY: setpgid, close, open, dup2, fcntl and execv take integers, pointers prepared
    // before the fork, or a literal C string; all are async-signal-safe.
    unsafe {
        libc::setpgid(0, 0);
        libc::close(job.tx);
        // Nothing of the caller's stays open here: a test reading the lab's stdout sees EOF
        // when the master dies.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for target in 0..=2 {
                libc::dup2(null, target);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        // The two descriptors the watcher needs survive exec; every other one is CLOEXEC.
        libc::fcntl(job.pidfd, libc::F_SETFD, 0);
        libc::fcntl(job.rx, libc::F_SETFD, 0);
        libc::execv(job.exe, job.argv);
    }
    child_exit(EXIT_FAILED)
}

/// `shmwho lab-watcher`: waits for the master to exit, then removes what it was told about,
/// unless told the master did.
pub fn watch(pidfd: RawFd, rx: RawFd) -> Result<()> {
    let mut records = [[0u8; REC_LEN]; MAX_RECORDS];
    let mut count = 0;
    let mut rx_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if rx_open { rx } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds (a negative fd is ignored), and the count says two.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            bail!("poll: {}", last_error());
        }
        if fds[1].revents != 0 {
            match read_record(rx, &mut records, &mut count) {
                Read::Done => return Ok(()),
                Read::Eof => rx_open = false,
                Read::Record | Read::Nothing => {}
            }
        }
        if fds[0].revents != 0 {
            break;
        }
    }
    // The master is gone: take what it wrote before dying, then clean up.
    if rx_open {
        // SAFETY: fcntl on the inherited read end.
        unsafe { libc::fcntl(rx, libc::F_SETFL, libc::O_NONBLOCK) };
        loop {
            match read_record(rx, &mut records, &mut count) {
                Read::Done => return Ok(()),
                Read::Record => {}
                Read::Eof | Read::Nothing => break,
            }
        }
    }
    for rec in &records[..count] {
        remove(rec);
    }
    Ok(())
}

enum Read {
    Record,
    Done,
    Eof,
    Nothing,
}

/// Reads one record into the next free slot.
fn read_record(rx: RawFd, records: &mut [[u8; REC_LEN]; MAX_RECORDS], count: &mut usize) -> Read {
    let mut rec = [0u8; REC_LEN];
    let mut got = 0;
    while got < REC_LEN {
        let rest = &mut rec[got..];
        // SAFETY: `rest` is a live buffer; read writes at most rest.len() bytes into it.
        let n = unsafe { libc::read(rx, rest.as_mut_ptr().cast(), rest.len()) };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                // Nonblocking and empty: only between records, as writes are atomic.
                _ if got == 0 => return Read::Nothing,
                _ => continue,
            }
        }
        if n == 0 {
            return Read::Eof;
        }
        got += n as usize;
    }
    if rec[0] == KIND_DONE {
        return Read::Done;
    }
    if *count < MAX_RECORDS {
        records[*count] = rec;
        *count += 1;
    }
    Read::Record
}

/// Removes what one record names, if it is still what the master created.
fn remove(rec: &[u8; REC_LEN]) {
    let (kind, a, b) = fields(rec);
    match kind {
        KIND_SYSV => {
            let shmid = a as c_int;
            // SAFETY: shmid_ds is plain data for which all-zero is valid; IPC_STAT fills it.
            let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: IPC_STAT writes one shmid_ds into `ds`, which outlives the call.
            if unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) } != 0 {
                return; // already removed
            }
            // A shmid freed by the master's own cleanup may have been reused by another
            // process: only the master's segment is removed.
            if i64::from(ds.shm_cpid) == b as i64 {
                // SAFETY: IPC_RMID ignores the buffer argument, so null is allowed.
                unsafe { libc::shmctl(shmid, libc::IPC_RMID, ptr::null_mut()) };
            }
        }
        KIND_FILE => {
            let path = rec[PATH_AT..].as_ptr().cast::<libc::c_char>();
            // SAFETY: stat is plain data for which all-zero is valid.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `path` is NUL-terminated inside the record (record() leaves at least one
            // zero byte after it); lstat writes one stat into `st`. lstat: a symlink planted at
            // the name is not the file.
            if unsafe { libc::lstat(path, &mut st) } != 0 {
                return;
            }
            if st.st_dev == a && st.st_ino == b {
                // SAFETY: as above; unlink takes the NUL-terminated path.
                unsafe { libc::unlink(path) };
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_long_or_nul_paths() {
        let rec = record(KIND_FILE, 42, 7, b"/dev/shm/shmwho-lab-1").unwrap();
        assert_eq!(fields(&rec), (KIND_FILE, 42, 7));
        assert_eq!(&rec[PATH_AT..PATH_AT + 21], b"/dev/shm/shmwho-lab-1");
        assert_eq!(rec[PATH_AT + 21], 0, "NUL-terminated");
        assert!(record(KIND_FILE, 0, 0, &[b'a'; REC_LEN - PATH_AT - 1]).is_some());
        assert!(record(KIND_FILE, 0, 0, &[b'a'; REC_LEN - PATH_AT]).is_none());
        assert!(record(KIND_FILE, 0, 0, b"a\0b").is_none());
    }
}
