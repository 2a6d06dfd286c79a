//! The JSON documents shmwho writes and reads, defined once (docs/json.md): the objects and
//! processes views (`--json`), a record (`shmwho record`), and a diff (`shmwho diff --json`).
//! Every type derives both Serialize and Deserialize, so what `record` writes is what `diff`
//! reads. Schema 1: fields are added, never renamed or given a new meaning.

pub mod diff;
pub mod objects;
pub mod procs;
pub mod record;

pub use diff::{Change, DiffDoc, Figures, ObjectDiff, ProcDiff, Side, SignedDelta};
pub use objects::{
    CausesDoc, ChargeDoc, EstimateDoc, HolderDoc, HugetlbDoc, MountDoc, NotesDoc, ObjectDoc,
    ObjectsDoc, PidComm, UnreadableDoc,
};
pub use procs::{CgroupDoc, PodDoc, PodVolumeDoc, ProcDoc, ProcsDoc};
pub use record::RecordDoc;

/// Version of the objects and processes documents.
pub const SCHEMA: u32 = 1;
/// Version of the record and diff documents; bumped only when a field changes meaning or
/// disappears.
pub const RECORD_SCHEMA: u32 = 1;

/// For `skip_serializing_if`: counts that are left out when zero.
fn is_zero(n: &u32) -> bool {
    *n == 0
}
