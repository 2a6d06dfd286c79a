//! Which pages of an object are in RAM and which are in swap, from the object itself, without
//! touching a page (docs/facts.md #11, #12, #14).
//!
//! Three kernel views, measured on a 2 GiB fully resident memfd here (6.18):
//! - `mincore` on a read-only mapping that is never touched: per-page residency, 35-45 ms. It
//!   counts pages in the swap cache (written to swap, not yet freed) as resident, and reports
//!   every page resident to a caller who neither owns the file nor may write it. It also skips
//!   pages allocated but never written (`fallocate`): it reports uptodate pages only.
//! - `SEEK_DATA`/`SEEK_HOLE`: allocated extents (resident + swapped), 16-20 ms for one extent,
//!   ~100 ms for 65536; fallocated-but-unwritten pages read as holes.
//! - `cachestat` (6.5+): counts per range of pages in the page cache and of swap entries, the
//!   split `/proc/sysvipc/shm` and `Shmem` use; refuses (EPERM) rather than lies; no ranges.
//!
//! So resident ranges come from `mincore`, then `cachestat` makes them exact: one call when its
//! total agrees (the usual case), else swap-cache pages are moved out and unwritten pages found
//! by bisecting only the runs that disagree. Swapped ranges are the `SEEK_DATA` extents that are
//! not resident.

use super::pagemap::PageRanges;
use rustix::fs::{Mode, OFlags, SeekFrom};
use rustix::io::Errno;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// How the resident/swapped split was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// mincore, corrected by cachestat when swap is in use: exact.
    Mincore,
    /// mincore without the swap-cache correction (cachestat unavailable): pages in the swap
    /// cache count as resident.
    MincoreNoCachestat,
    /// SEEK_DATA extents only (mincore would not tell the truth to this caller): resident plus
    /// swapped, exact only when no swap is in use.
    SeekData,
}

/// Residency of one object, in object pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residency {
    /// Apparent size of the object.
    pub size_bytes: u64,
    /// Pages in RAM.
    pub resident: PageRanges,
    /// Pages in swap.
    pub swapped: PageRanges,
    /// How they were told apart.
    pub method: Method,
}

impl Residency {
    /// Whether resident and swapped are each exact.
    pub fn exact(&self, swap_in_use: bool) -> bool {
        match self.method {
            Method::Mincore => true,
            Method::MincoreNoCachestat | Method::SeekData => !swap_in_use,
        }
    }
}

/// Pages per `mincore` call: bounds the vector at 64 KiB whatever the object's size.
const MINCORE_WINDOW: u64 = 64 * 1024;

/// Why an object's residency could not be read through one handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResidencyError {
    /// A system call failed (EPERM/EACCES: no right to open it; ENOENT: the holder is gone).
    Sys(Errno),
    /// The handle now names another file (pid or fd number reused).
    Replaced,
    /// Only data extents could be read (mincore would not answer truthfully), and with swap in
    /// use those include swapped pages: no resident/swapped split.
    NoSplit,
    /// The read went through a holder's map_files and did not answer by the deadline
    /// ([`super::deadline`]): the holder is stuck.
    Stuck,
}

impl From<Errno> for ResidencyError {
    fn from(e: Errno) -> Self {
        ResidencyError::Sys(e)
    }
}

impl ResidencyError {
    /// Opening the handle was refused.
    pub fn denied(self) -> bool {
        matches!(self, ResidencyError::Sys(Errno::PERM | Errno::ACCESS))
    }
}

impl std::fmt::Display for ResidencyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResidencyError::Sys(e) => write!(f, "{e}"),
            ResidencyError::Replaced => f.write_str("the handle names another file now"),
            ResidencyError::NoSplit => f.write_str("no resident/swapped split"),
            ResidencyError::Stuck => f.write_str("the holder's memory map is locked"),
        }
    }
}

/// Opens the object behind `path` (an fd link, a map_files link or a path) read-only and
/// returns its residency. `expect` is (dev, inode), checked against the opened file.
pub fn object_residency(
    path: &Path,
    expect: (u64, u64),
    page_size: u64,
    swap_in_use: bool,
) -> Result<Residency, ResidencyError> {
    let (fd, st) = open_object(path, expect)?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if !mincore_truthful(st.st_uid) {
        let data = data_extents(&fd, size, page_size)?;
        return Ok(Residency {
            size_bytes: size,
            resident: data,
            swapped: PageRanges::new(),
            method: Method::SeekData,
        });
    }
    let seen = mincore_ranges(&fd, size, page_size)?;
    let (resident, method) = match correct_with_cachestat(&fd, &seen, size, page_size, swap_in_use)
    {
        Ok(r) => (r, Method::Mincore),
        Err(_) => (seen, Method::MincoreNoCachestat),
    };
    let swapped = if swap_in_use {
        data_extents(&fd, size, page_size)?.subtract(&resident)
    } else {
        PageRanges::new()
    };
    Ok(Residency {
        size_bytes: size,
        resident,
        swapped,
        method,
    })
}

