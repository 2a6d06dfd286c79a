//! The snapshot: plain data collected from `/proc`, with no policy in it.
//!
//! Everything is in bytes. `collect` fills these types, `account` derives owners and charges from
//! them, `render` prints them.

use serde::Serialize;
use std::path::PathBuf;

pub type Pid = i32;

/// The kinds of shared memory shmwho knows. Adding a kind means one collector branch and one
/// variant here; the views pick it up through `as_str`.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
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
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::AnonShared => "anon_shared",
            ObjectKind::Sysv => "sysv",
            ObjectKind::Memfd => "memfd",
            ObjectKind::PosixShm => "posix_shm",
            ObjectKind::Tmpfs => "tmpfs",
        }
    }

    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::AnonShared,
        ObjectKind::Sysv,
        ObjectKind::Memfd,
        ObjectKind::PosixShm,
        ObjectKind::Tmpfs,
    ];
}

/// What makes an object one object. SysV segments are named by (IPC namespace, shmid) because the
/// maps inode equals the shmid and repeats across namespaces; everything else by (device, inode).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ObjectId {
    Sysv { ipc_ns: u64, shmid: i32 },
    Inode { dev: u64, ino: u64 },
}

/// How a process holds an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A mapping `start..end` of the object at byte `offset`.
    Map {
        start: u64,
        end: u64,
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
    Fd { fd: i32 },
}

impl Via {
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::Map { .. } => "map",
            Via::Fd { .. } => "fd",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: Pid,
    pub via: Via,
}

/// A SysV segment as `/proc/sysvipc/shm` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SysvSegment {
    pub key: i32,
    pub shmid: i32,
    pub perms: u32,
    pub size_bytes: u64,
    pub cpid: Pid,
    pub lpid: Pid,
    pub nattch: u64,
    pub uid: u32,
    pub cuid: u32,
    /// Seconds since the epoch of the last change (creation, IPC_SET or IPC_RMID).
    pub ctime: i64,
    /// Resident and swapped bytes; absent on kernels before 4.1.
    pub rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
}

impl SysvSegment {
    /// `IPC_RMID` was called: the segment goes away at the last detach.
    pub fn removed(&self) -> bool {
        self.perms & 0o1000 != 0
    }
}

/// Why a figure is an estimate rather than a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
}

impl EstimateReason {
    pub fn explain(self) -> &'static str {
        match self {
            EstimateReason::MapFilesDenied => {
                "a lower bound from holders' RssShmem: measuring the object needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (other users' processes also CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)"
            }
            EstimateReason::SwapSplitUnavailable => {
                "resident plus swapped is exact, the split between them is not: the object could not be opened for mincore"
            }
            EstimateReason::LeaderExited => {
                "a lower bound from holders' RssShmem: the only holders are processes whose main thread exited, whose map_files the kernel no longer lists"
            }
        }
    }
}

/// One shared-memory object: a shmem inode or a SysV segment.
#[derive(Clone, Debug)]
pub struct Object {
    pub id: ObjectId,
    pub kind: ObjectKind,
    /// Device of the inode (`st_dev`), when known.
    pub dev: Option<u64>,
    pub inode: u64,
    /// memfd name (without the `memfd:` prefix).
    pub name: Option<String>,
    /// Path of a posix_shm or tmpfs file, as seen inside the holder's mount namespace.
    pub path: Option<PathBuf>,
    /// The file was unlinked (only meaningful for posix_shm and tmpfs).
    pub deleted: bool,
    pub sysv: Option<SysvSegment>,
    pub size_bytes: u64,
    pub resident_bytes: u64,
    pub swap_bytes: u64,
    pub exact: bool,
    pub estimate: Option<EstimateReason>,
    /// A `SHM_HUGETLB` SysV segment: hugetlb pool memory, which `Shmem` does not count.
    pub hugetlb: bool,
    pub holders: Vec<Holder>,
    /// The IPC namespace (SysV) or mount namespace (files) when it is not shmwho's own.
    pub foreign_ns: Option<u64>,
    /// Mount point of the tmpfs it lives on, when known.
    pub mount_point: Option<PathBuf>,
}

