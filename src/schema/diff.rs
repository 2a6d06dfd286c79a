//! What `shmwho diff --json` prints: the difference between two records.

use crate::model::ObjectKind;
use serde::{Deserialize, Serialize};

/// How an object or a process changed between A and B.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in B.
    Appeared,
    /// Holds more in memory (resident plus swapped) in B.
    Grew,
    /// Holds less in memory in B.
    Shrank,
    /// Resident plus swapped unchanged, but the split between them, or the size, moved.
    Changed,
    /// Only in A.
    Disappeared,
}

impl Change {
    /// The JSON and table spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Appeared => "appeared",
            Change::Grew => "grew",
            Change::Shrank => "shrank",
            Change::Changed => "changed",
            Change::Disappeared => "disappeared",
        }
    }
}

/// An object's figures on one side.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Figures {
    /// Resident bytes.
    pub resident_bytes: u64,
    /// Swapped bytes.
    pub swap_bytes: u64,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// One object that changed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ObjectDiff {
    /// How it changed.
    pub change: Change,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its ID as the objects view prints it (inode, or `sysv:SHMID`).
    pub id: String,
    /// Its device, `major:minor`.
    pub dev: Option<String>,
    /// Its namespace when not the recording shmwho's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub namespace: Option<u64>,
    /// Its name for people (path, memfd name, SysV key).
    pub name: String,
    /// Its owner on the newest side.
    pub owner: Option<super::PidComm>,
    /// Figures in A; null when it appeared.
    pub a: Option<Figures>,
    /// Figures in B; null when it disappeared.
    pub b: Option<Figures>,
    /// B less A, resident.
    pub resident_delta_bytes: i64,
    /// B less A, swapped.
    pub swap_delta_bytes: i64,
    /// B less A, size.
    pub size_delta_bytes: i64,
}

impl ObjectDiff {
    /// Resident plus swapped: what the object holds in memory.
    pub fn held_delta(&self) -> i64 {
        self.resident_delta_bytes
            .saturating_add(self.swap_delta_bytes)
    }
}

/// One process whose charged shared memory changed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProcDiff {
    /// How it changed.
    pub change: Change,
    /// Its pid.
    pub pid: i64,
    /// Its command.
    pub comm: String,
    /// Its user.
    pub user: String,
    /// Charged shared memory in A.
    pub a_bytes: Option<u64>,
    /// Charged shared memory in B.
    pub b_bytes: Option<u64>,
    /// B less A.
    pub delta_bytes: i64,
}

/// One of the two records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Side {
    /// The file as named on the command line.
    pub file: String,
    /// When it was recorded (null for a plain `--json` document).
    pub recorded_at: Option<u64>,
    /// Where it was recorded.
    pub hostname: Option<String>,
}

/// A host-wide figure on both sides.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedDelta {
    /// In A.
    pub a: Option<i64>,
    /// In B.
    pub b: Option<i64>,
    /// B less A, when both are known.
    pub delta: Option<i64>,
}

impl SignedDelta {
    /// The figure in A and in B, and their difference.
    pub fn new(a: Option<i64>, b: Option<i64>) -> SignedDelta {
        SignedDelta {
            a,
            b,
            delta: a.zip(b).map(|(a, b)| b.saturating_sub(a)),
        }
    }
}

/// `shmwho diff --json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DiffDoc {
    /// [`super::RECORD_SCHEMA`].
    pub schema: u32,
    /// The earlier record.
    pub a: Side,
    /// The later record.
    pub b: Side,
    /// Policy of both records' process figures; null when they differ or are missing.
    pub charge: Option<String>,
    /// `Shmem` of /proc/meminfo.
    pub meminfo_shmem_bytes: SignedDelta,
    /// Resident bytes of all objects.
    pub objects_resident_bytes: SignedDelta,
    /// Shmem not explained by the objects.
    pub unexplained_bytes: SignedDelta,
    /// Objects that changed, largest change first.
    pub objects: Vec<ObjectDiff>,
    /// Null when either file holds no procs document (a plain `shmwho --json`).
    pub processes: Option<Vec<ProcDiff>>,
    /// What to keep in mind reading it.
    pub notes: Vec<String>,
}
