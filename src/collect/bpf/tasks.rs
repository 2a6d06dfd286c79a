//! The `task` program: per process (thread group leader), what `/proc/PID/stat` and the
//! `ns/ipc` and `ns/mnt` links would tell the scan, so it reads neither.

use super::asm::*;
use super::cache::Lookup;
use crate::collect::stat::Stat;

/// Bytes of every record. A process's record (kind 1): kind, tid, flags, the outcome of its
/// mappings' walk (0: all listed; 2: not walked, unchanged since the walk the map of
/// [`Generation`]s holds; negative: the kernel's error, as `-EBUSY` when its mmap_lock was
/// taken; 1: a mapping of a backing file, whose maps line names another inode) (u32 each),
/// `start_boottime` (u64), `__state`, `exit_state` (u32), `comm` (16 bytes), the IPC and mount
/// namespaces' inodes (u32, 0 when the task has none left), its mm's `mm_lock_seq` and the low
/// half of its `self_exec_id` (u32 each, 0 without a map), its real uid and its parent's tgid
/// (u32 each: `status`'s first `Uid` and `PPid`), the kernfs ids of its v2 cgroup and of its
/// cgroup in the memory controller's hierarchy (u64 each, 0 when unknown), 1 when its memory
/// counters follow (u32), how many mappings its walk visited (u32), and its memory counters in pages (i64 each, in the order
/// of `mm_struct.rss_stat`: file, anon, swap entries, shmem; see [`Counters`]). Before it, one
/// record (kind 2) per file mapping on a device of major 0: kind, tid (u32), start, end,
/// vm_flags, vm_pgoff (u64), the kernel's dev_t, 0 (u32), inode (u64), 0 (u64 × 9).
pub(super) const RECORD: usize = 128;

/// One process as the iterator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskRecord {
    /// Start, ns after boot.
    pub start_ns: u64,
    /// What `stat` would give.
    pub stat: Stat,
    /// Its real uid, as `status` gives it.
    pub uid: u32,
    /// The kernfs ids (the directories' inode numbers) of its cgroup in the v2 hierarchy and in
    /// the memory controller's, when known: the scan names each cgroup once (`collect::cgroup`).
    pub cgroup_ids: CgroupIds,
    /// Inodes of its IPC and mount namespaces.
    pub ipc_ns: Option<u64>,
    pub mnt_ns: Option<u64>,
    /// Its file mappings on devices of major 0 (the only ones that can be shared memory), when
    /// the walk of its mappings listed them all.
    pub vmas: Option<Vec<VmaRecord>>,
    /// Its mappings' [`Generation`] when it was read, if the program had a map to compare it
    /// with; with `unchanged`, the walk was skipped (`vmas` is `None` until the caller fills
    /// it from what it kept of that generation's walk).
    pub generation: Option<Generation>,
    pub unchanged: bool,
    /// Its memory counters, where the program read them (see [`Counters`]).
    pub counters: Option<Counters>,
    /// How many mappings the walk visited (all of them when it listed them all; 0 when it was
    /// skipped): what reading its smaps would format (`super::super::body`).
    pub mappings: u32,
}

/// A process's memory counters as `/proc/PID/status` prints them (`RssFile`, `RssAnon`,
/// `VmSwap`, `RssShmem`; `VmRSS` is the sum of the three resident ones): in pages, each the
/// sum of its `percpu_counter` (the shared count plus every CPU's part, as `status` sums them
/// with `get_mm_counter_sum`), not yet clamped at 0 as `status` clamps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub file: i64,
    pub anon: i64,
    pub swap: i64,
    pub shmem: i64,
}

impl Counters {
    /// What `status` prints of them, with `ppid` and `uid` (its name left empty): each
    /// counter at least 0 (`get_mm_counter_sum`), in bytes.
    pub fn status(&self, ppid: i32, uid: u32) -> crate::collect::status::Status {
        let page = rustix::param::page_size() as u64;
        let bytes = |pages: i64| u64::try_from(pages).unwrap_or(0).saturating_mul(page);
        let (anon, file, shmem) = (bytes(self.anon), bytes(self.file), bytes(self.shmem));
        crate::collect::status::Status {
            name: String::new(),
            ppid,
            uid,
            vm_rss: Some(anon.saturating_add(file).saturating_add(shmem)),
            rss_anon: anon,
            rss_file: file,
            rss_shmem: shmem,
            vm_swap: bytes(self.swap),
        }
    }
}

/// The kernfs ids of a process's cgroups (see [`TaskRecord::cgroup_ids`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CgroupIds {
    /// In the v2 (unified) hierarchy.
    pub v2: Option<u64>,
    /// In the hierarchy of the memory controller (v1's, or v2's nearest cgroup with it).
    pub memory: Option<u64>,
}

/// What tells that a process's mappings did not change between two iterations: the process
/// (its start, and the low half of its `self_exec_id`, which every exec increments, the only
/// way a process gets another mm) and its mm's `mm_lock_seq`, a seqcount every write-locked
/// section of the mm (every mmap, munmap, mprotect, mremap, brk) bumps, odd while one runs
/// (Linux 6.13 and later; docs/facts.md 31). Laid out as the map's value: start (u64), exec,
/// seq (u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Generation {
    pub start_ns: u64,
    pub exec: u32,
    pub seq: u32,
}

