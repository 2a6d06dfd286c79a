//! The `task` program: per process (thread group leader), what `/proc/PID/stat` and the
//! `ns/ipc` and `ns/mnt` links would tell the scan, so it reads neither.

use super::asm::*;
use super::btf::Btf;
use crate::collect::stat::Stat;

/// Bytes of one record: tid, flags (u32), `start_boottime` (u64), `__state`, `exit_state`
/// (u32), `comm` (16 bytes), the IPC and mount namespaces' inodes (u32, 0 when the task has
/// none left).
pub(super) const RECORD: usize = 48;

/// One process as the iterator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskRecord {
    /// Start, ns after boot.
    pub start_ns: u64,
    /// What `stat` would give (`ppid` aside: 0, the scan takes it from `status`).
    pub stat: Stat,
    /// Inodes of its IPC and mount namespaces.
    pub ipc_ns: Option<u64>,
    pub mnt_ns: Option<u64>,
}

/// Field offsets the program needs, from the kernel's BTF.
pub(super) struct Layout {
    pub attach: u32,
    pid: i16,
    tgid: i16,
    flags: i16,
    start: i16,
    state: i16,
    exit_state: i16,
    comm: i16,
    nsproxy: i16,
    ipc_ns: i16,
    mnt_ns: i16,
    ipc_inum: i16,
    mnt_inum: i16,
    meta_seq: i16,
}

/// The structs and the function [`Layout::read`] looks up.
pub(super) const WANTED: &[&str] = &[
    "bpf_iter_task",
    "task_struct",
    "nsproxy",
    "ipc_namespace",
    "mnt_namespace",
    "bpf_iter_meta",
];

impl Layout {
    pub fn read(btf: &Btf<'_>) -> Option<Layout> {
        let off = |s: &str, m: &str| i16::try_from(btf.member(s, m)?.offset).ok();
        Some(Layout {
            attach: btf.func("bpf_iter_task")?,
            pid: off("task_struct", "pid")?,
            tgid: off("task_struct", "tgid")?,
            flags: off("task_struct", "flags")?,
            start: off("task_struct", "start_boottime")?,
            state: off("task_struct", "__state")?,
            exit_state: off("task_struct", "exit_state")?,
            comm: off("task_struct", "comm")?,
            nsproxy: off("task_struct", "nsproxy")?,
            ipc_ns: off("nsproxy", "ipc_ns")?,
            mnt_ns: off("nsproxy", "mnt_ns")?,
            ipc_inum: off("ipc_namespace", "ns.inum")?,
            mnt_inum: off("mnt_namespace", "ns.inum")?,
            meta_seq: off("bpf_iter_meta", "seq")?,
        })
    }
}

/// The program; see [`RECORD`] for what it writes, for thread group leaders only.
pub(super) fn program(l: &Layout) -> Vec<u64> {
    let mut p = Prog::default();
    // The context is the iterator function's arguments, 8 bytes each: meta, task.
    p.push(&[ldx(Size::DW, R6, R1, 0), ldx(Size::DW, R7, R1, 8)]);
    p.jump(jeq_imm(R7, 0, 0), "out"); // no task: the call after the last one
    p.push(&[ldx(Size::W, R2, R7, l.pid), ldx(Size::W, R3, R7, l.tgid)]);
    p.jump(jne_reg(R2, R3, 0), "out");
    p.push(&[
        stx(Size::W, FP, -48, R2),
        ldx(Size::W, R2, R7, l.flags),
        stx(Size::W, FP, -44, R2),
        ldx(Size::DW, R2, R7, l.start),
        stx(Size::DW, FP, -40, R2),
        ldx(Size::W, R2, R7, l.state),
        stx(Size::W, FP, -32, R2),
        ldx(Size::W, R2, R7, l.exit_state),
        stx(Size::W, FP, -28, R2),
        ldx(Size::DW, R2, R7, l.comm),
        stx(Size::DW, FP, -24, R2),
        ldx(Size::DW, R2, R7, l.comm + 8),
        stx(Size::DW, FP, -16, R2),
        mov_imm(R2, 0),
        stx(Size::W, FP, -8, R2),
        stx(Size::W, FP, -4, R2),
        ldx(Size::DW, R2, R7, l.nsproxy),
    ]);
    p.jump(jeq_imm(R2, 0, 0), "write"); // exiting: its namespaces are gone
    p.push(&[ldx(Size::DW, R3, R2, l.ipc_ns)]);
    p.jump(jeq_imm(R3, 0, 0), "mnt");
    p.push(&[ldx(Size::W, R4, R3, l.ipc_inum), stx(Size::W, FP, -8, R4)]);
    p.label("mnt");
    p.push(&[ldx(Size::DW, R3, R2, l.mnt_ns)]);
    p.jump(jeq_imm(R3, 0, 0), "write");
    p.push(&[ldx(Size::W, R4, R3, l.mnt_inum), stx(Size::W, FP, -4, R4)]);
    p.label("write");
    p.push(&[
        ldx(Size::DW, R1, R6, l.meta_seq),
        mov(R2, FP),
        add_imm(R2, -(RECORD as i32)),
        mov_imm(R3, RECORD as i32),
        call(super::SEQ_WRITE),
    ]);
    p.label("out");
    p.push(&[mov_imm(R0, 0), exit()]);
    p.finish()
}

