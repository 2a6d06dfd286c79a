//! The snapshot: plain data collected from `/proc`, with no policy in it.
//!
//! Everything is in bytes. `collect` fills these types, `account` derives owners and charges from
//! them, `render` prints them.

use serde::Serialize;
use std::path::PathBuf;

/// A process id.
pub type Pid = i32;

/// The kinds of shared memory shmwho knows. Adding a kind means one collector branch and one
/// variant here; the views pick it up through `as_str`.
#[derive(
    Serialize, serde::Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// `mmap(MAP_SHARED|MAP_ANONYMOUS)`: `/dev/zero (deleted)` or `[anon_shmem]` in maps.
    AnonShared,
    /// System V segment (`shmget`).
    Sysv,
    /// `memfd_create` object.
    Memfd,
    /// A file on the tmpfs mounted at `/dev/shm` (`shm_open`, POSIX semaphores).
    PosixShm,
    /// A file on any other tmpfs mount.
    Tmpfs,
    /// A file on a hugetlbfs mount: hugetlb pool memory.
    Hugetlbfs,
}

impl ObjectKind {
    /// The name in tables, JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::AnonShared => "anon_shared",
            ObjectKind::Sysv => "sysv",
            ObjectKind::Memfd => "memfd",
            ObjectKind::PosixShm => "posix_shm",
            ObjectKind::Tmpfs => "tmpfs",
            ObjectKind::Hugetlbfs => "hugetlbfs",
        }
    }

    /// Every kind, in display order.
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::AnonShared,
        ObjectKind::Sysv,
        ObjectKind::Memfd,
        ObjectKind::PosixShm,
        ObjectKind::Tmpfs,
        ObjectKind::Hugetlbfs,
    ];
}

/// What makes an object one object. SysV segments are named by (IPC namespace, shmid) because the
/// maps inode equals the shmid and repeats across namespaces; everything else by (device, inode).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ObjectId {
    /// A SysV segment.
    Sysv {
        /// Inode of its IPC namespace (0 when unknown).
        ipc_ns: u64,
        /// Its id in that namespace.
        shmid: i32,
    },
    /// A shmem or tmpfs inode.
    Inode {
        /// `st_dev`.
        dev: u64,
        /// `st_ino`.
        ino: u64,
    },
}

/// How a process holds an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A mapping `start..end` of the object at byte `offset`.
    Map {
        /// First address.
        start: u64,
        /// Address after the last.
        end: u64,
        /// Offset of `start` in the object, in bytes.
        offset: u64,
        /// MAP_SHARED (`s` in maps); a MAP_PRIVATE mapping of a tmpfs file can hold private
        /// copies that are not the object's pages.
        shared: bool,
        /// Proportional set size of this mapping, read from smaps only when asked for.
        pss_bytes: Option<u64>,
        /// Bytes of this mapping present in the process's page tables (smaps `Rss`), when read.
        rss_bytes: Option<u64>,
    },
    /// An open file descriptor.
    Fd {
        /// The descriptor number.
        fd: i32,
    },
}

impl Via {
    /// `map` or `fd`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::Map { .. } => "map",
            Via::Fd { .. } => "fd",
        }
    }
}

/// One process's hold on an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The process.
    pub pid: Pid,
    /// How it holds it.
    pub via: Via,
}

/// A SysV IPC key, the first argument of `shmget`; 0 is `IPC_PRIVATE`. Printed as the kernel
/// does in `/SYSV%08x`, serialized as the signed number `/proc/sysvipc/shm` shows.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SysvKey(pub i32);

impl SysvKey {
    /// The key in a SysV mapping's name, `/SYSV0000abcd`: eight hex digits.
    pub fn from_map_name(hex8: &[u8]) -> Option<SysvKey> {
        if hex8.len() != 8 {
            return None;
        }
        let text = std::str::from_utf8(hex8).ok()?;
        u32::from_str_radix(text, 16)
            .ok()
            .map(|k| SysvKey(k as i32))
    }
}

