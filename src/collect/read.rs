//! Reading procfs files: one reused buffer per thread, and what a failed read of a process's
//! file means.

use crate::error::Error;
use std::io;
use std::path::Path;

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

    /// At most the first `max` bytes of `/proc/PID/file` (at `path`), in one read: enough for
    /// files whose text the kernel produces in one go (`cmdline` up to a page). The read takes
    /// `pid`'s mmap_lock (docs/facts.md #23), so it runs under the deadline of
    /// [`super::deadline`]: `None` when `pid` is stuck.
    pub fn read_prefix_locked(
        &mut self,
        pid: crate::model::Pid,
        file: &'static str,
        path: &Path,
        max: usize,
    ) -> Option<io::Result<&[u8]>> {
        let mut buf = std::mem::take(&mut self.buf);
        let path = path.to_path_buf();
        let (buf, r) = super::deadline::call(pid, file, move || {
            let r = prefix(&mut buf, &path, max);
            (buf, r)
        })?;
        self.buf = buf;
        Some(r.map(|n| &self.buf[..n]))
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

/// Reads at most the first `max` bytes of `path` into `buf` (grown to `max` if shorter: a
/// buffer left behind by a stuck read is empty); the length read.
fn prefix(buf: &mut Vec<u8>, path: &Path, max: usize) -> io::Result<usize> {
    use std::io::Read as _;
    if buf.len() < max {
        buf.resize(max, 0);
    }
    let mut f = std::fs::File::open(path)?;
    let mut filled = 0;
    while filled < max {
        match f.read(&mut buf[filled..max]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads `path` into `buf` (grown as needed), `chunk` bytes at a time; the length read.
fn fill(buf: &mut Vec<u8>, path: &Path, chunk: usize) -> io::Result<usize> {
    use std::io::Read as _;
    if buf.is_empty() {
        buf.resize(256 * 1024, 0);
    }
    let mut f = std::fs::File::open(path)?;
    let mut filled = 0;
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