/// Opens the shared-memory object behind `path` (another process's `/proc/PID/fd/N` or
/// `/proc/PID/map_files/RANGE` link, or a path) read-only, in a way that cannot block: the
/// link's target may be swapped for a FIFO with no writer between the scan and this open, and
/// a plain `open` of that waits for a writer forever. So: an `O_PATH` descriptor (which never
/// runs the file's open), `fstat`, and only a regular file on a shared-memory filesystem
/// (tmpfs/shmem, hugetlbfs, or ramfs where shmem is built without swap) with the device and
/// inode the scan saw is reopened, through our own `/proc/self/fd/N` of that descriptor, with
/// `O_NONBLOCK`. That magic link is ours and pinned to the checked inode, so following it
/// (which `O_NOFOLLOW` would refuse with ELOOP) reaches nothing else. Anything else is
/// [`ResidencyError::Replaced`]: the handle names another file now.
pub fn open_object(
    path: &Path,
    expect: (u64, u64),
) -> Result<(OwnedFd, rustix::fs::Stat), ResidencyError> {
    // From the kernel's include/uapi/linux/magic.h.
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    let pinned = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&pinned)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || (st.st_dev, st.st_ino) != expect
    {
        return Err(ResidencyError::Replaced);
    }
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let fs_type = rustix::fs::fstatfs(&pinned)?.f_type as u64;
    if ![TMPFS_MAGIC, HUGETLBFS_MAGIC, RAMFS_MAGIC].contains(&fs_type) {
        return Err(ResidencyError::Replaced);
    }
    let fd = rustix::fs::open(
        format!("/proc/self/fd/{}", pinned.as_raw_fd()),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_dev, st.st_ino) != expect {
        return Err(ResidencyError::Replaced);
    }
    Ok((fd, st))
}

/// Resident bytes of the object behind `path`, for the objects view's swap split: pages in RAM
/// by mincore on a never-touched read-only mapping, swap-cache pages not counted when
/// cachestat can tell them.
pub fn resident_bytes(
    path: &Path,
    expect: (u64, u64),
    page_size: u64,
) -> Result<u64, ResidencyError> {
    let r = object_residency(path, expect, page_size, true)?;
    if r.method == Method::SeekData {
        return Err(ResidencyError::NoSplit);
    }
    Ok(r.resident.pages() * page_size)
}

/// mincore answers truthfully only to the file's owner, a caller with CAP_FOWNER, or one who
/// may write the file; our fd is read-only, so owner or CAP_FOWNER it must be.
fn mincore_truthful(file_uid: u32) -> bool {
    rustix::process::geteuid().as_raw() == file_uid
        || rustix::thread::capabilities(None)
            .is_ok_and(|c| c.effective.contains(rustix::thread::CapabilitySet::FOWNER))
}

/// Resident pages by `mincore` on a read-only shared mapping that is never touched (a read
/// fault would allocate a page: docs/facts.md #12).
pub fn mincore_ranges(fd: &OwnedFd, size: u64, page_size: u64) -> Result<PageRanges, Errno> {
    let mut out = PageRanges::new();
    if size == 0 {
        return Ok(out);
    }
    let pages = size.div_ceil(page_size);
    let len = usize::try_from(pages * page_size).map_err(|_| Errno::NOMEM)?;
    // SAFETY: a fresh PROT_READ shared mapping of a file we opened; we never dereference it,
    // only pass it to mincore and unmap it below.
    let addr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            fd,
            0,
        )?
    };
    let mut vec = vec![0u8; MINCORE_WINDOW.min(pages) as usize];
    let mut result = Ok(());
    let mut first = 0u64;
    while first < pages {
        let n = MINCORE_WINDOW.min(pages - first);
        let win = &mut vec[..n as usize];
        // SAFETY: the window lies inside the mapping made above, page-aligned, and `win` holds
        // one byte per page of it.
        let rc = unsafe {
            libc::mincore(
                addr.cast::<u8>().add((first * page_size) as usize).cast(),
                (n * page_size) as usize,
                win.as_mut_ptr(),
            )
        };
        if rc != 0 {
            result = Err(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
            break;
        }
        let mut i = 0usize;
        while i < win.len() {
            if win[i] & 1 == 0 {
                i += 1;
                continue;
            }
            let s = i;
            while i < win.len() && win[i] & 1 != 0 {
                i += 1;
            }
            out.add(first + s as u64, (i - s) as u64);
        }
        first += n;
    }
    // SAFETY: unmapping exactly the mapping created above; nothing refers to it.
    unsafe {
        let _ = rustix::mm::munmap(addr, len);
    }
    result.map(|()| out)
}