impl std::fmt::Display for SysvKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:08x}", self.0 as u32)
    }
}

/// A SysV segment as `/proc/sysvipc/shm` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SysvSegment {
    /// The key it was created with.
    pub key: SysvKey,
    /// The segment id (`shmget`'s result), also the inode number of its mappings.
    pub shmid: i32,
    /// Mode bits, plus `SHM_DEST` (0o1000) once `IPC_RMID` was called.
    pub perms: u32,
    /// Size asked for at creation.
    pub size_bytes: u64,
    /// Creator's pid.
    pub cpid: Pid,
    /// Pid of the last `shmat`/`shmdt`.
    pub lpid: Pid,
    /// Number of attaches.
    pub nattch: u64,
    /// Owner's uid.
    pub uid: u32,
    /// Creator's uid.
    pub cuid: u32,
    /// Seconds since the epoch of the last change (creation, IPC_SET or IPC_RMID).
    pub ctime: i64,
    /// Resident and swapped bytes; absent on kernels before 4.1.
    pub rss_bytes: Option<u64>,
    /// See `rss_bytes`.
    pub swap_bytes: Option<u64>,
}

impl SysvSegment {
    /// `IPC_RMID` was called: the segment goes away at the last detach.
    pub fn removed(&self) -> bool {
        self.perms & 0o1000 != 0
    }
}

/// Why a figure is an estimate rather than a measurement.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EstimateReason {
    /// `stat` of `/proc/PID/map_files` needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (plus
    /// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH for other users' processes).
    MapFilesDenied,
    /// Swap is in use and the object could not be opened to tell resident from swapped pages.
    SwapSplitUnavailable,
    /// Mapped only by processes whose leader thread exited: their `map_files` is empty and
    /// task directories have none.
    LeaderExited,
    /// The kernel reported more resident and swapped bytes than the host's memory and swap
    /// together (`collect::bounds`): capped there.
    AbsurdValue,
    /// Every handle of the object is in processes whose memory map is locked
    /// (`collect::deadline`).
    HolderStuck,
}

impl EstimateReason {
    /// One sentence for the views' notes.
    pub fn explain(self) -> &'static str {
        match self {
            EstimateReason::MapFilesDenied => {
                "a lower bound from holders' RssShmem: measuring the object needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (other users' processes also CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)"
            }
            EstimateReason::SwapSplitUnavailable => {
                "resident plus swapped is exact, the split between them is not: the object could not be opened for mincore"
            }
            EstimateReason::HolderStuck => {
                "a lower bound from holders' RssShmem: its holders' memory maps are locked (map_files did not answer in time)"
            }
            EstimateReason::LeaderExited => {
                "a lower bound from holders' RssShmem: the only holders are processes whose main thread exited, whose map_files the kernel no longer lists"
            }
            EstimateReason::AbsurdValue => {
                "the kernel reported more resident and swapped bytes than memory and swap together: capped at MemTotal + SwapTotal"
            }
        }
    }
}

/// How far an object's size, resident and swapped figures can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Accuracy {
    /// Measured from the kernel (st_blocks, mincore, `/proc/sysvipc/shm`).
    Exact,
    /// Not measured; the figures are what the reason says they are.
    Estimate(EstimateReason),
}

impl Accuracy {
    /// Whether the figures are measurements.
    pub fn is_exact(self) -> bool {
        self == Accuracy::Exact
    }

    /// Why the figures are an estimate, if they are.
    pub fn estimate(self) -> Option<EstimateReason> {
        match self {
            Accuracy::Exact => None,
            Accuracy::Estimate(r) => Some(r),
        }
    }
}

/// A file on a tmpfs (POSIX shared memory or any other tmpfs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDetail {
    /// Path as seen inside the holder's mount namespace.
    pub path: PathBuf,
    /// The file was unlinked.
    pub deleted: bool,
    /// Mount point of the tmpfs it lives on, when known.
    pub mount_point: Option<PathBuf>,
}

