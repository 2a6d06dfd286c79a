//! A record: the objects and processes documents of one scan in one file.

use super::{ObjectsDoc, ProcsDoc};
use serde::{Deserialize, Serialize};

/// `{"schema":1,"recorded_at":...,"objects":<shmwho --json>,"procs":<shmwho procs --json>}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RecordDoc {
    /// [`super::RECORD_SCHEMA`].
    pub schema: u32,
    /// Seconds since the epoch when the scan ran.
    pub recorded_at: Option<u64>,
    /// The host's name (`uname -n`).
    pub hostname: Option<String>,
    /// Charging policy of the per-process figures.
    #[serde(default)]
    pub charge: Option<String>,
    /// The objects view.
    pub objects: ObjectsDoc,
    /// The processes view, charged under `charge`.
    pub procs: Option<ProcsDoc>,
}
