//! The processes view's JSON document (`shmwho procs --json`), schema 1. Field meanings are
//! in docs/json.md.

use crate::model::{CgroupVersion, Pid};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProcsDoc {
    pub schema: u32,
    pub charge: String,
    #[serde(default)]
    pub pss: bool,
    pub processes: Vec<ProcDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub groups: Option<Vec<ProcDoc>>,
    /// Resident bytes of objects no process holds.
    #[serde(default)]
    pub unheld_bytes: u64,
    /// Sum of all charges: with unheld_bytes, equals objects_resident_bytes.
    #[serde(default)]
    pub charged_bytes: u64,
    #[serde(default)]
    pub objects_resident_bytes: u64,
    #[serde(default)]
    pub vanished_processes: u32,
    /// With `--by cgroup`: each cgroup's charges against the kernel's memory.stat shmem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub cgroups: Option<Vec<CgroupDoc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub cgroups_note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProcDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub pid: Option<Pid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub ppid: Option<Pid>,
    pub comm: String,
    #[serde(default)]
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub processes: Option<u32>,
    #[serde(default)]
    pub rss_bytes: u64,
    #[serde(default)]
    pub rss_anon_bytes: u64,
    #[serde(default)]
    pub rss_file_bytes: u64,
    #[serde(default)]
    pub rss_shmem_bytes: u64,
    #[serde(default)]
    pub swap_bytes: u64,
    pub shared_charged_bytes: u64,
    #[serde(default)]
    pub total_bytes: u64,
    #[serde(default)]
    pub owned_objects: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub pss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub uss_bytes: Option<u64>,
    /// Memory cgroup (of the process, or of the group with `--by cgroup`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub cgroup: Option<String>,
    /// With `--exact`: distinct physical pages mapped plus shared memory charged.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub unique_bytes: Option<u64>,
    /// With `--exact`: pages and objects no process outside the row holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub freed_if_gone_bytes: Option<u64>,
}

/// One memory cgroup with `--by cgroup`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CgroupDoc {
    /// Path relative to shmwho's cgroup namespace; null when unreadable.
    pub cgroup: Option<String>,
    /// Which hierarchy holds the memory controller.
    pub version: Option<CgroupVersion>,
    /// Processes listed in the cgroup.
    pub processes: u32,
    /// Under the policy of the document (`charge`).
    pub shared_charged_bytes: u64,
    /// Charged under `owner`.
    pub owner_bytes: u64,
    /// Charged under `split`.
    pub split_bytes: u64,
    /// Charged under `touched` (needs smaps).
    pub touched_bytes: Option<u64>,
    /// What the kernel charges the cgroup for shmem (`memory.stat`).
    pub kernel_shmem_bytes: Option<u64>,
    /// The kernel's figure less the owner figure.
    pub kernel_minus_owner_bytes: Option<i64>,
}