/// What only one kind of object has. The kind is the variant: adding a kind is one variant
/// here, and every `match` on it (no `_` arms on kinds) shows what else needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectDetail {
    /// `mmap(MAP_SHARED|MAP_ANONYMOUS)`: nothing to it but its inode.
    AnonShared,
    /// A System V segment.
    Sysv {
        /// From the segment table, or from the mapping's name (`/SYSV%08x`) when the table of
        /// its IPC namespace could not be read.
        key: Option<SysvKey>,
        /// Its row of `/proc/sysvipc/shm`, when seen.
        segment: Option<SysvSegment>,
        /// `SHM_HUGETLB`: hugetlb pool memory, which `Shmem` does not count.
        hugetlb: bool,
    },
    /// A `memfd_create` object.
    Memfd {
        /// Its name, without the `memfd:` prefix.
        name: String,
    },
    /// A file on the tmpfs mounted at `/dev/shm` (`shm_open`, POSIX semaphores).
    PosixShm(FileDetail),
    /// A file on any other tmpfs mount.
    Tmpfs(FileDetail),
    /// A file on a hugetlbfs mount.
    Hugetlbfs(FileDetail),
}

impl ObjectDetail {
    /// A SysV segment seen in the segment table, not (yet) known as hugetlb.
    pub fn sysv(segment: SysvSegment) -> ObjectDetail {
        ObjectDetail::Sysv {
            key: Some(segment.key),
            segment: Some(segment),
            hugetlb: false,
        }
    }

    /// The kind this detail belongs to.
    pub fn kind(&self) -> ObjectKind {
        match self {
            ObjectDetail::AnonShared => ObjectKind::AnonShared,
            ObjectDetail::Sysv { .. } => ObjectKind::Sysv,
            ObjectDetail::Memfd { .. } => ObjectKind::Memfd,
            ObjectDetail::PosixShm(_) => ObjectKind::PosixShm,
            ObjectDetail::Tmpfs(_) => ObjectKind::Tmpfs,
            ObjectDetail::Hugetlbfs(_) => ObjectKind::Hugetlbfs,
        }
    }
}

/// One shared-memory object: a shmem inode or a SysV segment.
#[derive(Clone, Debug)]
pub struct Object {
    /// What makes it one object.
    pub id: ObjectId,
    /// Kind and what only that kind has.
    pub detail: ObjectDetail,
    /// Device of the inode (`st_dev`), when known.
    pub dev: Option<u64>,
    /// Inode number (the shmid for SysV).
    pub inode: u64,
    /// Apparent size.
    pub size_bytes: u64,
    /// Size of its pages: the base page size, or the huge page size of hugetlb memory.
    pub page_size_bytes: u64,
    /// Backed by the hugetlb pool (MAP_HUGETLB, MFD_HUGETLB, SHM_HUGETLB, hugetlbfs files):
    /// not in `Shmem`, reconciled with `/sys/kernel/mm/hugepages` instead.
    pub hugetlb: bool,
    /// Bytes in RAM.
    pub resident_bytes: u64,
    /// Bytes in swap.
    pub swap_bytes: u64,
    /// Whether the three figures above are measured.
    pub accuracy: Accuracy,
    /// Every mapping and fd of it.
    pub holders: Vec<Holder>,
    /// The IPC namespace (SysV) or mount namespace (files) when it is not shmwho's own.
    pub foreign_ns: Option<u64>,
}

impl Object {
    /// Its kind.
    pub fn kind(&self) -> ObjectKind {
        self.detail.kind()
    }

    /// Whether its figures are measured.
    pub fn is_exact(&self) -> bool {
        self.accuracy.is_exact()
    }