/// Allocated extents (resident + swapped) by SEEK_DATA/SEEK_HOLE, in whole pages.
pub fn data_extents(fd: &OwnedFd, size: u64, page_size: u64) -> Result<PageRanges, Errno> {
    let mut out = PageRanges::new();
    let mut at = 0u64;
    while at < size {
        let data = match rustix::fs::seek(fd, SeekFrom::Data(at)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break, // no data after `at`
            Err(e) => return Err(e),
        };
        let hole = rustix::fs::seek(fd, SeekFrom::Hole(data))?;
        let (first, end) = (data / page_size, hole.div_ceil(page_size));
        out.add(first, end - first);
        if hole <= at {
            break;
        }
        at = hole;
    }
    Ok(out)
}

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// `cachestat(2)`: the same number on every architecture (the unified syscall table).
const SYS_CACHESTAT: libc::c_long = 451;

/// Pages of `first..first+count` in the page cache (for shmem: in RAM, not swap entries).
fn cached_pages(fd: &OwnedFd, first: u64, count: u64, page_size: u64) -> Result<u64, Errno> {
    let range = CachestatRange {
        off: first * page_size,
        len: count * page_size,
    };
    let mut cs = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `cs`, both live plain repr(C) values.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_raw_fd(),
            &range as *const CachestatRange,
            &mut cs as *mut Cachestat,
            0u32,
        )
    };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    Ok(cs.nr_cache)
}

/// Makes mincore's answer the page cache's: pages only in the swap cache (mincore counts them)
/// leave, pages allocated but never written (mincore and SEEK_DATA skip them; `fallocate`) join.
/// Runs cachestat finds all cached or all absent cost one call; mixed ones are bisected.
fn correct_with_cachestat(
    fd: &OwnedFd,
    seen: &PageRanges,
    size: u64,
    page_size: u64,
    swap_in_use: bool,
) -> Result<PageRanges, Errno> {
    let pages = size.div_ceil(page_size);
    let total = cached_pages(fd, 0, pages, page_size)?;
    if !swap_in_use && total == seen.pages() {
        return Ok(seen.clone()); // the common case: one call
    }
    let mut out = PageRanges::new();
    if swap_in_use {
        for &(first, count) in seen.runs() {
            find_cached(fd, first, count, page_size, &mut out)?;
        }
    } else {
        out = seen.clone();
    }
    if total > out.pages() {
        let unseen = PageRanges::from_runs([(0, pages)]).subtract(seen);
        let mut found = PageRanges::new();
        for &(first, count) in unseen.runs() {
            find_cached(fd, first, count, page_size, &mut found)?;
        }
        out = out.union(&found);
    }
    Ok(out)
}

