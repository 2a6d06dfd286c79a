//! The processes view's JSON document (`shmwho procs --json`), schema 1. Field meanings are
//! in docs/json.md.

use crate::model::{CgroupVersion, Pid};
use serde::{Deserialize, Serialize};

/// `shmwho procs --json`: every process and what it is charged.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProcsDoc {
    /// Version of the document (1).
    pub schema: u32,
    /// Charging policy of the figures.
    pub charge: String,
    /// smaps was read: PSS and USS are present.
    #[serde(default)]
    pub pss: bool,
    /// The processes.
    pub processes: Vec<ProcDoc>,
    /// The groups, with `--by`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub groups: Option<Vec<ProcDoc>>,
    /// Resident bytes of objects no process holds.
    #[serde(default)]
    pub unheld_bytes: u64,
    /// Sum of all charges: with unheld_bytes, equals objects_resident_bytes.
    #[serde(default)]
    pub charged_bytes: u64,
    /// Resident bytes of all objects.
    #[serde(default)]
    pub objects_resident_bytes: u64,
    /// Processes that exited during the scan (skipped).
    #[serde(default)]
    pub vanished_processes: u32,
    /// Processes hidden from the caller of a restricted install (README): counted, not listed.
    #[serde(skip_serializing_if = "super::is_zero")]
    #[serde(default)]
    pub hidden_processes: u32,
    /// Processes whose memory map is locked (present when there are any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(default)]
    pub stuck_processes: Vec<super::objects::StuckProcessDoc>,
    /// With `--by cgroup`: each cgroup's charges against the kernel's memory.stat shmem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub cgroups: Option<Vec<CgroupDoc>>,
    /// How to read the cgroup figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub cgroups_note: Option<String>,
    /// With `--by pod`: each pod's charges against its cgroup's memory.stat shmem, and its
    /// memory-backed volumes against their size limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub pods: Option<Vec<PodDoc>>,
}

/// One process, or one group of processes with `--by`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProcDoc {
    /// Process id (a `--by tree` group: its root's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub pid: Option<Pid>,
    /// Parent process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub ppid: Option<Pid>,
    /// Command.
    pub comm: String,
    /// Process title (its command line); null when it has none or for a group other than a
    /// tree.
    #[serde(default)]
    pub title: Option<String>,
    /// User name.
    #[serde(default)]
    pub user: String,
    /// Processes in the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub processes: Option<u32>,
    /// `VmRSS` of /proc/PID/status.
    #[serde(default)]
    pub rss_bytes: u64,
    /// `RssAnon` of /proc/PID/status.
    #[serde(default)]
    pub rss_anon_bytes: u64,
    /// `RssFile`.
    #[serde(default)]
    pub rss_file_bytes: u64,
    /// `RssShmem`.
    #[serde(default)]
    pub rss_shmem_bytes: u64,
    /// `VmSwap`.
    #[serde(default)]
    pub swap_bytes: u64,
    /// Shared memory charged under the document's policy.
    pub shared_charged_bytes: u64,
    /// Private plus charged shared memory.
    #[serde(default)]
    pub total_bytes: u64,
    /// Objects it owns.
    #[serde(default)]
    pub owned_objects: u32,
    /// Proportional set size (smaps), when read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub pss_bytes: Option<u64>,
    /// Unique set size (smaps), when read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub uss_bytes: Option<u64>,
    /// Memory cgroup (of the process, or of the group with `--by cgroup`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub cgroup: Option<String>,
    /// `pod_uid`, `container_id` and `unit` read from `cgroup`, each absent when it says none.
    #[serde(flatten)]
    pub workload: crate::model::Workload,
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

/// One Kubernetes pod with `--by pod`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PodDoc {
    /// The pod's UID.
    pub pod_uid: String,
    /// The pod's cgroup (its containers' parent); null when the path names none.
    pub cgroup: Option<String>,
    /// Listed processes in the pod.
    pub processes: u32,
    /// Under the policy of the document (`charge`).
    pub shared_charged_bytes: u64,
    /// Charged under `owner`.
    pub owner_bytes: u64,
    /// What the kernel charges the pod's cgroup and its children for shmem (`memory.stat`).
    pub kernel_shmem_bytes: Option<u64>,
    /// The kernel's figure less the owner figure.
    pub kernel_minus_owner_bytes: Option<i64>,
    /// Bytes in use on the pod's `/dev/shm` (the one with least room when containers differ).
    pub dev_shm_used_bytes: Option<u64>,
    /// Size limit of that `/dev/shm`.
    pub dev_shm_size_bytes: Option<u64>,
    /// Room left on it: a write or `ftruncate` beyond it fails.
    pub dev_shm_free_bytes: Option<u64>,
    /// Every memory-backed volume of the pod: `/dev/shm`, emptyDirs with `medium: Memory`.
    pub volumes: Vec<PodVolumeDoc>,
}

/// A tmpfs volume of a pod.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PodVolumeDoc {
    /// Where the containers mount it (kubelet's path when no container was read).
    pub mount_point: String,
    /// Its device (`major:minor`).
    pub dev: String,
    /// The emptyDir's name, when kubelet's mount of it was seen.
    pub empty_dir: Option<String>,
    /// Bytes in use (statfs): resident and swapped, files held or not.
    pub used_bytes: Option<u64>,
    /// Its size limit.
    pub size_bytes: Option<u64>,
    /// Room left.
    pub free_bytes: Option<u64>,
}