    /// Attaches of a SysV segment no listed mapping accounts for: the kernel's `nattch` less
    /// the mappings seen (processes that could not be read, or in a pid namespace not
    /// scanned); 0 for every other kind.
    pub fn hidden_attaches(&self) -> u64 {
        let seen = self
            .holders
            .iter()
            .filter(|h| matches!(h.via, Via::Map { .. }))
            .count() as u64;
        self.sysv().map_or(0, |s| s.nattch.saturating_sub(seen))
    }

    /// The SysV segment table row, for a SysV segment whose table was read.
    pub fn sysv(&self) -> Option<&SysvSegment> {
        match &self.detail {
            ObjectDetail::Sysv { segment, .. } => segment.as_ref(),
            ObjectDetail::AnonShared
            | ObjectDetail::Memfd { .. }
            | ObjectDetail::PosixShm(_)
            | ObjectDetail::Tmpfs(_)
            | ObjectDetail::Hugetlbfs(_) => None,
        }
    }

    /// The key of a SysV segment, when known.
    pub fn sysv_key(&self) -> Option<SysvKey> {
        match &self.detail {
            ObjectDetail::Sysv { key, .. } => *key,
            ObjectDetail::AnonShared
            | ObjectDetail::Memfd { .. }
            | ObjectDetail::PosixShm(_)
            | ObjectDetail::Tmpfs(_)
            | ObjectDetail::Hugetlbfs(_) => None,
        }
    }

    /// The file, for POSIX shm and tmpfs objects.
    pub fn file(&self) -> Option<&FileDetail> {
        match &self.detail {
            ObjectDetail::PosixShm(f) | ObjectDetail::Tmpfs(f) | ObjectDetail::Hugetlbfs(f) => {
                Some(f)
            }
            ObjectDetail::AnonShared | ObjectDetail::Sysv { .. } | ObjectDetail::Memfd { .. } => {
                None
            }
        }
    }

    /// The file, mutably.
    pub fn file_mut(&mut self) -> Option<&mut FileDetail> {
        match &mut self.detail {
            ObjectDetail::PosixShm(f) | ObjectDetail::Tmpfs(f) | ObjectDetail::Hugetlbfs(f) => {
                Some(f)
            }
            ObjectDetail::AnonShared | ObjectDetail::Sysv { .. } | ObjectDetail::Memfd { .. } => {
                None
            }
        }
    }

    /// hugetlb pool memory (MAP_HUGETLB, MFD_HUGETLB, SHM_HUGETLB, hugetlbfs), which `Shmem`
    /// does not count.
    pub fn hugetlb(&self) -> bool {
        self.hugetlb || matches!(self.detail, ObjectDetail::Sysv { hugetlb: true, .. })
    }

    /// Distinct processes holding the object.
    pub fn holder_pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self.holders.iter().map(|h| h.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// Bytes of `/proc/PID/cmdline` read for a title: a title is for people, and a bound keeps a
/// hostile process from making the scan copy megabytes of arguments.
pub const TITLE_MAX: usize = 4096;

/// One process, with the O(1) counters from `/proc/PID/status`.
#[derive(Clone, Debug, Default)]
pub struct Process {
    /// Process id.
    pub pid: Pid,
    /// Parent process id.
    pub ppid: Pid,
    /// Command name (from `stat`: all bytes kept).
    pub comm: String,
    /// Process title: `/proc/PID/cmdline` with its NULs as spaces, which php-fpm, postgres,
    /// nginx and sshd rewrite ("postgres: checkpointer"). At most [`TITLE_MAX`] bytes; None
    /// when empty (kernel threads, zombies) or unreadable. Attacker-controlled: renderers escape.
    pub title: Option<String>,
    /// Real uid.
    pub uid: u32,
    /// User name of `uid` (the number when passwd has none).
    pub user: String,
    /// Start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub start_ticks: u64,
    /// `VmRSS`.
    pub rss_bytes: u64,
    /// `RssAnon`.
    pub rss_anon_bytes: u64,
    /// `RssFile`.
    pub rss_file_bytes: u64,
    /// `RssShmem`: every shmem page it maps (docs/facts.md #9).
    pub rss_shmem_bytes: u64,
    /// `VmSwap`.
    pub swap_bytes: u64,
    /// IPC namespace inode, when readable.
    pub ipc_ns: Option<u64>,
    /// Mount namespace inode, when readable.
    pub mnt_ns: Option<u64>,
    /// PSS and USS from smaps, read only on request.
    pub smaps: Option<SmapsTotals>,
    /// Memory cgroup path (`/proc/PID/cgroup`: v1's `memory` line on a hybrid host, else v2's
    /// `0::` line), relative to shmwho's cgroup namespace; None when unreadable.
    pub cgroup: Option<String>,
}

/// Which cgroup hierarchy holds the memory controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    /// cgroup v1 (the memory controller's own hierarchy).
    V1,
    /// cgroup v2 (the unified hierarchy).
    V2,
}

/// A memory cgroup that holds at least one listed process, with the kernel's own count of the
/// shmem pages charged to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMem {
    /// As in [`Process::cgroup`].
    pub path: String,
    /// Which hierarchy `path` is in.
    pub version: CgroupVersion,
    /// `shmem` from the cgroup's `memory.stat`: resident shmem pages charged to it (v1: this
    /// cgroup only; v2: including child cgroups). None when the file could not be read.
    pub shmem_bytes: Option<u64>,
}

