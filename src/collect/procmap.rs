//! A process's file-backed mappings through the `PROCMAP_QUERY` ioctl of an open
//! `/proc/PID/maps` (Linux 6.11, docs/facts.md 18) instead of its text.
//!
//! Why: on the 300-worker pool of `bench/ratios.sh`, formatting maps (`show_map`) was ~13% of
//! a scan's CPU and parsing it ~4%. The query gives the fields as integers, skips anonymous
//! mappings in the kernel, and names (`d_path`) only the mappings asked about. Measured
//! there (366 processes, every maps): text reads 9.5 ms of CPU, file-backed queries 6.5 ms
//! (~21 per process); for the whole `shmwho --json`, see docs/bench.md.

use super::parse::maps::MapsEntry;
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// `struct procmap_query` of `<linux/fs.h>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcmapQuery {
    /// This struct's size (the kernel accepts older and newer ones).
    pub size: u64,
    /// `QUERY_*` bits.
    pub query_flags: u64,
    /// The address looked up.
    pub query_addr: u64,
    /// The mapping found: its first address,
    pub vma_start: u64,
    /// the address after its last,
    pub vma_end: u64,
    /// its `VMA_*` bits,
    pub vma_flags: u64,
    /// its page size,
    pub vma_page_size: u64,
    /// its offset in the file, in bytes,
    pub vma_offset: u64,
    /// its file's inode number,
    pub inode: u64,
    /// and device.
    pub dev_major: u32,
    /// (minor)
    pub dev_minor: u32,
    /// In: the size of the name buffer (0: no name wanted); out: the name's length with its
    /// NUL (0: no name).
    pub vma_name_size: u32,
    /// Build id buffer size; never asked for here.
    pub build_id_size: u32,
    /// The name buffer's address.
    pub vma_name_addr: u64,
    /// The build id buffer's address.
    pub build_id_addr: u64,
}

/// `vma_flags`: a MAP_SHARED mapping (VM_MAYSHARE, as maps' `s`).
const VMA_SHARED: u64 = 0x08;
/// `query_flags`: the mapping covering `query_addr`, else the next one.
const QUERY_COVERING_OR_NEXT_VMA: u64 = 0x10;
/// `query_flags`: file-backed mappings only (the kernel skips anonymous ones itself).
const QUERY_FILE_BACKED_VMA: u64 = 0x20;

/// The size of a name buffer: the kernel names into at most `PATH_MAX` bytes, NUL included.
pub(crate) const NAME_BUF: usize = libc::PATH_MAX as usize;

/// What [`walk`] found.
pub(crate) enum Walked {
    /// The mappings kept, in address order.
    Entries(Vec<MapsEntry>),
    /// The kernel has no `PROCMAP_QUERY` (the first query failed with ENOTTY, EINVAL or
    /// EOPNOTSUPP): read the text, now and for every later process.
    Unsupported,
    /// This process's maps need the text: a kept mapping's name is longer than the buffer
    /// (ENAMETOOLONG), or the query was refused (EPERM, EACCES: a security module's ioctl
    /// rule; the open, where the kernel checks access to the process, succeeded).
    Text,
}