impl TaskRecord {
    /// A process started at `start_ns`, with nothing else known (for tests).
    #[cfg(test)]
    pub fn started(start_ns: u64) -> TaskRecord {
        TaskRecord {
            start_ns,
            stat: Stat {
                comm: "t".into(),
                ppid: 0,
                state: b'S',
                flags: 0,
                start_ticks: 0,
            },
            uid: 0,
            cgroup_ids: CgroupIds::default(),
            ipc_ns: None,
            mnt_ns: None,
            vmas: None,
            generation: None,
            unchanged: false,
            counters: None,
            mappings: 0,
        }
    }
}

impl Generation {
    /// The map's value.
    pub fn value(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.start_ns.to_le_bytes());
        v[8..12].copy_from_slice(&self.exec.to_le_bytes());
        v[12..].copy_from_slice(&self.seq.to_le_bytes());
        v
    }
}

/// A file mapping on a device of major 0, as its maps line would give it (less the path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VmaRecord {
    pub start: u64,
    pub end: u64,
    /// `VM_MAYSHARE`: `s` in maps.
    pub shared: bool,
    /// Offset in the file, bytes.
    pub offset: u64,
    /// As `st_dev` encodes it.
    pub dev: u64,
    pub inode: u64,
}

/// Field offsets and kernel functions the program needs, from the kernel's BTF.
pub(super) struct Layout {
    pub attach: u32,
    rdonly_cast: u32,
    task_id: u32,
    vma_id: u32,
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
    vma_new: u32,
    vma_next: u32,
    vma_destroy: u32,
    vm_start: i16,
    vm_end: i16,
    vm_flags: i16,
    vm_pgoff: i16,
    vm_file: i16,
    f_inode: i16,
    f_mode: i16,
    i_sb: i16,
    i_ino: i16,
    s_dev: i16,
    real_parent: i16,
    cred: i16,
    cred_uid: i16,
    /// Where a process's [`Generation`] is, on kernels that have one.
    generation: Option<GenerationAt>,
    /// Where its cgroups' ids are, with the memory controller's index in `css_set.subsys`.
    cgroups: Option<CgroupsAt>,
    /// Where its memory counters are, where the program can sum them.
    counters: Option<CountersAt>,
}

/// What the program needs to sum a process's memory counters ([`Counters`]).
struct CountersAt {
    mm: i16,
    /// `mm_struct.rss_stat`: an array of `struct percpu_counter`, `size` bytes each.
    rss_stat: i16,
    size: i16,
    /// In `struct percpu_counter`: its spinlock, its shared count, its per-CPU parts.
    lock: i16,
    count: i16,
    parts: i16,
    /// `bpf_array.pptrs`: where a per-CPU array map keeps the per-CPU address of its value.
    pptrs: i16,
    /// CPUs to sum over: every possible one (a CPU taken offline has its parts folded into
    /// the shared count and zeroed by the kernel, so the sum is the same as over the online
    /// ones `status` adds).
    cpus: u32,
}

/// The most CPUs whose counters the program sums: it reads each CPU's parts with three helper
/// calls per process, where `status` adds them in the kernel at the cost of formatting ~55
/// lines. Here (2 CPUs, `kernel.bpf_stats_enabled`) the sum made the program 1,277 ns per
/// process (`top`) against 1,095 ns without it (the exporter), where reading `status` cost
/// ~7 us more than reading `statm`; at 64 CPUs the sum stays below that. Beyond, `status` is
/// read.
const MAX_SUMMED_CPUS: u32 = 64;

/// Where the counters are and how the program sums them, where it can: on x86-64 (its
/// ordering of loads is what the program's consistency check relies on), from Linux 6.2
/// (counters as `percpu_counter`s), with at most [`MAX_SUMMED_CPUS`].
fn counters_at(btf: &dyn Lookup) -> Option<CountersAt> {
    if !cfg!(target_arch = "x86_64") || !at_least(6, 2) {
        return None;
    }
    let cpus = possible_cpus().filter(|&n| n <= MAX_SUMMED_CPUS)?;
    let off = |s: &str, m: &str| i16::try_from(btf.offset(s, m)?).ok();
    Some(CountersAt {
        mm: off("task_struct", "mm")?,
        rss_stat: off("mm_struct", "rss_stat")?,
        size: i16::try_from(btf.size("percpu_counter")?).ok()?,
        lock: off("percpu_counter", "lock")?,
        count: off("percpu_counter", "count")?,
        parts: off("percpu_counter", "counters")?,
        pptrs: off("bpf_array", "pptrs")?,
        cpus,
    })
}

/// The number of possible CPUs (the highest index of `/sys/devices/system/cpu/possible`, plus
/// one: the kernel's `nr_cpu_ids`).
fn possible_cpus() -> Option<u32> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    let last = text.trim().rsplit([',', '-']).next()?;
    last.parse::<u32>().ok()?.checked_add(1)
}

/// Offsets of the way from a task to its cgroups' kernfs ids.
struct CgroupsAt {
    cgroups: i16,
    dfl_cgrp: i16,
    subsys: i16,
    css_cgroup: i16,
    kn: i16,
    kn_id: i16,
    /// `memory_cgrp_id`: the row of `memory` in `/proc/cgroups`, which lists the controllers
    /// in the order of their ids (`css_set.subsys` has one slot per row).
    memory: Option<i16>,
}