/// PSS and USS of one process, from smaps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmapsTotals {
    /// Proportional set size.
    pub pss_bytes: u64,
    /// Private (mapcount 1) pages outside shmem: what killing the process surely frees.
    pub uss_bytes: u64,
}

/// `/proc/meminfo` figures shmwho uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meminfo {
    /// `MemTotal`.
    pub mem_total_bytes: u64,
    /// `Shmem`: every shmem and tmpfs page in RAM.
    pub shmem_bytes: u64,
    /// `SwapTotal`.
    pub swap_total_bytes: u64,
    /// `SwapFree`.
    pub swap_free_bytes: u64,
    /// Default huge page size (`Hugepagesize`), 0 when the kernel has no hugetlb.
    pub hugepage_bytes: u64,
}

impl Meminfo {
    /// Swap in use.
    pub fn swap_used_bytes(&self) -> u64 {
        self.swap_total_bytes.saturating_sub(self.swap_free_bytes)
    }
}

/// One huge page pool (`/sys/kernel/mm/hugepages/hugepages-<N>kB`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HugePool {
    /// Its page size.
    pub page_size_bytes: u64,
    /// `nr_hugepages`: pages in the pool.
    pub total_pages: u64,
    /// `free_hugepages`: pages not allocated.
    pub free_pages: u64,
    /// `resv_hugepages`: pages promised to mappings but not faulted in yet.
    pub reserved_pages: u64,
}

impl HugePool {
    /// Bytes of allocated huge pages.
    pub fn used_bytes(&self) -> u64 {
        self.total_pages
            .saturating_sub(self.free_pages)
            .saturating_mul(self.page_size_bytes)
    }
}

/// A tmpfs mount and what its files use, for the reconciliation with `Shmem`.
#[derive(Clone, Debug)]
pub struct TmpfsMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its device.
    pub dev: u64,
    /// Mount namespace when not shmwho's own.
    pub foreign_ns: Option<u64>,
    /// Blocks in use × block size from statfs: resident + swapped of every file, held or not.
    /// None when the mount has no size limit (statfs reports no blocks) or could not be read.
    pub used_bytes: Option<u64>,
    /// Its size limit (`size=`: blocks × block size from statfs); None as for `used_bytes`.
    pub size_bytes: Option<u64>,
    /// Hidden under another mount: measured in a private copy of its mount namespace.
    pub hidden: bool,
    /// The container of the namespace's process, from its cgroup (an id, else the cgroup path).
    pub container: Option<String>,
}

