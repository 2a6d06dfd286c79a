//! The objects view's JSON document (`shmwho --json`), schema 1: written by render and
//! `record`, read back by `diff`. Field meanings are in docs/json.md.

use crate::model::{EstimateReason, ObjectKind, Pid, SysvKey};
use serde::{Deserialize, Serialize};

/// `shmwho --json`: every object, and how they add up to `Shmem`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ObjectsDoc {
    /// Version of the document (1).
    pub schema: u32,
    /// Every figure is measured (no estimate).
    #[serde(default)]
    pub exact: bool,
    /// `Shmem` of /proc/meminfo.
    pub meminfo_shmem_bytes: u64,
    /// Shmem explained by the objects and the tmpfs files listed.
    #[serde(default)]
    pub explained_bytes: u64,
    /// Shmem less what is explained (negative when the objects add up to more).
    #[serde(default)]
    pub unexplained_bytes: i64,
    /// Resident bytes of all objects.
    #[serde(default)]
    pub objects_resident_bytes: u64,
    /// Resident bytes of objects nobody is charged for.
    #[serde(default)]
    pub unheld_bytes: u64,
    /// The tmpfs mounts, reconciled.
    #[serde(default)]
    pub mounts: Vec<MountDoc>,
    /// What the scan could not see.
    #[serde(default)]
    pub notes: NotesDoc,
    /// The objects.
    pub objects: Vec<ObjectDoc>,
}

/// One tmpfs mount, reconciled with what its files use.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MountDoc {
    /// Where it is mounted.
    pub mount_point: String,
    /// What the mount uses (statfs), when readable.
    pub used_bytes: Option<u64>,
    /// What its listed objects hold.
    pub listed_bytes: u64,
    /// Files on it no process holds.
    pub unheld_files_bytes: Option<u64>,
}

/// What the scan could not see.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct NotesDoc {
    /// Processes that exited during the scan (skipped).
    pub vanished_processes: u32,
    /// Processes whose files could not be read.
    pub unreadable_processes: u32,
    /// SysV segments of other IPC namespaces that could not be read.
    pub foreign_ipc_ns_unreadable: u32,
    /// /proc is mounted with hidepid: other users' processes are hidden.
    pub hidepid: bool,
    /// Processes hidden from the caller of a restricted install (README): counted, not listed.
    #[serde(skip_serializing_if = "super::is_zero")]
    #[serde(default)]
    pub hidden_processes: u32,
    /// A restricted install prints no mapping addresses.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[serde(default)]
    pub addresses_hidden: bool,
    /// Processes with a counter beyond memory plus swap, capped there.
    #[serde(skip_serializing_if = "super::is_zero")]
    #[serde(default)]
    pub absurd_processes: u32,
    /// Objects whose figures are estimates, by reason.
    pub estimates: Vec<EstimateDoc>,
}

/// How many objects carry one kind of estimate, and why.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EstimateDoc {
    /// Why the figures are estimates.
    pub reason: EstimateReason,
    /// Objects with this estimate.
    pub objects: u32,
    /// The reason in words.
    pub explanation: String,
}

/// One shared-memory object.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ObjectDoc {
    /// The kind of shared memory.
    pub kind: ObjectKind,
    /// The ID as the objects view prints it (inode, or `sysv:SHMID`).
    #[serde(default)]
    pub id: String,
    /// Its inode (the shmid for SysV).
    pub inode: u64,
    /// Its device, `major:minor`.
    pub dev: Option<String>,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Resident bytes.
    pub resident_bytes: u64,
    /// Swapped bytes.
    pub swap_bytes: u64,
    /// Every figure is measured (no estimate).
    #[serde(default)]
    pub exact: bool,
    /// Why its figures are an estimate, when they are.
    #[serde(default)]
    pub estimate_reason: Option<EstimateReason>,
    /// A SHM_HUGETLB segment (hugetlb pool memory, outside Shmem).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[serde(default)]
    pub hugetlb: bool,
    /// The processes that map it or hold it as an fd.
    #[serde(default)]
    pub holders: Vec<HolderDoc>,
    /// The process it is charged to under `owner`.
    #[serde(default)]
    pub owner: Option<PidComm>,
    /// What each process is charged under the document's policy.
    #[serde(default)]
    pub charges: Vec<ChargeDoc>,
    /// SysV segment id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub shmid: Option<i32>,
    /// SysV key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub key: Option<SysvKey>,
    /// SysV attach count.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub nattch: Option<u64>,
    /// SysV segment marked for removal (IPC_RMID).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub removed: Option<bool>,
    /// memfd name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub name: Option<String>,
    /// Path of a file on a tmpfs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub path: Option<String>,
    /// The file was unlinked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub deleted: Option<bool>,
    /// Where it is mounted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub mount_point: Option<String>,
    /// IPC (SysV) or mount namespace inode, when not shmwho's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub namespace: Option<u64>,
}

/// A process by pid and command.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PidComm {
    /// Process id.
    pub pid: Pid,
    /// Command.
    pub comm: String,
}

/// What one process is charged for an object.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChargeDoc {
    /// Process id.
    pub pid: Pid,
    /// Bytes charged.
    pub bytes: u64,
}

/// One way a process holds an object: a mapping or an fd.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HolderDoc {
    /// Process id.
    pub pid: Pid,
    /// Command.
    #[serde(default)]
    pub comm: String,
    /// `map` or `fd`.
    pub via: String,
    /// Mapping start address (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub start: Option<String>,
    /// Mapping end address (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub end: Option<String>,
    /// Offset of the mapping in the object, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub offset: Option<u64>,
    /// File descriptor number.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub fd: Option<i32>,
    /// Proportional set size (smaps), when read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub pss_bytes: Option<u64>,
    /// Bytes of the mapping in its page tables (smaps `Rss`), when read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub rss_bytes: Option<u64>,
}
