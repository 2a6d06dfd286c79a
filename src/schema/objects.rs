//! The objects view's JSON document (`shmwho --json`), schema 1: written by render and
//! `record`, read back by `diff`. Field meanings are in docs/json.md.

use crate::model::{EstimateReason, ObjectKind, Pid};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ObjectsDoc {
    pub schema: u32,
    #[serde(default)]
    pub exact: bool,
    pub meminfo_shmem_bytes: u64,
    #[serde(default)]
    pub explained_bytes: u64,
    #[serde(default)]
    pub unexplained_bytes: i64,
    #[serde(default)]
    pub objects_resident_bytes: u64,
    #[serde(default)]
    pub unheld_bytes: u64,
    #[serde(default)]
    pub mounts: Vec<MountDoc>,
    #[serde(default)]
    pub notes: NotesDoc,
    pub objects: Vec<ObjectDoc>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MountDoc {
    pub mount_point: String,
    pub used_bytes: Option<u64>,
    pub listed_bytes: u64,
    pub unheld_files_bytes: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct NotesDoc {
    pub vanished_processes: u32,
    pub unreadable_processes: u32,
    pub foreign_ipc_ns_unreadable: u32,
    pub hidepid: bool,
    pub estimates: Vec<EstimateDoc>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EstimateDoc {
    pub reason: EstimateReason,
    pub objects: u32,
    pub explanation: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ObjectDoc {
    pub kind: ObjectKind,
    #[serde(default)]
    pub id: String,
    pub inode: u64,
    pub dev: Option<String>,
    pub size_bytes: u64,
    pub resident_bytes: u64,
    pub swap_bytes: u64,
    #[serde(default)]
    pub exact: bool,
    #[serde(default)]
    pub estimate_reason: Option<EstimateReason>,
    /// A SHM_HUGETLB segment (hugetlb pool memory, outside Shmem).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[serde(default)]
    pub hugetlb: bool,
    #[serde(default)]
    pub holders: Vec<HolderDoc>,
    #[serde(default)]
    pub owner: Option<PidComm>,
    #[serde(default)]
    pub charges: Vec<ChargeDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub shmid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub key: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub nattch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub removed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub mount_point: Option<String>,
    /// IPC (SysV) or mount namespace inode, when not shmwho's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub namespace: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PidComm {
    pub pid: Pid,
    pub comm: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChargeDoc {
    pub pid: Pid,
    pub bytes: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HolderDoc {
    pub pid: Pid,
    #[serde(default)]
    pub comm: String,
    pub via: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub pss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub rss_bytes: Option<u64>,
}