/// Why a process's maps and fds could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnreadableReason {
    /// Another user's process, and shmwho lacks CAP_SYS_PTRACE.
    OtherUser,
    /// The caller's own user, but the process is not dumpable (setuid, `prctl(PR_SET_DUMPABLE,
    /// 0)`, a service that changed user, as php-fpm workers do): only root may read it.
    NotDumpable,
    /// Refused even to root: another user namespace, or a security module.
    DeniedToRoot,
}

impl UnreadableReason {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnreadableReason::OtherUser => "other_user",
            UnreadableReason::NotDumpable => "not_dumpable",
            UnreadableReason::DeniedToRoot => "denied_to_root",
        }
    }
}

/// A process whose maps or fds could not be read: what its status still shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableProcess {
    /// Its pid.
    pub pid: Pid,
    /// Its command.
    pub comm: String,
    /// Its user.
    pub user: String,
    /// `RssShmem` from its status: shared memory it maps that no listed object may explain.
    pub rss_shmem_bytes: u64,
    /// Why.
    pub reason: UnreadableReason,
}

/// What the scan could not see, said once in every view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanNotes {
    /// Processes that exited during the scan.
    pub vanished: u32,
    /// Processes whose maps or fds could not be read (permissions, hidepid).
    pub unreadable: u32,
    /// The processes of `unreadable` whose status could be read, largest RssShmem first.
    pub unreadable_processes: Vec<UnreadableProcess>,
    /// Objects that could not be measured exactly, by reason.
    pub estimates: Vec<(EstimateReason, u32)>,
    /// IPC namespaces other than shmwho's that could not be entered: SysV segments there that
    /// no process attaches are not listed.
    pub foreign_ipc_ns: u32,
    /// How far the kernel's per-CPU counters may keep `Shmem` off, either way (from
    /// /proc/zoneinfo; 0 when unknown).
    pub shmem_drift_bytes: u64,
    /// IPC namespaces no process is in, pinned by an nsfs bind mount, whose segments are listed.
    pub pinned_ipc_ns: u32,
    /// tmpfs mounts that could not be measured: hidden under another mount and not revealed
    /// (needs CAP_SYS_ADMIN), or not reachable.
    pub unmeasured_mounts: u32,
    /// `/proc` is mounted with hidepid: other users' processes are invisible.
    pub hidepid: bool,
    /// Processes left out because the caller of a restricted install could not see them
    /// (the redact module).
    pub hidden: u32,
    /// Mapping addresses were removed for the caller of a restricted install.
    pub addresses_hidden: bool,
    /// Processes with a counter beyond memory plus swap, capped there (`collect::bounds`).
    pub absurd_processes: u32,
    /// Processes whose memory map is locked: a read that takes their mmap_lock did not answer
    /// in time (`collect::deadline`). Skipped when it was maps or smaps; by pid.
    pub stuck: Vec<StuckProcess>,
    /// The deadline those reads had.
    pub stuck_timeout: std::time::Duration,
    /// Processes whose mappings were taken from the previous scan's walk, unchanged since: a
    /// process that scans again and again (the exporter, `top`) walks only those that changed
    /// (`collect::bpf`).
    pub mappings_reused: u32,
}

/// A process whose memory map is locked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StuckProcess {
    /// Its pid.
    pub pid: Pid,
    /// Its command name.
    pub comm: String,
    /// The file under `/proc/PID` that did not answer (`maps`, `smaps`, `map_files`, ...).
    pub file: String,
}