/// Adds the pages of `first..first+count` that are in the page cache to `out`, in order.
fn find_cached(
    fd: &OwnedFd,
    first: u64,
    count: u64,
    page_size: u64,
    out: &mut PageRanges,
) -> Result<(), Errno> {
    let cached = cached_pages(fd, first, count, page_size)?;
    if cached >= count {
        out.add(first, count);
    } else if cached > 0 && count > 1 {
        let half = count / 2;
        find_cached(fd, first, half, page_size, out)?;
        find_cached(fd, first + half, count - half, page_size, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd(pages: u64, page: u64) -> OwnedFd {
        let fd = rustix::fs::memfd_create("shmwho-residency-test", rustix::fs::MemfdFlags::CLOEXEC)
            .unwrap();
        rustix::fs::ftruncate(&fd, pages * page).unwrap();
        fd
    }

    /// One byte into page `page_no`, through a MADV_NOHUGEPAGE mapping: with shmem THP set to
    /// `always` (by another run on the host), a `pwrite` would allocate a whole 2 MiB page.
    fn write_page(fd: &OwnedFd, page_no: u64, page: u64) {
        let len = page as usize;
        // SAFETY: a fresh shared mapping of one page inside our own memfd, written once
        // through a raw pointer below and unmapped; no Rust reference to it exists.
        unsafe {
            let p = rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                page_no * page,
            )
            .unwrap();
            rustix::mm::madvise(p, len, rustix::mm::Advice::LinuxNoHugepage).unwrap();
            std::ptr::write_volatile(p.cast::<u8>(), 1);
            rustix::mm::munmap(p, len).unwrap();
        }
    }

    #[test]
    fn mincore_and_extents_agree_without_swap() {
        let _mappings = super::super::guards::hold_mappings();
        let page = rustix::param::page_size() as u64;
        let fd = memfd(64, page);
        for p in [0, 1, 2, 10, 40, 63] {
            write_page(&fd, p, page);
        }
        let want = PageRanges::from_runs([(0, 3), (10, 1), (40, 1), (63, 1)]);
        assert_eq!(mincore_ranges(&fd, 64 * page, page).unwrap(), want);
        assert_eq!(data_extents(&fd, 64 * page, page).unwrap(), want);
        // Nothing in the swap cache, nothing unwritten: cachestat keeps every run as it is.
        if let Ok(r) = correct_with_cachestat(&fd, &want, 64 * page, page, true) {
            assert_eq!(r, want);
        }
        assert!(mincore_ranges(&fd, 0, page).unwrap().is_empty());
    }

    #[test]
    fn fallocated_pages_are_resident_but_not_data() {
        let _mappings = super::super::guards::hold_mappings();
        let page = rustix::param::page_size() as u64;
        // fallocate takes a 2 MiB page while shmem THP is `always` (another run on the host
        // may set it for a moment), and no mapping can ask otherwise: retry until base pages.
        let mut fd = None;
        for _ in 0..50 {
            let f = memfd(16, page);
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 4 * page, 4 * page)
                .unwrap();
            if rustix::fs::fstat(&f).unwrap().st_blocks as u64 * 512 == 4 * page {
                fd = Some(f);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let Some(fd) = fd else {
            eprintln!("skipped: shmem THP gave fallocate a huge page in 50 tries");
            return;
        };
        write_page(&fd, 12, page);
        // mincore and SEEK_DATA both skip pages that were allocated but never written...
        let seen = mincore_ranges(&fd, 16 * page, page).unwrap();
        assert_eq!(seen.runs(), &[(12, 1)]);
        assert_eq!(data_extents(&fd, 16 * page, page).unwrap(), seen);
        // ...though they hold memory (st_blocks, Shmem); cachestat finds them.
        let st = rustix::fs::fstat(&fd).unwrap();
        assert_eq!(st.st_blocks as u64 * 512, 5 * page);
        match correct_with_cachestat(&fd, &seen, 16 * page, page, false) {
            Ok(r) => assert_eq!(r.runs(), &[(4, 4), (12, 1)]),
            Err(e) => eprintln!("cachestat unavailable ({e}): kernel before 6.5"),
        }
    }

    /// A FIFO with no writer behind the link answers at once (ENOENT), and so do a
    /// directory, a file on another filesystem and the link itself.
    #[test]
    fn open_object_never_blocks_on_a_fifo() {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        let st = rustix::fs::stat(&fifo).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            open_object(&fifo, (st.st_dev, st.st_ino)).err(),
            Some(ResidencyError::Replaced)
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        let d = rustix::fs::stat(dir.path()).unwrap();
        assert_eq!(
            open_object(dir.path(), (d.st_dev, d.st_ino)).err(),
            Some(ResidencyError::Replaced)
        );
        let page = rustix::param::page_size() as u64;
        let fd = memfd(2, page);
        let st = rustix::fs::fstat(&fd).unwrap();
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let (opened, got) = open_object(Path::new(&link), (st.st_dev, st.st_ino)).unwrap();
        assert_eq!((got.st_dev, got.st_ino), (st.st_dev, st.st_ino));
        let flags = rustix::fs::fcntl_getfl(&opened).unwrap();
        assert!(flags.contains(OFlags::NONBLOCK));
        assert_eq!(flags & OFlags::RWMODE, OFlags::RDONLY);
    }

    #[test]
    fn object_residency_checks_identity() {
        let _mappings = super::super::guards::hold_mappings();
        let page = rustix::param::page_size() as u64;
        let fd = memfd(8, page);
        write_page(&fd, 3, page);
        let st = rustix::fs::fstat(&fd).unwrap();
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let r = object_residency(Path::new(&link), (st.st_dev, st.st_ino), page, false).unwrap();
        assert_eq!(r.resident.runs(), &[(3, 1)]);
        assert!(r.swapped.is_empty());
        assert_eq!(r.size_bytes, 8 * page);
        assert_eq!(
            object_residency(Path::new(&link), (st.st_dev, st.st_ino + 1), page, false),
            Err(ResidencyError::Replaced)
        );
    }
}
