//! The fds of every process that name a file on tmpfs or hugetlbfs, in one pass inside the
//! kernel: a BPF `task_file` iterator replaces the walk of every `/proc/PID/fd` directory.
//!
//! On the 300-worker pool of `bench/ratios.sh`, the fd walk (open, getdents and a readlink per
//! fd) was a quarter of the CPU of `shmwho --json`: 8.0 ms of ~44 ms for 2,101 fds (a C loop
//! measured the walk alone at 8.0 ms, 2.4 ms without the readlinks). The iterator hands back
//! only the few fds on a shared memory filesystem, and the scan reads the links of those alone.
//!
//! Used only where it cannot change what the scan sees: as root with no privilege gained at
//! exec ([`crate::privilege::elevated`]), on the host's own `/proc`, in the initial pid and time
//! namespaces (the iterator reports kernel pids and raw boot times), unless `SHMWHO_NO_BPF` is
//! set. Anything else, or any failure to load, and the scan walks `/proc` as before.
//! The `task_file` iterator takes no lock a stuck process can hold (it walks fd tables under
//! RCU), so it needs no deadline.

mod asm;
mod btf;
mod sys;

use asm::*;
use std::collections::HashMap;
use std::io::Read as _;

/// `TMPFS_MAGIC`: tmpfs, the internal shmem mount (memfd, SysV, anonymous shared), devtmpfs.
const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `HUGETLBFS_MAGIC`.
const HUGETLBFS_MAGIC: u32 = 0x9584_58f6;
/// `BPF_FUNC_seq_write`.
const SEQ_WRITE: i32 = 127;
/// Bytes of one record the program writes.
const RECORD: usize = 32;

/// One fd on tmpfs or hugetlbfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FdRecord {
    /// The fd number.
    pub fd: i32,
    /// The file's device, as `st_dev` encodes it.
    pub dev: u64,
    /// The file's inode.
    pub ino: u64,
}

/// What the iterator found, by thread id (a process's leader, or a thread with fds of its own).
pub(crate) struct FdIndex {
    by_tid: HashMap<i32, (u64, Vec<FdRecord>)>,
    /// `CLOCK_BOOTTIME` when the iteration began, in ns.
    taken_ns: u64,
    /// Nanoseconds per clock tick (`/proc/PID/stat` start times).
    tick_ns: u64,
}

impl FdIndex {
    /// The fds on tmpfs or hugetlbfs of thread `tid`, which started at `start_ticks` (clock
    /// ticks after boot): `None` when the iteration may not have seen that process (it started
    /// within a tick of it or after, so its pid may even be another's now): walk its fds then.
    pub fn fds_of(&self, tid: i32, start_ticks: u64) -> Option<&[FdRecord]> {
        let started_ns = start_ticks.checked_add(1)?.checked_mul(self.tick_ns)?;
        if started_ns >= self.taken_ns {
            return None;
        }
        match self.by_tid.get(&tid) {
            None => Some(&[]),
            Some((start, fds)) if start / self.tick_ns == start_ticks => Some(fds),
            Some(_) => None, // another process with this pid then
        }
    }

    /// Records in iteration order.
    fn from_records(bytes: &[u8], taken_ns: u64, tick_ns: u64) -> FdIndex {
        let mut by_tid: HashMap<i32, (u64, Vec<FdRecord>)> = HashMap::new();
        for r in bytes.chunks_exact(RECORD) {
            let word = |at: usize| u32::from_le_bytes(r[at..at + 4].try_into().expect("4 bytes"));
            let long = |at: usize| u64::from_le_bytes(r[at..at + 8].try_into().expect("8 bytes"));
            let kdev = word(12);
            let rec = FdRecord {
                fd: word(8) as i32,
                // The kernel's own dev_t: 12 bits of major above 20 bits of minor.
                dev: rustix::fs::makedev(kdev >> 20, kdev & 0xf_ffff),
                ino: long(16),
            };
            let entry = by_tid
                .entry(word(4) as i32)
                .or_insert_with(|| (long(24), Vec::new()));
            entry.1.push(rec);
        }
        for (_, fds) in by_tid.values_mut() {
            fds.sort_by_key(|f| f.fd);
        }
        FdIndex {
            by_tid,
            taken_ns,
            tick_ns,
        }
    }
}