/// The index of the memory controller among the kernel's cgroup controllers.
fn memory_controller() -> Option<i16> {
    let text = std::fs::read_to_string("/proc/cgroups").ok()?;
    let row = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .position(|l| l.split_whitespace().next() == Some("memory"))?;
    i16::try_from(row).ok()
}

/// Offsets of a [`Generation`]'s parts.
struct GenerationAt {
    mm: i16,
    exec: i16,
    lock_seq: i16,
}

/// The structs and functions [`Layout::read`] looks up.
pub(super) const WANTED: &[&str] = &[
    "bpf_iter_task",
    "bpf_rdonly_cast",
    "task_struct",
    "nsproxy",
    "ipc_namespace",
    "mnt_namespace",
    "bpf_iter_meta",
    "bpf_iter_task_vma_new",
    "bpf_iter_task_vma_next",
    "bpf_iter_task_vma_destroy",
    "vm_area_struct",
    "file",
    "inode",
    "super_block",
    "mm_struct",
    "cred",
    "css_set",
    "cgroup_subsys_state",
    "cgroup",
    "kernfs_node",
    "percpu_counter",
    "bpf_array",
];

impl Layout {
    /// Whether the program can skip the walk of a process whose [`Generation`] is in a map.
    pub fn has_generations(&self) -> bool {
        self.generation.is_some()
    }

    /// Whether the program gives each process's cgroups' kernfs ids.
    pub fn has_cgroup_ids(&self) -> bool {
        self.cgroups.is_some()
    }

    /// Whether the program sums each process's memory counters.
    pub fn has_counters(&self) -> bool {
        self.counters.is_some()
    }

    /// This layout with no memory counters: the program without them (for a kernel that
    /// refuses the program with them).
    pub fn without_counters(mut self) -> Layout {
        self.counters = None;
        self
    }

    pub fn read(btf: &dyn Lookup) -> Option<Layout> {
        let off = |s: &str, m: &str| i16::try_from(btf.offset(s, m)?).ok();
        Some(Layout {
            attach: btf.func("bpf_iter_task")?,
            rdonly_cast: btf.func("bpf_rdonly_cast")?,
            task_id: btf.struct_id("task_struct")?,
            vma_id: btf.struct_id("vm_area_struct")?,
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
            vma_new: btf.func("bpf_iter_task_vma_new")?,
            vma_next: btf.func("bpf_iter_task_vma_next")?,
            vma_destroy: btf.func("bpf_iter_task_vma_destroy")?,
            vm_start: off("vm_area_struct", "vm_start")?,
            vm_end: off("vm_area_struct", "vm_end")?,
            vm_flags: off("vm_area_struct", "vm_flags")?,
            vm_pgoff: off("vm_area_struct", "vm_pgoff")?,
            vm_file: off("vm_area_struct", "vm_file")?,
            f_inode: off("file", "f_inode")?,
            f_mode: off("file", "f_mode")?,
            i_sb: off("inode", "i_sb")?,
            i_ino: off("inode", "i_ino")?,
            s_dev: off("super_block", "s_dev")?,
            real_parent: off("task_struct", "real_parent")?,
            cred: off("task_struct", "cred")?,
            cred_uid: off("cred", "uid.val")?,
            cgroups: (|| {
                Some(CgroupsAt {
                    cgroups: off("task_struct", "cgroups")?,
                    dfl_cgrp: off("css_set", "dfl_cgrp")?,
                    subsys: off("css_set", "subsys")?,
                    css_cgroup: off("cgroup_subsys_state", "cgroup")?,
                    kn: off("cgroup", "kn")?,
                    kn_id: off("kernfs_node", "id")?,
                    memory: memory_controller(),
                })
            })(),
            counters: counters_at(btf),
            // A seqcount since Linux 6.13; before, a plain counter bumped only as a write-locked
            // section ends, which cannot tell an idle mm from one in the middle of a change.
            generation: (|| {
                Some(GenerationAt {
                    mm: off("task_struct", "mm")?,
                    exec: off("task_struct", "self_exec_id")?,
                    lock_seq: off("mm_struct", "mm_lock_seq.sequence")?,
                })
            })(),
        })
    }
}

/// `FMODE_BACKING` of the running kernel: a file whose maps line names another inode (the
/// overlayfs file a user mapped) than its `f_inode`; the scan reads that process's maps
/// instead. Bit 25 from Linux 6.6, bit 24 since 6.14, whose bit 25 (`FMODE_NONOTIFY_PERM`)
/// is set on most files: testing it sent 302 of 371 processes here back to maps.
fn fmode_backing() -> i32 {
    if at_least(6, 14) {
        1 << 24
    } else {
        1 << 25
    }
}

/// Whether the running kernel is at least `major.minor`.
fn at_least(major: u32, minor: u32) -> bool {
    let release = rustix::system::uname();
    let release = release.release().to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    (next(), next()) >= (major, minor)
}

/// `BPF_FUNC_map_lookup_elem`.
const MAP_LOOKUP: i32 = 1;

/// `VM_MAYSHARE`, which maps prints as `s`.
const VM_MAYSHARE: u64 = 0x80;

