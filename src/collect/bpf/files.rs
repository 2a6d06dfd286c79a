//! The `task_file` program: every fd whose file is a regular file on tmpfs or hugetlbfs.

use super::asm::*;
use super::cache::Lookup;

/// `TMPFS_MAGIC`: tmpfs, the internal shmem mount (memfd, SysV, anonymous shared), devtmpfs.
const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `HUGETLBFS_MAGIC`.
const HUGETLBFS_MAGIC: u32 = 0x9584_58f6;
/// Bytes of one record: tgid, tid, fd, the kernel's dev_t (u32 each), inode, the task's
/// `start_boottime` in ns (u64 each).
pub(super) const RECORD: usize = 32;

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

/// Field offsets the program needs, from the kernel's BTF.
pub(super) struct Layout {
    pub attach: u32,
    rdonly_cast: u32,
    file_id: u32,
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

/// The structs and the function [`Layout::read`] looks up.
pub(super) const WANTED: &[&str] = &[
    "bpf_iter_task_file",
    "bpf_rdonly_cast",
    "task_struct",
    "file",
    "inode",
    "super_block",
    "bpf_iter_meta",
];

impl Layout {
    pub fn read(btf: &dyn Lookup) -> Option<Layout> {
        let off = |s: &str, m: &str| i16::try_from(btf.offset(s, m)?).ok();
        Some(Layout {
            attach: btf.func("bpf_iter_task_file")?,
            rdonly_cast: btf.func("bpf_rdonly_cast")?,
            file_id: btf.struct_id("file")?,
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

/// The program; see [`RECORD`] for what it writes.
pub(super) fn program(l: &Layout) -> Vec<u64> {
    let mut p = Prog::default();
    // The context is the iterator function's arguments, 8 bytes each: meta, task, fd, file.
    p.push(&[
        ldx(Size::DW, R6, R1, 0),
        ldx(Size::DW, R7, R1, 8),
        ldx(Size::W, R9, R1, 16),
        ldx(Size::DW, R8, R1, 24),
    ]);
    p.jump(jeq_imm(R7, 0, 0), "out"); // no task: the call after the last one
    p.jump(jeq_imm(R8, 0, 0), "out");
    // Walked through an untrusted copy of `file`: the verifier then spares each pointer load
    // its linear searches of the kernel's BTF (`btf_find_by_name_kind`, 20% of the whole scan's
    // CPU before). `bpf_rdonly_cast` costs nothing at run time (the verifier makes it a move).
    p.push(&[
        ldx(Size::DW, R6, R6, l.meta_seq),
        mov(R1, R8),
        mov_imm(R2, l.file_id as i32),
        call_kfunc(l.rdonly_cast),
        mov(R8, R0),
        ldx(Size::DW, R2, R8, l.file_inode),
    ]);
    p.jump(jeq_imm(R2, 0, 0), "out");
    p.push(&[ldx(Size::H, R3, R2, l.inode_mode), and_imm(R3, 0xf000)]);
    p.jump(jne_imm(R3, 0x8000, 0), "out"); // regular files only
    p.push(&[ldx(Size::DW, R4, R2, l.inode_sb)]);
    p.jump(jeq_imm(R4, 0, 0), "out");
    p.push(&[ldx(Size::DW, R5, R4, l.sb_magic)]);
    p.jump(jeq32_imm(R5, TMPFS_MAGIC, 0), "keep");
    p.jump(jeq32_imm(R5, HUGETLBFS_MAGIC, 0), "keep");
    p.jump(ja(0), "out");
    p.label("keep");
    p.push(&[
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
        mov(R1, R6),
        mov(R2, FP),
        add_imm(R2, -(RECORD as i32)),
        mov_imm(R3, RECORD as i32),
        call(super::SEQ_WRITE),
    ]);
    p.label("out");
    p.push(&[mov_imm(R0, 0), exit()]);
    p.finish()
}

/// The records of `bytes` by thread id, each with the thread's start (ns after boot), sorted
/// by fd. A cut last record is ignored.
pub(super) fn parse(bytes: &[u8]) -> std::collections::HashMap<i32, (u64, Vec<FdRecord>)> {
    let mut by_tid: std::collections::HashMap<i32, (u64, Vec<FdRecord>)> = Default::default();
    for r in bytes.chunks_exact(RECORD) {
        let word = |at| super::le32(r, at);
        let long = |at| super::le64(r, at);
        let rec = FdRecord {
            fd: word(8) as i32,
            dev: super::user_dev(word(12)),
            ino: long(16),
        };
        by_tid
            .entry(word(4) as i32)
            .or_insert_with(|| (long(24), Vec::new()))
            .1
            .push(rec);
    }
    for (_, fds) in by_tid.values_mut() {
        fds.sort_by_key(|f| f.fd);
    }
    by_tid
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rec(tgid: u32, tid: u32, fd: u32, kdev: u32, ino: u64, start: u64) -> Vec<u8> {
        let mut r = Vec::new();
        for w in [tgid, tid, fd, kdev] {
            r.extend(w.to_le_bytes());
        }
        r.extend(ino.to_le_bytes());
        r.extend(start.to_le_bytes());
        r
    }

    #[test]
    fn records_parse_by_thread_sorted_by_fd() {
        let mut bytes = rec(10, 10, 7, 1, 99, 53);
        bytes.extend(rec(10, 10, 3, (2 << 20) | 5, 98, 53));
        bytes.extend(rec(10, 12, 4, 1, 97, 60));
        bytes.extend([1, 2, 3]);
        let by = parse(&bytes);
        let (start, fds) = &by[&10];
        assert_eq!(*start, 53);
        assert_eq!(fds.iter().map(|f| f.fd).collect::<Vec<_>>(), [3, 7]);
        assert_eq!(fds[0].dev, rustix::fs::makedev(2, 5));
        assert_eq!(by[&12].1[0].ino, 97);
        assert_eq!(by.len(), 2);
    }
}