/// One query of `maps` (an open `/proc/PID/maps`), retried when interrupted.
fn query(maps: BorrowedFd<'_>, q: &mut ProcmapQuery) -> Result<(), Errno> {
    const OPCODE: rustix::ioctl::Opcode =
        rustix::ioctl::opcode::read_write::<ProcmapQuery>(b'f', 17);
    loop {
        // SAFETY: PROCMAP_QUERY is _IOWR('f', 17, struct procmap_query) and `q` is that
        // struct (`#[repr(C)]`, the layout of <linux/fs.h>), exclusively borrowed for the
        // call. The only memory the kernel writes besides `q` is `vma_name_size` bytes at
        // `vma_name_addr`, which the callers set to a live buffer of at least that size (or
        // 0, for no name); `build_id_size` is 0.
        let r = unsafe {
            rustix::ioctl::ioctl(
                maps,
                rustix::ioctl::Updater::<'_, OPCODE, ProcmapQuery>::new(q),
            )
        };
        match r {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// A query at `addr` for the mapping covering it or the next file-backed one, with the name
/// into `name` when it is not empty.
fn query_at(addr: u64, name: &mut [u8]) -> ProcmapQuery {
    ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_flags: QUERY_COVERING_OR_NEXT_VMA | QUERY_FILE_BACKED_VMA,
        query_addr: addr,
        vma_name_size: u32::try_from(name.len()).unwrap_or(u32::MAX),
        vma_name_addr: if name.is_empty() {
            0
        } else {
            name.as_mut_ptr() as u64
        },
        ..ProcmapQuery::default()
    }
}

/// The maps line the kernel would have printed for the mapping `q` found, `name` being what
/// it wrote into the name buffer (NUL included, as `vma_name_size` counts it).
pub(crate) fn to_entry(q: &ProcmapQuery, name: &[u8]) -> MapsEntry {
    let len = (q.vma_name_size as usize).min(name.len());
    let name = &name[..len];
    // The kernel counts the NUL in `vma_name_size`; nothing after it is the name.
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    MapsEntry {
        start: q.vma_start,
        end: q.vma_end,
        shared: q.vma_flags & VMA_SHARED != 0,
        offset: q.vma_offset,
        dev_major: q.dev_major,
        dev_minor: q.dev_minor,
        inode: q.inode,
        path: name.to_vec(),
    }
}

/// The file-backed mappings of `maps` (an open `/proc/PID/maps`) on major-0 devices (the only
/// ones that can be shared memory: docs/facts.md 1) that `keep` keeps, with the same fields a
/// text read gives, named through `name` (at least [`NAME_BUF`] bytes for names up to
/// `PATH_MAX`).
///
/// One query per file-backed mapping, without its name (formatting a path is the dear part),
/// and a second one with the name for the major-0 ones. A process that exits during the walk
/// (ESRCH: its mm is gone) gives what was found until then, as a text read cut short does.
///
/// Cost, on the 300 x 64 MiB pool of `bench/ratios.sh` (675 processes, two pools): ~25
/// ioctls per process where the text took ~2 reads (`strace -c -f shmwho --json`: 27 → 50
/// syscalls per process), yet `shmwho --json` 78-81 → 67-71 ms of CPU and `procs --json`
/// 84-88 → 73-76 ms (`bench/cpu.py`, both binaries in one session; docs/bench.md).
/// The mapping that starts at `start` and ends at `end`, named: `Ok(None)` when no such
/// mapping is there now (it changed since it was listed), or when a query cannot say (no
/// `PROCMAP_QUERY`, a name too long, a refused query): read the whole maps then.
pub(crate) fn named(
    maps: BorrowedFd<'_>,
    start: u64,
    end: u64,
    name: &mut [u8],
) -> std::io::Result<Option<MapsEntry>> {
    let mut q = query_at(start, name);
    match query(maps, &mut q) {
        Ok(()) if q.vma_start == start && q.vma_end == end => Ok(Some(to_entry(&q, name))),
        Ok(()) => Ok(None),
        Err(Errno::NOENT | Errno::SRCH) => Ok(None),
        Err(Errno::NOTTY | Errno::INVAL | Errno::OPNOTSUPP | Errno::NAMETOOLONG) => Ok(None),
        Err(Errno::PERM | Errno::ACCESS) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn walk(
    maps: BorrowedFd<'_>,
    name: &mut [u8],
    mut keep: impl FnMut(&MapsEntry) -> bool,
) -> std::io::Result<Walked> {
    let mut out = Vec::new();
    let mut addr = 0u64;
    let mut first = true;
    loop {
        let mut q = query_at(addr, &mut []);
        match query(maps, &mut q) {
            Ok(()) => {}
            // ENOENT: no file-backed mapping at or after `addr`.
            Err(Errno::NOENT | Errno::SRCH) => break,
            Err(Errno::NOTTY | Errno::INVAL | Errno::OPNOTSUPP) if first => {
                return Ok(Walked::Unsupported)
            }
            Err(Errno::PERM | Errno::ACCESS) => return Ok(Walked::Text),
            Err(e) => return Err(e.into()),
        }
        first = false;
        if q.dev_major == 0 {
            let mut named = query_at(q.vma_start, name);
            match query(maps, &mut named) {
                Ok(()) => {}
                Err(Errno::NOENT | Errno::SRCH) => break,
                Err(Errno::NAMETOOLONG | Errno::PERM | Errno::ACCESS) => return Ok(Walked::Text),
                Err(e) => return Err(e.into()),
            }
            // Usually the same mapping again; if it changed in between, whatever is there
            // now (checked by `keep` like any other).
            q = named;
            let e = to_entry(&q, name);
            if e.dev_major == 0 && keep(&e) {
                out.push(e);
            }
        }
        if q.vma_end <= addr {
            break; // no progress: never seen, but a loop here would never end
        }
        addr = q.vma_end;
    }
    Ok(Walked::Entries(out))
}

/// One mapping as [`spans`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
}

/// Every mapping of `maps` (an open `/proc/PID/maps`), anonymous ones too, in address order:
/// one query each, without names. `Ok(None)` where the queries cannot say (no
/// `PROCMAP_QUERY`, a refused query, the process gone meanwhile).
pub(crate) fn spans(maps: BorrowedFd<'_>) -> std::io::Result<Option<Vec<Span>>> {
    let mut out = Vec::new();
    let mut addr = 0u64;
    loop {
        let mut q = ProcmapQuery {
            size: std::mem::size_of::<ProcmapQuery>() as u64,
            query_flags: QUERY_COVERING_OR_NEXT_VMA,
            query_addr: addr,
            ..ProcmapQuery::default()
        };
        match query(maps, &mut q) {
            Ok(()) => {}
            // ENOENT: no mapping at or after `addr`.
            Err(Errno::NOENT) => break,
            Err(
                Errno::SRCH
                | Errno::NOTTY
                | Errno::INVAL
                | Errno::OPNOTSUPP
                | Errno::PERM
                | Errno::ACCESS,
            ) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if q.vma_end <= addr {
            break; // no progress: never seen, but a loop here would never end
        }
        out.push(Span {
            start: q.vma_start,
            end: q.vma_end,
            dev_major: q.dev_major,
            dev_minor: q.dev_minor,
            inode: q.inode,
        });
        addr = q.vma_end;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(start: u64, flags: u64, dev: (u32, u32), inode: u64, name: &[u8]) -> ProcmapQuery {
        ProcmapQuery {
            vma_start: start,
            vma_end: start + 0x2000,
            vma_flags: flags,
            vma_offset: 0x1000,
            inode,
            dev_major: dev.0,
            dev_minor: dev.1,
            vma_name_size: u32::try_from(name.len()).unwrap(),
            ..ProcmapQuery::default()
        }
    }

    #[test]
    fn layout_is_the_kernels() {
        // <linux/fs.h>: nine __u64, four __u32, two __u64.
        assert_eq!(std::mem::size_of::<ProcmapQuery>(), 104);
        assert_eq!(std::mem::offset_of!(ProcmapQuery, dev_major), 72);
        assert_eq!(std::mem::offset_of!(ProcmapQuery, vma_name_addr), 88);
    }

    #[test]
    fn conversion_keeps_raw_names_and_flags() {
        let name = b"/memfd:a b\nc (deleted) (deleted)\0garbage";
        let q = found(0x7f00_0000, 0x08 | 0x03, (0, 1), 42, &name[..33]);
        let e = to_entry(&q, name);
        assert_eq!(
            e,
            MapsEntry {
                start: 0x7f00_0000,
                end: 0x7f00_2000,
                shared: true,
                offset: 0x1000,
                dev_major: 0,
                dev_minor: 1,
                inode: 42,
                path: b"/memfd:a b\nc (deleted) (deleted)".to_vec(),
            }
        );
        // The same line as text parses to the same entry.
        let line =
            b"7f000000-7f002000 rw-s 00001000 00:01 42   /memfd:a b\\012c (deleted) (deleted)";
        assert_eq!(crate::collect::parse::maps::parse_line(line), Some(e));
        // A private mapping; SysV segment 0 (inode 0); no name at all.
        let q = found(0x1000, 0x03, (0, 1), 0, b"/SYSV00000000 (deleted)\0");
        let e = to_entry(&q, b"/SYSV00000000 (deleted)\0");
        assert!(!e.shared);
        assert_eq!(
            (e.inode, e.path.as_slice()),
            (0, &b"/SYSV00000000 (deleted)"[..])
        );
        let q = found(0x1000, 0x08, (0, 1), 7, b"");
        assert!(to_entry(&q, &[0; 16]).path.is_empty());
    }

    /// A mapping of ours, unmapped on drop.
    struct Mapped(*mut std::ffi::c_void, usize);

    impl Mapped {
        fn new(fd: Option<BorrowedFd<'_>>, flags: rustix::mm::MapFlags) -> Mapped {
            use rustix::mm::ProtFlags;
            let len = 2 * rustix::param::page_size();
            let prot = ProtFlags::READ | ProtFlags::WRITE;
            // SAFETY: a new mapping at an address the kernel picks: no memory of ours is
            // replaced, and only `Drop` unmaps it.
            let p = unsafe {
                match fd {
                    Some(fd) => rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0),
                    None => rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, prot, flags),
                }
            };
            Mapped(p.expect("mmap"), len)
        }

        fn start(&self) -> u64 {
            self.0 as u64
        }
    }

    impl Drop for Mapped {
        fn drop(&mut self) {
            // SAFETY: our own mapping, made by `new`, not referenced by anything else.
            let _ = unsafe { rustix::mm::munmap(self.0, self.1) };
        }
    }

    /// A SysV segment attached here, removed at once (it lives until detached), detached on
    /// drop.
    struct Segment(*mut std::ffi::c_void);

    impl Segment {
        fn new() -> Segment {
            let len = 2 * rustix::param::page_size();
            // SAFETY: shmget takes integers only.
            let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, 0o600 | libc::IPC_CREAT) };
            assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
            // SAFETY: attaches at an address the kernel picks; only `Drop` detaches it.
            let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
            // SAFETY: IPC_RMID takes no buffer; the segment stays while attached, and goes
            // with this process even if the test dies.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
            Segment(p)
        }
    }

    impl Drop for Segment {
        fn drop(&mut self) {
            // SAFETY: our own attachment, made by `new`, not referenced by anything else.
            unsafe { libc::shmdt(self.0) };
        }
    }

    #[test]
    fn walk_gives_what_the_text_gives() {
        let _mappings = super::super::guards::hold_mappings();
        use rustix::fd::AsFd;
        use rustix::mm::MapFlags;
        let memfd = rustix::fs::memfd_create(
            "shmwho pq  a b\nc (deleted) x",
            rustix::fs::MemfdFlags::CLOEXEC,
        )
        .unwrap();
        let page = rustix::param::page_size() as u64;
        rustix::fs::ftruncate(&memfd, 2 * page).unwrap();
        let shm = tempfile::Builder::new()
            .prefix("shmwho-procmap-test ")
            .tempfile_in("/dev/shm")
            .unwrap();
        shm.as_file().set_len(2 * page).unwrap();
        let ours = [
            Mapped::new(Some(memfd.as_fd()), MapFlags::SHARED),
            Mapped::new(Some(memfd.as_fd()), MapFlags::PRIVATE),
            Mapped::new(Some(shm.as_file().as_fd()), MapFlags::SHARED),
            Mapped::new(None, MapFlags::SHARED),
        ];
        let segment = Segment::new();
        let mut starts: Vec<u64> = ours.iter().map(Mapped::start).collect();
        starts.push(segment.0 as u64);

        let maps = std::fs::File::open("/proc/self/maps").unwrap();
        let mut name = vec![0; NAME_BUF];
        let walked = match walk(maps.as_fd(), &mut name, |e| starts.contains(&e.start)) {
            Ok(Walked::Entries(v)) => v,
            Ok(Walked::Unsupported) => {
                eprintln!("skipped: this kernel has no PROCMAP_QUERY (6.11+)");
                return;
            }
            Ok(Walked::Text) => panic!("PROCMAP_QUERY refused on our own maps"),
            Err(e) => panic!("{e}"),
        };
        let text = std::fs::read("/proc/self/maps").unwrap();
        let parsed: Vec<MapsEntry> = crate::collect::parse::maps::parse(&text)
            .filter(|e| starts.contains(&e.start))
            .collect();
        assert_eq!(walked, parsed);
        assert_eq!(walked.len(), 5, "{walked:?}");
        let shared = walked.iter().find(|e| e.start == starts[0]).unwrap();
        assert!(shared.shared && shared.dev_major == 0);
        assert_eq!(
            shared.path,
            b"/memfd:shmwho pq  a b\nc (deleted) x (deleted)"
        );
        let private = walked.iter().find(|e| e.start == starts[1]).unwrap();
        assert!(!private.shared && private.inode == shared.inode);
        assert!(walked.iter().any(|e| e.path.starts_with(b"/SYSV")));
        drop(segment);
    }

    #[test]
    fn a_file_other_than_maps_is_unsupported() {
        let status = std::fs::File::open("/proc/self/status").unwrap();
        let mut name = vec![0; NAME_BUF];
        let r = walk(rustix::fd::AsFd::as_fd(&status), &mut name, |_| true).unwrap();
        assert!(matches!(r, Walked::Unsupported));
    }
}