/// The program; see [`RECORD`] for what it writes, for thread group leaders only. It walks
/// each process's mappings with the kernel's open-coded iterator, which only tries the
/// mmap_lock (`-EBUSY` if held): a stuck process does not stall the iteration.
///
/// With `generations` (the fd of a hash map from tgid to [`Generation`], which its caller
/// fills with the generations whose walks it keeps), a process whose generation is the one in
/// the map is not walked: its record says so (outcome 2).
pub(super) fn program(l: &Layout, generations: Option<i32>, cpus: Option<i32>) -> Vec<u64> {
    let mut p = Prog::default();
    // Stack: the process's record at -128, a mapping's at -256, the mapping iterator at -264,
    // the map's key (tgid) at -272, the process's generation at -288, and the scratch of the
    // sum of its counters below ([`sum_counters`]).
    const T: i16 = -(RECORD as i16);
    const V: i16 = 2 * T;
    const IT: i32 = 2 * T as i32 - 8;
    const KEY: i16 = 2 * T - 16;
    const GEN: i16 = 2 * T - 32;
    // The context is the iterator function's arguments, 8 bytes each: meta, task.
    p.push(&[ldx(Size::DW, R6, R1, 0), ldx(Size::DW, R7, R1, 8)]);
    p.jump(jeq_imm(R7, 0, 0), "out"); // no task: the call after the last one
    p.push(&[ldx(Size::DW, R6, R6, l.meta_seq)]);
    p.push(&[ldx(Size::W, R2, R7, l.pid), ldx(Size::W, R3, R7, l.tgid)]);
    p.jump(jne_reg(R2, R3, 0), "out");
    p.push(&[
        stx(Size::W, FP, T + 4, R2),
        stx(Size::W, FP, V + 4, R2),
        mov_imm(R3, 1),
        stx(Size::W, FP, T, R3),
        mov_imm(R3, 2),
        stx(Size::W, FP, V, R3),
        mov_imm(R3, 0),
        stx(Size::W, FP, V + 44, R3),
        stx(Size::DW, FP, V + 56, R3),
        stx(Size::DW, FP, V + 64, R3),
        stx(Size::DW, FP, V + 72, R3),
        stx(Size::DW, FP, V + 80, R3),
    ]);
    // The rest of both records is zero until set (the kernel reads all of them).
    for at in (56..RECORD as i16).step_by(8) {
        p.push(&[stx(Size::DW, FP, T + at, R3)]);
        if at >= 88 {
            p.push(&[stx(Size::DW, FP, V + at, R3)]);
        }
    }
    if let (Some(map), Some(g)) = (generations, &l.generation) {
        p.push(&[
            stx(Size::W, FP, KEY, R2),
            mov(R1, R7),
            mov_imm(R2, l.task_id as i32),
            call_kfunc(l.rdonly_cast),
            ldx(Size::DW, R2, R0, l.start),
            stx(Size::DW, FP, GEN, R2),
            ldx(Size::DW, R2, R0, g.exec),
            stx(Size::W, FP, GEN + 8, R2),
            stx(Size::W, FP, T + 60, R2),
            mov_imm(R2, 0),
            stx(Size::W, FP, GEN + 12, R2),
            ldx(Size::DW, R3, R0, g.mm),
        ]);
        p.jump(jeq_imm(R3, 0, 0), "walk"); // no mm: the walk's error says why
        p.push(&[
            ldx(Size::W, R2, R3, g.lock_seq),
            stx(Size::W, FP, GEN + 12, R2),
            stx(Size::W, FP, T + 56, R2),
        ]);
        p.jump(jset_imm(R2, 1, 0), "walk"); // a write-locked section runs
        p.push(&ld_map_fd(R1, map));
        p.push(&[mov(R2, FP), add_imm(R2, i32::from(KEY)), call(MAP_LOOKUP)]);
        p.jump(jeq_imm(R0, 0, 0), "walk");
        p.push(&[ldx(Size::DW, R1, R0, 0), ldx(Size::DW, R2, FP, GEN)]);
        p.jump(jne_reg(R1, R2, 0), "walk");
        p.push(&[ldx(Size::DW, R1, R0, 8), ldx(Size::DW, R2, FP, GEN + 8)]);
        p.jump(jne_reg(R1, R2, 0), "walk");
        p.push(&[mov_imm(R8, 2)]);
        p.jump(ja(0), "info");
    }
    p.label("walk");
    p.push(&[
        mov(R1, FP),
        add_imm(R1, IT),
        mov(R2, R7),
        mov_imm(R3, 0),
        call_kfunc(l.vma_new),
        mov(R8, R0),
    ]);
    p.label("next");
    p.push(&[mov(R1, FP), add_imm(R1, IT), call_kfunc(l.vma_next)]);
    p.jump(jeq_imm(R0, 0, 0), "done");
    p.push(&[
        ldx(Size::W, R1, FP, T + 92),
        add_imm(R1, 1),
        stx(Size::W, FP, T + 92, R1),
    ]);
    // Pointers are walked from untrusted copies (of the mapping here, of the task below): the
    // verifier then spares each pointer load its linear searches of the kernel's BTF
    // (`btf_find_by_name_kind`, 20% of the whole scan's CPU before). `bpf_rdonly_cast` costs
    // nothing at run time (the verifier makes it a move).
    p.push(&[
        mov(R1, R0),
        mov_imm(R2, l.vma_id as i32),
        call_kfunc(l.rdonly_cast),
        mov(R9, R0),
        ldx(Size::DW, R2, R9, l.vm_file),
    ]);
    p.jump(jeq_imm(R2, 0, 0), "next");
    p.push(&[ldx(Size::DW, R3, R2, l.f_inode)]);
    p.jump(jeq_imm(R3, 0, 0), "next");
    p.push(&[ldx(Size::DW, R4, R3, l.i_sb)]);
    p.jump(jeq_imm(R4, 0, 0), "next");
    p.push(&[ldx(Size::W, R5, R4, l.s_dev), mov(R1, R5), rsh_imm(R1, 20)]);
    p.jump(jne_imm(R1, 0, 0), "next"); // major 0 only
    p.push(&[ldx(Size::W, R1, R2, l.f_mode)]);
    p.jump(jset_imm(R1, fmode_backing(), 0), "backing");
    p.push(&[
        stx(Size::W, FP, V + 40, R5),
        ldx(Size::DW, R1, R3, l.i_ino),
        stx(Size::DW, FP, V + 48, R1),
        ldx(Size::DW, R1, R9, l.vm_start),
        stx(Size::DW, FP, V + 8, R1),
        ldx(Size::DW, R1, R9, l.vm_end),
        stx(Size::DW, FP, V + 16, R1),
        ldx(Size::DW, R1, R9, l.vm_flags),
        stx(Size::DW, FP, V + 24, R1),
        ldx(Size::DW, R1, R9, l.vm_pgoff),
        stx(Size::DW, FP, V + 32, R1),
        mov(R1, R6),
        mov(R2, FP),
        add_imm(R2, i32::from(V)),
        mov_imm(R3, RECORD as i32),
        call(super::SEQ_WRITE),
    ]);
    p.jump(ja(0), "next");
    p.label("backing");
    p.push(&[mov_imm(R8, 1)]);
    p.label("done");
    p.push(&[mov(R1, FP), add_imm(R1, IT), call_kfunc(l.vma_destroy)]);
    p.label("info");
    p.push(&[
        mov(R1, R7),
        mov_imm(R2, l.task_id as i32),
        call_kfunc(l.rdonly_cast),
        mov(R7, R0),
        stx(Size::W, FP, T + 12, R8),
        ldx(Size::W, R2, R7, l.flags),
        stx(Size::W, FP, T + 8, R2),
        ldx(Size::DW, R2, R7, l.start),
        stx(Size::DW, FP, T + 16, R2),
        ldx(Size::W, R2, R7, l.state),
        stx(Size::W, FP, T + 24, R2),
        ldx(Size::W, R2, R7, l.exit_state),
        stx(Size::W, FP, T + 28, R2),
        ldx(Size::DW, R2, R7, l.comm),
        stx(Size::DW, FP, T + 32, R2),
        ldx(Size::DW, R2, R7, l.comm + 8),
        stx(Size::DW, FP, T + 40, R2),
        mov_imm(R2, 0),
        stx(Size::W, FP, T + 48, R2),
        stx(Size::W, FP, T + 52, R2),
    ]);
    if let (Some(c), Some(map)) = (&l.counters, cpus) {
        sum_counters(&mut p, c, map, T, GEN);
    }
    let w = Size::W;
    chase(&mut p, R7, &[l.real_parent], (w, l.tgid), T + 68, "cred");
    p.label("cred");
    chase(&mut p, R7, &[l.cred], (w, l.cred_uid), T + 64, "cgroups");
    p.label("cgroups");
    if let Some(c) = &l.cgroups {
        // task->cgroups->dfl_cgrp->kn->id, and ->subsys[memory]->cgroup->kn->id.
        p.push(&[ldx(Size::DW, R2, R7, c.cgroups)]);
        p.jump(jeq_imm(R2, 0, 0), "ns");
        let id = (Size::DW, c.kn_id);
        chase(&mut p, R2, &[c.dfl_cgrp, c.kn], id, T + 72, "memory");
        p.label("memory");
        if let Some(m) = c.memory {
            let hops = [c.subsys + 8 * m, c.css_cgroup, c.kn];
            chase(&mut p, R2, &hops, id, T + 80, "ns");
        }
    }
    p.label("ns");
    p.push(&[ldx(Size::DW, R2, R7, l.nsproxy)]);
    p.jump(jeq_imm(R2, 0, 0), "write"); // exiting: its namespaces are gone
    chase(&mut p, R2, &[l.ipc_ns], (w, l.ipc_inum), T + 48, "mnt");
    p.label("mnt");
    chase(&mut p, R2, &[l.mnt_ns], (w, l.mnt_inum), T + 52, "write");
    p.label("write");
    p.push(&[
        mov(R1, R6),
        mov(R2, FP),
        add_imm(R2, i32::from(T)),
        mov_imm(R3, RECORD as i32),
        call(super::SEQ_WRITE),
    ]);
    p.label("out");
    p.push(&[mov_imm(R0, 0), exit()]);
    p.finish()
}

