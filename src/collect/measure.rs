//! Measuring an object through a handle (`/proc/PID/fd/N`, `/proc/PID/map_files/RANGE`, or a
//! path) without touching its pages.

use rustix::fs::FileType;
use rustix::io::Errno;
use std::path::Path;

/// What `stat` (following the link) says of a shmem inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InodeStat {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`: the apparent size.
    pub size: u64,
    /// `st_blocks × 512`: resident + swapped bytes of the whole object, including pages that no
    /// live process maps (docs/facts.md #4).
    pub allocated: u64,
    /// Hard links: 0 once unlinked.
    pub nlink: u64,
    /// A regular file (not a directory, device or socket).
    pub regular: bool,
}

/// `stat` of `path`, following the link (an fd or map_files link names the object itself).
pub fn stat(path: &Path) -> Result<InodeStat, Errno> {
    rustix::fs::stat(path).map(InodeStat::from)
}

/// Like [`stat`] without following a final symlink.
pub fn lstat(path: &Path) -> Result<InodeStat, Errno> {
    rustix::fs::lstat(path).map(InodeStat::from)
}

impl From<rustix::fs::Stat> for InodeStat {
    fn from(st: rustix::fs::Stat) -> InodeStat {
        InodeStat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            allocated: u64::try_from(st.st_blocks).unwrap_or(0) * 512,
            nlink: st.st_nlink,
            regular: FileType::from_raw_mode(st.st_mode) == FileType::RegularFile,
        }
    }
}
