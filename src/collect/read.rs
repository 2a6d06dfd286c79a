//! Reading procfs files: one reused buffer per thread, and what a failed read of a process's
//! file means.

use crate::error::Error;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A process's directory (`/proc/PID`, or `/proc/PID/task/TID`) opened once (`O_PATH`): its
/// files are opened relative to it, which skips the lookup of `/proc` and `PID` (and the pid's
/// revalidation) on every open and readlink, and can only ever reach that process: once it
/// exits, opens through it fail even if its pid is reused. Shared (`Arc`) with a deadline
/// worker that may outlive the read.
pub(crate) type ProcDir = Arc<OwnedFd>;

/// Opens a process directory (see [`ProcDir`]).
pub(crate) fn open_dir(path: &Path) -> io::Result<ProcDir> {
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(Arc::new(fd))
}

/// Grows this process's fd table to hold at least `n` descriptors, by taking one at `n - 1`
/// and closing it (the kernel never shrinks the table). Growing it one doubling at a time as
/// descriptors open waits, at each doubling, for an RCU grace period once the process has a
/// second thread (`expand_fdtable`), and grace periods are slow while the BPF `task`
/// iteration runs beside: at 10,000 processes, opening their directories then took 150-230 ms
/// against ~35 ms. The `/proc` walk (no BPF, or not root) keeps directories open from its
/// reading threads: on the 300-worker pool of `bench/ratios.sh`, `shmwho --json` as `nobody`
/// took 30.9 ms of wall time before the table was grown first, 19.6 ms after (21 runs, ABBA
/// order). Nothing if it fails (`F_DUPFD` refuses beyond `RLIMIT_NOFILE`).
pub(crate) fn reserve_fds(n: usize) {
    let Some(Ok(at)) = n.checked_sub(1).map(i32::try_from) else {
        return;
    };
    let Ok(any) = rustix::fs::open("/dev/null", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
    else {
        return;
    };
    drop(rustix::io::fcntl_dupfd_cloexec(&any, at));
}

/// Opens `name` under `dir` (a subdirectory with `O_PATH`, for [`open_dir`]'s use).
pub(crate) fn open_sub(dir: BorrowedFd<'_>, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Reads procfs files into one reused buffer, without the `statx` `std::fs::read` spends on a
/// size hint procfs does not give.
///
/// Chunk size matters for smaps: a seq_file read that asks for more than the records already
/// formatted makes the kernel format (and page-walk) the next mapping, and throws that work
/// away when it overflows its 4 KiB buffer, to redo it on the next read. Reads no larger than
/// [`SMAPS_CHUNK`] stop before that happens. On 300 workers x 64 MiB, `procs --pss` (one thread) took
/// 0.48 s with 256 KiB reads, 0.30 s with std's growing reads and 0.26 s with 2 KiB reads and no maps read
/// (`cat smaps_rollup` of all: 0.23 s).
pub(crate) const SMAPS_CHUNK: usize = 2048;

/// A reusable read buffer.
pub(crate) struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// A reader with a 256 KiB buffer.
    pub fn new() -> Reader {
        Reader {
            buf: vec![0; 256 * 1024],
        }
    }

    /// The whole file.
    pub fn read(&mut self, path: &Path) -> io::Result<&[u8]> {
        self.read_chunked(path, usize::MAX)
    }

    /// The whole file `name` of process directory `dir`, a file whose text the kernel makes in
    /// one go (`stat`, `status`, `cgroup`: one seq_file record): a read that does not fill the
    /// buffer has it all, which saves the read that would return 0 (one syscall of the ~25 a
    /// process costs).
    pub fn read_small_at(&mut self, dir: BorrowedFd<'_>, name: &str) -> io::Result<&[u8]> {
        use std::io::Read as _;
        let mut f = std::fs::File::from(open_sub(dir, name, OFlags::RDONLY)?);
        if self.buf.is_empty() {
            self.buf.resize(256 * 1024, 0);
        }
        let n = loop {
            match f.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n < self.buf.len() {
            return Ok(&self.buf[..n]);
        }
        let n = fill_from(&mut self.buf, f, n, usize::MAX)?;
        Ok(&self.buf[..n])
    }

    /// The whole file, read `chunk` bytes at a time (see [`SMAPS_CHUNK`]).
    pub fn read_chunked(&mut self, path: &Path, chunk: usize) -> io::Result<&[u8]> {
        let n = fill(&mut self.buf, path, chunk)?;
        Ok(&self.buf[..n])
    }

    /// `/proc/PID/file` (at `path`), a file whose read takes `pid`'s mmap_lock, read
    /// `chunk` bytes at a time under the deadline of [`super::deadline`]: `None` when `pid`
    /// is stuck.
    pub fn read_locked(
        &mut self,
        pid: crate::model::Pid,
        file: &'static str,
        path: &Path,
        chunk: usize,
    ) -> Option<io::Result<&[u8]>> {
        let mut buf = std::mem::take(&mut self.buf);
        let path = path.to_path_buf();
        let (buf, r) = super::deadline::call(pid, file, move || {
            let r = fill(&mut buf, &path, chunk);
            (buf, r)
        })?;
        self.buf = buf;
        Some(r.map(|n| &self.buf[..n]))
    }
}

/// At most the first `max` bytes of `f` into `buf` (grown to `max`): enough for files whose
/// text the kernel produces in one go (`cmdline` up to a page).
pub(crate) fn read_prefix(
    buf: &mut Vec<u8>,
    mut f: std::fs::File,
    max: usize,
) -> io::Result<usize> {
    use std::io::Read as _;
    if buf.len() < max {
        buf.resize(max, 0);
    }
    let mut filled = 0;
    while filled < max {
        match f.read(&mut buf[filled..max]) {
            Ok(0) => break,
            // `cmdline` gives all it has up to the size asked in one read: a short read is
            // the end, and the read that would return 0 is saved.
            Ok(n) if filled + n < max => {
                filled += n;
                break;
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads `name` of process directory `dir` into `buf` (grown as needed), `chunk` bytes at a
/// time; the length read.
pub(crate) fn read_file(
    buf: &mut Vec<u8>,
    dir: BorrowedFd<'_>,
    name: &str,
    chunk: usize,
) -> io::Result<usize> {
    fill_file(
        buf,
        std::fs::File::from(open_sub(dir, name, OFlags::RDONLY)?),
        chunk,
    )
}

/// Reads `path` into `buf` (grown as needed), `chunk` bytes at a time; the length read.
fn fill(buf: &mut Vec<u8>, path: &Path, chunk: usize) -> io::Result<usize> {
    fill_file(buf, std::fs::File::open(path)?, chunk)
}

/// Reads `f` into `buf` (grown as needed), `chunk` bytes at a time; the length read.
pub(crate) fn fill_file(buf: &mut Vec<u8>, f: std::fs::File, chunk: usize) -> io::Result<usize> {
    if buf.is_empty() {
        buf.resize(256 * 1024, 0);
    }
    fill_from(buf, f, 0, chunk)
}

/// [`fill_file`] with the first `filled` bytes of `buf` read already.
fn fill_from(
    buf: &mut Vec<u8>,
    mut f: std::fs::File,
    mut filled: usize,
    chunk: usize,
) -> io::Result<usize> {
    use std::io::Read as _;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let end = buf.len().min(filled.saturating_add(chunk));
        match f.read(&mut buf[filled..end]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How reading a per-process file went.
pub(crate) enum Read<T> {
    Ok(T),
    /// The process exited (or its pid was reused) during the scan.
    Vanished,
    /// Permission denied (another user's process, hidepid).
    Denied,
}

impl<T> Read<T> {
    /// The value changed by `f`, the other outcomes kept.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        match self {
            Read::Ok(v) => Read::Ok(f(v)),
            Read::Vanished => Read::Vanished,
            Read::Denied => Read::Denied,
        }
    }
}

/// EMFILE/ENFILE seen by [`classify`] since this process started: [`super::collect`] compares
/// it before and after, and fails rather than count processes as exited for lack of
/// descriptors.
static OUT_OF_FDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// EMFILE/ENFILE seen so far.
pub(crate) fn fd_errors() -> u64 {
    OUT_OF_FDS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts an EMFILE/ENFILE met outside [`classify`] (an object opened for its residency).
pub(crate) fn note_errno(e: rustix::io::Errno) {
    if e == rustix::io::Errno::MFILE || e == rustix::io::Errno::NFILE {
        OUT_OF_FDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sorts a per-process read's outcome.
pub(crate) fn classify<T>(r: io::Result<T>) -> Read<T> {
    match r {
        Ok(v) => Read::Ok(v),
        Err(e) if crate::error::out_of_fds(&e) => {
            OUT_OF_FDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Read::Vanished
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Read::Denied,
        // ENOENT and ESRCH both mean the process went away; anything else on a per-process
        // file (EIO on a zombie's maps, say) is treated the same: skip it.
        Err(_) => Read::Vanished,
    }
}

/// A file the scan cannot do without: its absence is the scan's error.
pub(crate) fn read_required(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| {
        if crate::error::out_of_fds(&source) {
            return Error::too_many_open_files();
        }
        Error::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's fd table size (`FDSize` in `status`).
    fn fd_size() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn reserving_grows_the_fd_table_and_keeps_no_descriptor() {
        let want = fd_size() * 4;
        let before = std::fs::read_dir("/proc/self/fd").unwrap().count();
        reserve_fds(want);
        assert!(fd_size() >= want, "FDSize {} < {want}", fd_size());
        // Other tests of this binary open files meanwhile; the reserved one is high above them.
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        assert!(highest < want - 1, "fd {highest} left open (had {before})");
    }
}