/// `BPF_FUNC_probe_read_kernel` and `BPF_FUNC_map_lookup_percpu_elem`.
const PROBE_READ_KERNEL: i32 = 113;
const LOOKUP_PERCPU: i32 = 195;

/// The counters of `mm_struct.rss_stat` (4 of them: `NR_MM_COUNTERS`).
const COUNTERS: i16 = 4;

/// Sums the memory counters of the task in `r7` (a `task_struct` copy) into the record at
/// `t` of the stack, and sets its flag (at `t + 88`) when it did; leaves the flag 0 when the
/// task has no mm or another one once they are read (it exited or ran exec meanwhile), when
/// a counter's per-CPU parts are not laid out as one block (as `percpu_counter_init_many` lays
/// them out), or when a counter's parts may have been folded into its count while they were
/// read. Uses `r8` and 88 bytes of the stack below `below`.
///
/// A CPU's part of a counter is at the counter's per-CPU address plus that CPU's offset, which
/// the program learns from `cpus`, the descriptor of a per-CPU array map ([`super::sys::
/// percpu_array`]): the address of the map's value on that CPU less its per-CPU address. (The
/// kernel's BTF here has neither the `__percpu` tags `bpf_per_cpu_ptr` needs on a counter's
/// parts nor, without `CONFIG_KALLSYMS_ALL`, the address of a per-CPU variable.)
///
/// `status` sums each counter under its spinlock, which keeps out the fold of a CPU's part
/// into the shared count (`percpu_counter_add_batch`: count += part, then part -= part, under
/// the lock). The program cannot take it; it reads, per counter, the count, the lock (free),
/// every CPU's part, the lock again (free) and the count again (unchanged). A fold before the
/// first read of the lock either finished before the count was read or changed it before the
/// second read; one that overlaps either read of the lock is seen there; one between them
/// changes the count. On x86 loads are not reordered with other loads, so the program sees a
/// sum `status` could have printed at that moment, or none.
fn sum_counters(p: &mut Prog, c: &CountersAt, cpus: i32, t: i16, below: i16) {
    let before = below - 8 * COUNTERS; // the counts first read (i64 x 4)
    let block = before - 8; // the address of the per-CPU parts of the first counter
    let part = block - 16; // one CPU's parts (i32 x 4)
    let key = part - 8; // the map's key, 0
    let pointer = key - 8; // a pointer, stored to be read back as a number
    let number = pointer - 8; // that number
    let base = number - 8; // the per-CPU address of the map's value
    let flag = t + 88;
    let sums = t + 96;
    let at = |k: i16, field: i16| c.rss_stat + k * c.size + field;
    // The number a pointer of the stack at `pointer` holds, to `number`, or to "counted".
    let as_number = |p: &mut Prog| {
        p.push(&[
            mov(R1, FP),
            add_imm(R1, i32::from(number)),
            mov_imm(R2, 8),
            mov(R3, FP),
            add_imm(R3, i32::from(pointer)),
            call(PROBE_READ_KERNEL),
        ]);
        p.jump(jne_imm(R0, 0, 0), "counted");
    };
    p.push(&[ldx(Size::DW, R8, R7, c.mm)]);
    p.jump(jeq_imm(R8, 0, 0), "counted"); // a kernel thread, or an exiting process
    for k in 0..COUNTERS {
        p.push(&[
            ldx(Size::DW, R2, R8, at(k, c.count)),
            stx(Size::DW, FP, before + 8 * k, R2),
            stx(Size::DW, FP, sums + 8 * k, R2),
            ldx(Size::W, R2, R8, at(k, c.lock)),
        ]);
        p.jump(jne_imm(R2, 0, 0), "counted");
        p.push(&[ldx(Size::DW, R2, R8, at(k, c.parts))]);
        if k == 0 {
            p.push(&[stx(Size::DW, FP, block, R2)]);
        } else {
            p.push(&[ldx(Size::DW, R3, FP, block), add_imm(R3, 4 * i32::from(k))]);
            p.jump(jne_reg(R2, R3, 0), "counted");
        }
    }
    // The map's `pptrs[0]`, through the map's address.
    p.push(&ld_map_fd(R1, cpus));
    p.push(&[stx(Size::DW, FP, pointer, R1)]);
    as_number(p);
    p.push(&[
        mov(R1, FP),
        add_imm(R1, i32::from(base)),
        mov_imm(R2, 8),
        ldx(Size::DW, R3, FP, number),
        add_imm(R3, i32::from(c.pptrs)),
        call(PROBE_READ_KERNEL),
    ]);
    p.jump(jne_imm(R0, 0, 0), "counted");
    p.push(&[mov_imm(R2, 0), stx(Size::DW, FP, key, R2)]);
    for cpu in 0..c.cpus {
        p.push(&ld_map_fd(R1, cpus));
        p.push(&[
            mov(R2, FP),
            add_imm(R2, i32::from(key)),
            mov_imm(R3, cpu as i32),
            call(LOOKUP_PERCPU),
        ]);
        p.jump(jeq_imm(R0, 0, 0), "counted");
        p.push(&[stx(Size::DW, FP, pointer, R0)]);
        as_number(p);
        p.push(&[
            // This CPU's offset, then the address of its parts.
            ldx(Size::DW, R3, FP, number),
            ldx(Size::DW, R2, FP, base),
            sub_reg(R3, R2),
            ldx(Size::DW, R2, FP, block),
            add_reg(R3, R2),
            mov(R1, FP),
            add_imm(R1, i32::from(part)),
            mov_imm(R2, 4 * i32::from(COUNTERS)),
            call(PROBE_READ_KERNEL),
        ]);
        p.jump(jne_imm(R0, 0, 0), "counted");
        for k in 0..COUNTERS {
            p.push(&[
                ldx(Size::W, R2, FP, part + 4 * k),
                lsh_imm(R2, 32),
                arsh_imm(R2, 32), // the part is an s32
                ldx(Size::DW, R3, FP, sums + 8 * k),
                add_reg(R3, R2),
                stx(Size::DW, FP, sums + 8 * k, R3),
            ]);
        }
    }
    for k in 0..COUNTERS {
        p.push(&[ldx(Size::W, R2, R8, at(k, c.lock))]);
        p.jump(jne_imm(R2, 0, 0), "counted");
        p.push(&[
            ldx(Size::DW, R2, R8, at(k, c.count)),
            ldx(Size::DW, R3, FP, before + 8 * k),
        ]);
        p.jump(jne_reg(R2, R3, 0), "counted");
    }
    // Still its mm: exit and exec take a task's mm away before they let it go, so the mm and
    // its counters were not freed while they were read.
    p.push(&[ldx(Size::DW, R2, R7, c.mm)]);
    p.jump(jne_reg(R2, R8, 0), "counted");
    p.push(&[mov_imm(R2, 1), stx(Size::W, FP, flag, R2)]);
    p.label("counted");
}