/// The kernel's layout facts the program needs, from its BTF.
struct Layout {
    attach: u32,
    task_tgid: i16,
    task_pid: i16,
    task_start: i16,
    file_inode: i16,
    inode_mode: i16,
    inode_sb: i16,
    inode_ino: i16,
    sb_magic: i16,
    sb_dev: i16,
    meta_seq: i16,
}

impl Layout {
    fn read(btf: &btf::Btf<'_>) -> Option<Layout> {
        let off = |s: &str, m: &str| i16::try_from(btf.member(s, m)?.offset).ok();
        Some(Layout {
            attach: btf.func("bpf_iter_task_file")?,
            task_tgid: off("task_struct", "tgid")?,
            task_pid: off("task_struct", "pid")?,
            task_start: off("task_struct", "start_boottime")?,
            file_inode: off("file", "f_inode")?,
            inode_mode: off("inode", "i_mode")?,
            inode_sb: off("inode", "i_sb")?,
            inode_ino: off("inode", "i_ino")?,
            sb_magic: off("super_block", "s_magic")?,
            sb_dev: off("super_block", "s_dev")?,
            meta_seq: off("bpf_iter_meta", "seq")?,
        })
    }
}

/// The `task_file` program: for each fd whose file is a regular file on tmpfs or hugetlbfs,
/// writes a [`RECORD`]: tgid, tid, fd, the kernel's dev_t (u32 each), inode, the task's start
/// (`start_boottime`, ns) (u64 each).
fn program(l: &Layout) -> Vec<u64> {
    // Jumps to the end are written with offset 0 and aimed once its place is known.
    const OUT: i16 = 0;
    // The context is the iterator function's arguments, 8 bytes each: meta, task, fd, file.
    let mut p = vec![
        ldx(Size::DW, R6, R1, 0),
        ldx(Size::DW, R7, R1, 8),
        ldx(Size::W, R9, R1, 16),
        ldx(Size::DW, R8, R1, 24),
        jeq_imm(R7, 0, OUT), // no task: the call after the last one
        jeq_imm(R8, 0, OUT),
        ldx(Size::DW, R2, R8, l.file_inode),
        jeq_imm(R2, 0, OUT),
        ldx(Size::H, R3, R2, l.inode_mode),
        and_imm(R3, 0xf000),
        jne_imm(R3, 0x8000, OUT), // regular files only
        ldx(Size::DW, R4, R2, l.inode_sb),
        jeq_imm(R4, 0, OUT),
        ldx(Size::DW, R5, R4, l.sb_magic),
        jeq32_imm(R5, TMPFS_MAGIC, 2),
        jeq32_imm(R5, HUGETLBFS_MAGIC, 1),
        ja(OUT),
        ldx(Size::W, R3, R7, l.task_tgid),
        stx(Size::W, FP, -32, R3),
        ldx(Size::W, R3, R7, l.task_pid),
        stx(Size::W, FP, -28, R3),
        stx(Size::W, FP, -24, R9),
        ldx(Size::W, R3, R4, l.sb_dev),
        stx(Size::W, FP, -20, R3),
        ldx(Size::DW, R3, R2, l.inode_ino),
        stx(Size::DW, FP, -16, R3),
        ldx(Size::DW, R3, R7, l.task_start),
        stx(Size::DW, FP, -8, R3),
        ldx(Size::DW, R1, R6, l.meta_seq),
        mov(R2, FP),
        add_imm(R2, -(RECORD as i32)),
        mov_imm(R3, RECORD as i32),
        call(SEQ_WRITE),
    ];
    let out = p.len();
    for (i, insn) in p.iter_mut().enumerate() {
        let jump = matches!(*insn & 0xff, 0x05 | 0x15 | 0x55);
        if jump && (*insn >> 16) & 0xffff == 0 {
            let off = u64::from((out - i - 1) as u16);
            *insn |= off << 16;
        }
    }
    p.extend([mov_imm(R0, 0), exit()]);
    p
}