/// The state letter `stat` prints for a task's `__state` and `exit_state`: the highest
/// reported bit of the two, as the kernel's `__task_state_index` picks it (`TASK_REPORT`
/// bits `R S D T t X Z P`, then `I` for `TASK_IDLE`).
fn state_letter(state: u32, exit_state: u32) -> u8 {
    const TASK_IDLE: u32 = 0x0402; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
    if state & TASK_IDLE == TASK_IDLE {
        return b'I';
    }
    let report = (state | exit_state) & 0x7f;
    b"RSDTtXZP"[(u32::BITS - report.leading_zeros()) as usize]
}

/// The records of `bytes` by pid. A cut last record is ignored.
pub(super) fn parse(bytes: &[u8]) -> std::collections::HashMap<i32, TaskRecord> {
    bytes
        .chunks_exact(RECORD)
        .map(|r| {
            let word = |at: usize| u32::from_le_bytes(r[at..at + 4].try_into().expect("4 bytes"));
            let start_ns = u64::from_le_bytes(r[8..16].try_into().expect("8 bytes"));
            let comm = &r[24..40];
            let comm = &comm[..comm.iter().position(|&b| b == 0).unwrap_or(comm.len())];
            let ns = |at| Some(u64::from(word(at))).filter(|&i| i != 0);
            let rec = TaskRecord {
                start_ns,
                stat: Stat {
                    comm: String::from_utf8_lossy(comm).into_owned(),
                    ppid: 0,
                    state: state_letter(word(16), word(20)),
                    flags: u64::from(word(4)),
                    start_ticks: 0, // set by the caller, who knows the tick
                },
                ipc_ns: ns(40),
                mnt_ns: ns(44),
            };
            (word(0) as i32, rec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_letters_match_the_kernels() {
        assert_eq!(state_letter(0, 0), b'R');
        assert_eq!(state_letter(0x1, 0), b'S');
        assert_eq!(state_letter(0x2, 0), b'D');
        assert_eq!(state_letter(0x402, 0), b'I');
        assert_eq!(state_letter(0x80, 0x20), b'Z'); // TASK_DEAD, EXIT_ZOMBIE
        assert_eq!(state_letter(0x80, 0x10), b'X');
    }

    #[test]
    fn records_parse() {
        let mut r = Vec::new();
        r.extend(42u32.to_le_bytes());
        r.extend(0x0020_0000u32.to_le_bytes());
        r.extend(1234u64.to_le_bytes());
        r.extend(1u32.to_le_bytes());
        r.extend(0u32.to_le_bytes());
        r.extend(*b"a b) (deleted)\0\0");
        r.extend(7u32.to_le_bytes());
        r.extend(0u32.to_le_bytes());
        r.extend([9, 9]); // cut
        let by = parse(&r);
        let t = &by[&42];
        assert_eq!(t.start_ns, 1234);
        assert_eq!(t.stat.comm, "a b) (deleted)");
        assert!(t.stat.is_kernel_thread());
        assert_eq!(t.stat.state, b'S');
        assert_eq!((t.ipc_ns, t.mnt_ns), (Some(7), None));
        assert_eq!(by.len(), 1);
    }
}