/// Follows the pointers at offsets `hops` from `from`, then stores the value (of size and
/// offset `last`) of the last one at `slot` of the stack; to `miss` at a null pointer. Uses
/// `r3`.
fn chase(p: &mut Prog, from: Reg, hops: &[i16], last: (Size, i16), slot: i16, miss: &'static str) {
    let mut from = from;
    for &hop in hops {
        p.push(&[ldx(Size::DW, R3, from, hop)]);
        p.jump(jeq_imm(R3, 0, 0), miss);
        from = R3;
    }
    p.push(&[ldx(last.0, R3, R3, last.1), stx(last.0, FP, slot, R3)]);
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

/// The processes whose records in `bytes` (one iteration's) the iteration found before
/// their directories were surely in place: those of pids above what `marks` (for each
/// `read`, where its bytes begin and how far the directories were in place before the read
/// before it, as `super::run` gives them) says for the read that delivered them.
pub(super) fn found_early(bytes: &[u8], marks: &[(usize, i32)]) -> std::collections::HashSet<i32> {
    let mut early = std::collections::HashSet::new();
    for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
        if super::le32(r, 0) != 1 {
            continue;
        }
        let at = i * RECORD;
        let read = marks.partition_point(|&(from, _)| from <= at);
        let placed = read.checked_sub(1).map_or(0, |m| marks[m].1);
        let pid = super::le32(r, 4) as i32;
        if pid > placed {
            early.insert(pid);
        }
    }
    early
}