/// The structs and the function [`Layout::read`] looks up.
const WANTED: &[&str] = &[
    "bpf_iter_task_file",
    "task_struct",
    "file",
    "inode",
    "super_block",
    "bpf_iter_meta",
];

/// The kernel's BTF (5.4 MiB here), mapped where the kernel allows (6.16+), else read: a read
/// goes 4 KiB at a time into a buffer that must be faulted in, ~4 ms per scan here.
enum Vmlinux {
    Mapped(*mut std::ffi::c_void, usize),
    Read(Vec<u8>),
}

impl Vmlinux {
    const PATH: &str = "/sys/kernel/btf/vmlinux";

    fn open() -> std::io::Result<Vmlinux> {
        use rustix::mm::{MapFlags, ProtFlags};
        let f = std::fs::File::open(Self::PATH)?;
        let len = usize::try_from(f.metadata()?.len()).map_err(std::io::Error::other)?;
        // SAFETY: a new private read-only mapping of `len` bytes of a file we opened; nothing
        // else refers to that memory, and `Drop` unmaps it once.
        match unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE,
                &f,
                0,
            )
        } {
            Ok(p) if len > 0 => Ok(Vmlinux::Mapped(p, len)),
            _ => Ok(Vmlinux::Read(std::fs::read(Self::PATH)?)),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping of `len` readable bytes lives as long as `self`.
            Vmlinux::Mapped(p, len) => unsafe { std::slice::from_raw_parts(p.cast(), *len) },
            Vmlinux::Read(v) => v,
        }
    }
}

impl Drop for Vmlinux {
    fn drop(&mut self) {
        if let Vmlinux::Mapped(p, len) = *self {
            // SAFETY: `p` and `len` are the mapping made in `open`, unmapped only here.
            let _ = unsafe { rustix::mm::munmap(p, len) };
        }
    }
}