impl Object {
    /// Distinct processes holding the object.
    pub fn holder_pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self.holders.iter().map(|h| h.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// One process, with the O(1) counters from `/proc/PID/status`.
#[derive(Clone, Debug, Default)]
pub struct Process {
    pub pid: Pid,
    pub ppid: Pid,
    pub comm: String,
    pub uid: u32,
    pub user: String,
    /// Start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub start_ticks: u64,
    pub rss_bytes: u64,
    pub rss_anon_bytes: u64,
    pub rss_file_bytes: u64,
    pub rss_shmem_bytes: u64,
    pub swap_bytes: u64,
    pub ipc_ns: Option<u64>,
    pub mnt_ns: Option<u64>,
    /// PSS and USS from smaps, read only on request.
    pub smaps: Option<SmapsTotals>,
    /// Memory cgroup path (`/proc/PID/cgroup`: v1's `memory` line on a hybrid host, else v2's
    /// `0::` line), relative to shmwho's cgroup namespace; None when unreadable.
    pub cgroup: Option<String>,
}

/// Which cgroup hierarchy holds the memory controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// A memory cgroup that holds at least one listed process, with the kernel's own count of the
/// shmem pages charged to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMem {
    /// As in [`Process::cgroup`].
    pub path: String,
    pub version: CgroupVersion,
    /// `shmem` from the cgroup's `memory.stat`: resident shmem pages charged to it (v1: this
    /// cgroup only; v2: including child cgroups). None when the file could not be read.
    pub shmem_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmapsTotals {
    pub pss_bytes: u64,
    /// Private (mapcount 1) pages outside shmem: what killing the process surely frees.
    pub uss_bytes: u64,
}

/// `/proc/meminfo` figures shmwho uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meminfo {
    pub mem_total_bytes: u64,
    pub shmem_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    /// Default huge page size (`Hugepagesize`), 0 when the kernel has no hugetlb.
    pub hugepage_bytes: u64,
}

impl Meminfo {
    pub fn swap_used_bytes(&self) -> u64 {
        self.swap_total_bytes.saturating_sub(self.swap_free_bytes)
    }
}

/// A tmpfs mount and what its files use, for the reconciliation with `Shmem`.
#[derive(Clone, Debug)]
pub struct TmpfsMount {
    pub mount_point: PathBuf,
    pub dev: u64,
    /// Mount namespace when not shmwho's own.
    pub foreign_ns: Option<u64>,
    /// Blocks in use × block size from statfs: resident + swapped of every file, held or not.
    /// None when the mount has no size limit (statfs reports no blocks) or could not be read.
    pub used_bytes: Option<u64>,
}

/// What the scan could not see, said once in every view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanNotes {
    /// Processes that exited during the scan.
    pub vanished: u32,
    /// Processes whose maps or fds could not be read (permissions, hidepid).
    pub unreadable: u32,
    /// Objects that could not be measured exactly, by reason.
    pub estimates: Vec<(EstimateReason, u32)>,
    /// IPC namespaces other than shmwho's that could not be entered: SysV segments there that
    /// no process attaches are not listed.
    pub foreign_ipc_ns: u32,
    /// `/proc` is mounted with hidepid: other users' processes are invisible.
    pub hidepid: bool,
}

/// Everything one scan saw.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub page_size: u64,
    pub clock_ticks: u64,
    pub boot_time: i64,
    pub meminfo: Meminfo,
    pub processes: Vec<Process>,
    pub objects: Vec<Object>,
    pub mounts: Vec<TmpfsMount>,
    pub notes: ScanNotes,
    /// smaps was read (PSS and per-mapping presence available).
    pub with_smaps: bool,
    /// Memory cgroups of the listed processes, sorted by path.
    pub cgroups: Vec<CgroupMem>,
}

impl Snapshot {
    pub fn process(&self, pid: Pid) -> Option<&Process> {
        self.processes
            .binary_search_by_key(&pid, |p| p.pid)
            .ok()
            .map(|i| &self.processes[i])
    }

    pub fn exact(&self) -> bool {
        self.objects.iter().all(|o| o.exact)
    }
}