/// The records of `bytes` by pid, each process with the mappings listed before it, and its
/// generation if the program had a map of them (`generations`). A cut last record is ignored.
pub(super) fn parse(bytes: &[u8], generations: bool) -> std::collections::HashMap<i32, TaskRecord> {
    let mut out = std::collections::HashMap::new();
    let mut vmas: Vec<VmaRecord> = Vec::new();
    for r in bytes.chunks_exact(RECORD) {
        let word = |at| super::le32(r, at);
        let long = |at| super::le64(r, at);
        if word(0) == 2 {
            vmas.push(VmaRecord {
                start: long(8),
                end: long(16),
                shared: long(24) & VM_MAYSHARE != 0,
                offset: long(32).saturating_mul(rustix::param::page_size() as u64),
                dev: super::user_dev(word(40)),
                inode: long(48),
            });
            continue;
        }
        let listed = std::mem::take(&mut vmas);
        let comm = &r[32..48];
        let comm = &comm[..comm.iter().position(|&b| b == 0).unwrap_or(comm.len())];
        let ns = |at| Some(u64::from(word(at))).filter(|&i| i != 0);
        let rec = TaskRecord {
            start_ns: long(16),
            stat: Stat {
                comm: String::from_utf8_lossy(comm).into_owned(),
                ppid: word(68) as i32,
                state: state_letter(word(24), word(28)),
                flags: u64::from(word(8)),
                start_ticks: 0, // set by the caller, who knows the tick
            },
            uid: word(64),
            cgroup_ids: CgroupIds {
                v2: Some(long(72)).filter(|&i| i != 0),
                memory: Some(long(80)).filter(|&i| i != 0),
            },
            ipc_ns: ns(48),
            mnt_ns: ns(52),
            vmas: (word(12) == 0).then_some(listed),
            // An odd sequence: the mappings were changing as they were walked.
            generation: Some(Generation {
                start_ns: long(16),
                exec: word(60),
                seq: word(56),
            })
            .filter(|g| generations && g.seq & 1 == 0),
            unchanged: word(12) == 2,
            counters: (word(88) == 1).then(|| Counters {
                file: long(96) as i64,
                anon: long(104) as i64,
                swap: long(112) as i64,
                shmem: long(120) as i64,
            }),
            mappings: word(92),
        };
        out.insert(word(4) as i32, rec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_bit_follows_this_kernel() {
        let bit = fmode_backing();
        assert!(bit == 1 << 24 || bit == 1 << 25);
    }

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
    fn processes_found_before_their_directories_are_early() {
        // Records (kind, tid): a mapping and process 5, process 7, then in a second read,
        // whose read before began with the directories up to pid 8 in place, 8 and 9.
        let record = |kind: u32, tid: u32| {
            let mut r = vec![0u8; RECORD];
            r[..4].copy_from_slice(&kind.to_le_bytes());
            r[4..8].copy_from_slice(&tid.to_le_bytes());
            r
        };
        let bytes: Vec<u8> = [(2, 5), (1, 5), (1, 7), (2, 8), (1, 8), (1, 9)]
            .iter()
            .flat_map(|&(k, t)| record(k, t))
            .collect();
        let marks = [(0, 6), (3 * RECORD, 8)];
        let early = found_early(&bytes, &marks);
        assert_eq!(early, [7, 9].into_iter().collect());
        assert_eq!(found_early(&bytes, &[(0, i32::MAX)]).len(), 0);
        assert_eq!(found_early(&bytes, &[]).len(), 4, "no read: none in place");
    }

    #[test]
    fn records_parse() {
        let mut r = Vec::new();
        let mut push = |words: &[u32], longs: &[u64], tail: &[u8]| {
            words.iter().for_each(|w| r.extend(w.to_le_bytes()));
            longs.iter().for_each(|l| r.extend(l.to_le_bytes()));
            r.extend(tail);
        };
        // A mapping of process 42, then process 42, then a process whose walk was refused,
        // then one whose walk was skipped, then one walked while its mappings changed.
        // The counters of process 42 (file, anon, swap, shmem), and none given.
        let counted = [1, 0, 5, 0, 7, 0, (-2i32) as u32, u32::MAX, 11, 0];
        let none = [0; 10];
        push(&[2, 42], &[0x1000, 0x3000, 0xfb, 2], &[]);
        push(&[(1 << 20) | 5, 0], &[99, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
        push(&[1, 42, 0x0020_0000, 0], &[1234], &[]);
        push(&[1, 0], &[], b"a b) (deleted)\0\0");
        push(&[7, 0, 6, 9, 33, 1], &[0x2a, 0x2b], &[]);
        push(&counted, &[], &[]);
        push(&[1, 43, 0, (-16i32) as u32], &[5], &[]);
        push(&[1, 0], &[], &[0; 16]);
        push(&[0, 0, 8, 9, 0, 1], &[0, 0], &[]);
        push(&none, &[], &[]);
        push(&[1, 44, 0, 2], &[6], &[]);
        push(&[1, 0], &[], &[0; 16]);
        push(&[0, 0, 10, 1, 0, 1], &[0, 0], &[]);
        push(&none, &[], &[]);
        push(&[1, 45, 0, 0], &[7], &[]);
        push(&[1, 0], &[], &[0; 16]);
        push(&[0, 0, 11, 1, 0, 1], &[0, 0], &[]);
        push(&none, &[], &[]);
        push(&[], &[], &[9, 9]); // cut
        let by = parse(&r, true);
        let gen = |start_ns, exec, seq| {
            Some(Generation {
                start_ns,
                exec,
                seq,
            })
        };
        assert_eq!(
            (by[&42].generation, by[&42].unchanged),
            (gen(1234, 9, 6), false)
        );
        assert_eq!(
            (by[&44].generation, by[&44].unchanged),
            (gen(6, 1, 10), true)
        );
        assert_eq!(
            by[&44].vmas, None,
            "not walked: the caller has its mappings"
        );
        assert_eq!(
            by[&45].generation, None,
            "an odd sequence: changing as it was walked"
        );
        assert_eq!(by[&45].vmas.as_deref(), Some(&[][..]));
        assert_eq!(
            parse(&r, false)[&42].generation,
            None,
            "no map, no generation"
        );
        let t = &by[&42];
        assert_eq!(t.start_ns, 1234);
        assert_eq!(t.stat.comm, "a b) (deleted)");
        assert!(t.stat.is_kernel_thread());
        assert_eq!(t.stat.state, b'S');
        assert_eq!((t.ipc_ns, t.mnt_ns), (Some(7), None));
        assert_eq!((t.uid, t.stat.ppid), (33, 1));
        assert_eq!(
            t.cgroup_ids,
            CgroupIds {
                v2: Some(0x2a),
                memory: Some(0x2b)
            }
        );
        assert_eq!(by[&43].cgroup_ids, CgroupIds::default(), "0: unknown");
        assert_eq!(
            t.counters,
            Some(Counters {
                file: 5,
                anon: 7,
                swap: -2,
                shmem: 11
            })
        );
        assert_eq!(by[&43].counters, None, "not read");
        let pg = rustix::param::page_size() as u64;
        assert_eq!(
            t.vmas.as_deref(),
            Some(
                &[VmaRecord {
                    start: 0x1000,
                    end: 0x3000,
                    shared: true,
                    offset: 2 * pg,
                    dev: rustix::fs::makedev(1, 5),
                    inode: 99,
                }][..]
            )
        );
        assert_eq!(by[&43].vmas, None, "walk refused: read maps");
        assert_eq!(by.len(), 4);
    }
}