/// The loaded program, kept for the life of the process (an exporter scans again and again).
fn loaded() -> Result<&'static rustix::fd::OwnedFd, String> {
    static PROG: std::sync::OnceLock<Result<rustix::fd::OwnedFd, String>> =
        std::sync::OnceLock::new();
    PROG.get_or_init(|| {
        let blob = Vmlinux::open().map_err(|e| format!("BTF: {e}"))?;
        let btf = btf::Btf::parse(blob.bytes(), WANTED).ok_or("BTF: not parsable")?;
        let layout = Layout::read(&btf).ok_or("BTF: a field or bpf_iter_task_file missing")?;
        sys::load_iter("shmwho_fds", &program(&layout), layout.attach)
            .map_err(|e| format!("load: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Runs the iterator once.
fn iterate() -> Result<FdIndex, String> {
    let prog = loaded()?;
    let iter = sys::open_iter(prog).map_err(|e| format!("iterator: {e}"))?;
    let taken_ns = boottime_ns();
    let mut bytes = Vec::new();
    std::fs::File::from(iter)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("read: {e}"))?;
    let tick_ns = 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1);
    Ok(FdIndex::from_records(&bytes, taken_ns, tick_ns))
}

fn boottime_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

/// The index for a scan of `paths`, where it may be used (see the module's comment).
pub(crate) fn fd_index(paths: &super::HostPaths) -> Option<FdIndex> {
    if std::env::var_os("SHMWHO_NO_BPF").is_some()
        || *paths != super::HostPaths::default()
        || !rustix::process::geteuid().is_root()
        || crate::privilege::elevated()
        || !initial_namespaces()
    {
        return None;
    }
    iterate().ok()
}

/// Whether we are in the initial pid and time namespaces, whose inode numbers the kernel fixes
/// (`PROC_PID_INIT_INO`, `PROC_TIME_INIT_INO`).
fn initial_namespaces() -> bool {
    let ino = |name| super::context::ns_inode_at(rustix::fs::CWD, &format!("/proc/self/ns/{name}"));
    ino("pid") == Some(0xEFFF_FFFC) && ino("time").is_none_or(|i| i == 0xEFFF_FFFA)
}

/// Loads and runs the iterator, or says why it cannot (for tests): the fds on tmpfs or
/// hugetlbfs it found for thread `tid`, as (fd, device, inode).
pub fn probe(tid: i32) -> Result<Vec<(i32, u64, u64)>, String> {
    let index = iterate()?;
    Ok(index
        .by_tid
        .get(&tid)
        .map(|(_, fds)| fds.iter().map(|f| (f.fd, f.dev, f.ino)).collect())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tgid: u32, tid: u32, fd: u32, kdev: u32, ino: u64, start: u64) -> Vec<u8> {
        let mut r = Vec::new();
        for w in [tgid, tid, fd, kdev] {
            r.extend(w.to_le_bytes());
        }
        r.extend(ino.to_le_bytes());
        r.extend(start.to_le_bytes());
        r
    }

    #[test]
    fn index_answers_only_for_processes_the_iteration_saw() {
        let tick = 10_000_000;
        let mut bytes = rec(10, 10, 7, 1, 99, 5 * tick + 3);
        bytes.extend(rec(10, 10, 3, (2 << 20) | 5, 98, 5 * tick + 3));
        bytes.extend([1, 2, 3]); // a cut record is ignored
        let index = FdIndex::from_records(&bytes, 100 * tick, tick);
        let fds = index.fds_of(10, 5).unwrap();
        assert_eq!(fds.len(), 2);
        assert_eq!(fds[0].fd, 3, "sorted by fd");
        assert_eq!(fds[0].dev, rustix::fs::makedev(2, 5));
        assert_eq!(fds[1].dev, rustix::fs::makedev(0, 1));
        assert_eq!(index.fds_of(10, 6), None, "pid reused: another start time");
        assert_eq!(index.fds_of(11, 50), Some(&[][..]), "seen, no such fds");
        assert_eq!(
            index.fds_of(11, 99),
            None,
            "started within a tick of the iteration"
        );
        assert_eq!(index.fds_of(11, 200), None, "started after it");
    }

    #[test]
    fn iterator_lists_a_memfd_of_ours_and_no_pipe() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: loading a BPF iterator needs root");
            return;
        }
        use rustix::fd::AsRawFd;
        let memfd = rustix::fs::memfd_create(
            "shmwho bpf (deleted)\ntest",
            rustix::fs::MemfdFlags::CLOEXEC,
        )
        .unwrap();
        let (pipe, _w) = std::os::unix::net::UnixStream::pair().unwrap();
        let st = rustix::fs::fstat(&memfd).unwrap();
        let found = probe(rustix::process::getpid().as_raw_nonzero().get()).expect("iterator runs");
        assert!(
            found.contains(&(memfd.as_raw_fd(), st.st_dev, st.st_ino)),
            "{found:?} lacks fd {} ({}, {})",
            memfd.as_raw_fd(),
            st.st_dev,
            st.st_ino
        );
        assert!(
            !found.iter().any(|f| f.0 == pipe.as_raw_fd()),
            "a socket is no tmpfs file"
        );
    }

    #[test]
    fn program_jumps_land_inside_it() {
        let l = Layout {
            attach: 1,
            task_tgid: 0,
            task_pid: 0,
            task_start: 0,
            file_inode: 0,
            inode_mode: 0,
            inode_sb: 0,
            inode_ino: 0,
            sb_magic: 0,
            sb_dev: 0,
            meta_seq: 0,
        };
        let p = program(&l);
        let exit_at = p.len() - 2; // `r0 = 0; exit`
        for (i, insn) in p.iter().enumerate() {
            let code = (insn & 0xff) as u8;
            if code & 0x07 == 0x05 || code & 0x07 == 0x06 {
                if code == 0x85 || code == 0x95 {
                    continue;
                }
                let off = ((insn >> 16) & 0xffff) as u16 as i16;
                let to = i as i64 + 1 + i64::from(off);
                assert!(
                    to > i as i64 && to as usize <= exit_at,
                    "jump at {i} to {to}"
                );
            }
        }
    }
}
