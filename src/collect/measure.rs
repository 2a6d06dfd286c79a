//! Measuring an object through a handle (`/proc/PID/fd/N`, `/proc/PID/map_files/RANGE`, or a
//! path) without touching its pages.

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use std::path::Path;

/// What `stat` (following the link) says of a shmem inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InodeStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// `st_blocks × 512`: resident + swapped bytes of the whole object, including pages that no
    /// live process maps (../shared/FACTS.md #4).
    pub allocated: u64,
    pub nlink: u64,
    pub regular: bool,
}

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

/// Resident bytes of an object by `mincore` on a read-only mapping of it that is never touched
/// (a read fault would allocate a page: FACTS #12). Only needed when swap is in use: otherwise
/// `st_blocks` is all resident. `expect` guards against the handle now naming another inode.
pub fn resident_by_mincore(path: &Path, expect: (u64, u64), page_size: u64) -> Result<u64, Errno> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_dev, st.st_ino) != expect {
        return Err(Errno::NOENT);
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size == 0 {
        return Ok(0);
    }
    let len = usize::try_from(size.div_ceil(page_size) * page_size).map_err(|_| Errno::NOMEM)?;
    // SAFETY: a fresh PROT_READ shared mapping of a file we opened; we never dereference it,
    // only pass it to mincore and unmap it below.
    let addr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            &fd,
            0,
        )?
    };
    let pages = len / page_size as usize;
    let mut vec = vec![0u8; pages];
    // SAFETY: addr..addr+len is the mapping made above and vec holds one byte per page.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    // SAFETY: unmapping exactly the mapping created above; nothing refers to it.
    unsafe {
        let _ = rustix::mm::munmap(addr, len);
    }
    if rc != 0 {
        return Err(err);
    }
    let resident = vec.iter().filter(|&&b| b & 1 != 0).count() as u64;
    Ok(resident * page_size)
}