/// Everything one scan saw.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Page size.
    pub page_size: u64,
    /// Clock ticks per second (for start times).
    pub clock_ticks: u64,
    /// Boot time, seconds since the epoch (0 when unknown).
    pub boot_time: i64,
    /// `/proc/meminfo`.
    pub meminfo: Meminfo,
    /// Every process, sorted by pid.
    pub processes: Vec<Process>,
    /// Every object, sorted by identity.
    pub objects: Vec<Object>,
    /// Every tmpfs mount seen.
    pub mounts: Vec<TmpfsMount>,
    /// What the scan could not see.
    pub notes: ScanNotes,
    /// smaps was read (PSS and per-mapping presence available).
    pub with_smaps: bool,
    /// Memory cgroups of the listed processes, sorted by path.
    pub cgroups: Vec<CgroupMem>,
    /// The huge page pools, by page size (empty without hugetlb).
    pub huge_pools: Vec<HugePool>,
    /// The cgroups of the pods of the listed processes, sorted by path, with the shmem of the
    /// whole subtree (v1 `total_shmem`, v2 `shmem`): a pod's containers are its children.
    pub pod_cgroups: Vec<CgroupMem>,
    /// Every tmpfs mount of every mount namespace read, not covered by another, sorted: which
    /// memory-backed volumes
    /// (`/dev/shm`, emptyDir) a pod's containers see.
    pub ns_tmpfs: Vec<NsTmpfs>,
}

/// A tmpfs mount as one mount namespace shows it (its figures are in [`Snapshot::mounts`], by
/// device).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NsTmpfs {
    /// The mount namespace's inode number; None for shmwho's own.
    pub mnt_ns: Option<u64>,
    /// Where that namespace mounts it.
    pub mount_point: PathBuf,
    /// Its device.
    pub dev: u64,
}

impl Process {
    /// The title when there is one, else the command name: what a person knows a process by.
    pub fn label(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.comm)
    }
}

impl Snapshot {
    /// The process with pid `pid`.
    pub fn process(&self, pid: Pid) -> Option<&Process> {
        self.processes
            .binary_search_by_key(&pid, |p| p.pid)
            .ok()
            .map(|i| &self.processes[i])
    }

    /// Every process was read: no object can be missing for want of reading one.
    pub fn complete(&self) -> bool {
        self.notes.unreadable == 0
    }

    /// RssShmem of the processes that could not be read: a lower bound of the shared memory in
    /// objects not listed (what they map that a listed object explains counts too).
    pub fn unreadable_rss_shmem_bytes(&self) -> u64 {
        self.notes
            .unreadable_processes
            .iter()
            .fold(0u64, |a, p| a.saturating_add(p.rss_shmem_bytes))
    }

    /// Whether every object's figures are measured.
    pub fn exact(&self) -> bool {
        self.objects.iter().all(|o| o.is_exact())
    }
}

/// Physical pages of one process, as sorted distinct page frame numbers (`procs --exact`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysPages {
    /// Anonymous pages: private memory (including copy-on-write pages shared after fork).
    pub anon: Vec<u64>,
    /// File pages (page cache) of mappings that are not shared-memory objects.
    pub file: Vec<u64>,
}

impl PhysPages {
    /// Sorts and deduplicates both lists, as the type promises.
    pub fn finish(mut self) -> PhysPages {
        for v in [&mut self.anon, &mut self.file] {
            v.sort_unstable();
            v.dedup();
        }
        self
    }
}

/// What one read of every wanted process's pagemap found.
#[derive(Clone, Debug, Default)]
pub struct PhysScan {
    /// Pages by process.
    pub pages: std::collections::HashMap<Pid, PhysPages>,
    /// Processes that exited before their pages were read.
    pub vanished: u32,
    /// Processes whose pagemap could not be read.
    pub denied: u32,
    /// The processes of `vanished` and `denied`: rows holding one have no exact figure.
    pub unread: Vec<Pid>,
}

/// What a cgroup path says about where a process runs. Each field is None when the path does
/// not say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Workload {
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The pod's UID as Kubernetes prints it (`kubectl get pod -o jsonpath={.metadata.uid}`):
    /// dashes restored from the systemd driver's underscores.
    pub pod_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The container runtime's ID: 64 lowercase hex digits.
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The innermost systemd unit (`foo.service`, `session-3.scope`,
    /// `cri-containerd-<ID>.scope`).
    pub unit: Option<String>,
}
