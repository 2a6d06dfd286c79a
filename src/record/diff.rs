//! The difference between two records, as a pure function: two documents in, a [`DiffDoc`]
//! out. Objects are matched by identity (kind, device, inode or shmid, namespace), processes by
//! pid and command.

use crate::model::ObjectKind;
use crate::schema::{
    Change, DiffDoc, Figures, ObjectDiff, ObjectDoc, ObjectsDoc, ProcDiff, ProcsDoc, RecordDoc,
    Side, SignedDelta, RECORD_SCHEMA,
};
use std::collections::{BTreeMap, HashMap};

/// The difference between records `a` and `b` (named `a_name` and `b_name` in the output):
/// a pure function of the two documents.
pub fn compare(
    a: &RecordDoc,
    a_name: &str,
    b: &RecordDoc,
    b_name: &str,
    min_change: u64,
) -> DiffDoc {
    let mut notes = Vec::new();
    let charge_of = |r: &RecordDoc| r.procs.as_ref().map(|p| p.charge.clone());
    let charge = match (charge_of(a), charge_of(b)) {
        (Some(ca), Some(cb)) if ca != cb => {
            notes.push(format!(
                "the records charge differently ({ca} then {cb}): process changes mix policies"
            ));
            None
        }
        (Some(ca), Some(_)) => Some(ca),
        _ => None,
    };
    if a.hostname.is_some() && b.hostname.is_some() && a.hostname != b.hostname {
        notes.push(format!(
            "the records come from different hosts ({} and {}): objects cannot match",
            a.hostname.as_deref().unwrap_or(""),
            b.hostname.as_deref().unwrap_or("")
        ));
    }
    if let (Some(ta), Some(tb)) = (a.recorded_at, b.recorded_at) {
        if tb < ta {
            notes.push("B was recorded before A: deltas read backwards".to_string());
        }
    }
    let processes = match (&a.procs, &b.procs) {
        (Some(pa), Some(pb)) => Some(proc_diffs(pa, pb, min_change)),
        _ => None,
    };
    let side = |r: &RecordDoc, name: &str| Side {
        file: name.to_string(),
        recorded_at: r.recorded_at,
        hostname: r.hostname.clone(),
    };
    let signed = |v: u64| Some(i64::try_from(v).unwrap_or(i64::MAX));
    DiffDoc {
        schema: RECORD_SCHEMA,
        a: side(a, a_name),
        b: side(b, b_name),
        charge,
        meminfo_shmem_bytes: SignedDelta::new(
            signed(a.objects.meminfo_shmem_bytes),
            signed(b.objects.meminfo_shmem_bytes),
        ),
        objects_resident_bytes: SignedDelta::new(
            signed(a.objects.objects_resident_bytes),
            signed(b.objects.objects_resident_bytes),
        ),
        unexplained_bytes: SignedDelta::new(
            Some(a.objects.unexplained_bytes),
            Some(b.objects.unexplained_bytes),
        ),
        objects: object_diffs(&a.objects, &b.objects, min_change),
        processes,
        notes,
    }
}

/// What makes an object the same object in two records.
type Key = (ObjectKind, Option<String>, String, Option<u64>);

fn key(o: &ObjectDoc) -> Key {
    (
        o.kind,
        o.dev.clone(),
        // Documents older than the `id` field name objects by inode.
        if o.id.is_empty() {
            o.inode.to_string()
        } else {
            o.id.clone()
        },
        o.namespace,
    )
}

fn display_name(o: &ObjectDoc) -> String {
    match o.kind {
        ObjectKind::AnonShared => "(anonymous)".to_string(),
        ObjectKind::Sysv => o
            .key
            .map(|k| format!("key 0x{:08x}", k.0 as u32))
            .unwrap_or_default(),
        ObjectKind::Memfd => format!("memfd:{}", o.name.as_deref().unwrap_or("")),
        ObjectKind::PosixShm | ObjectKind::Tmpfs => {
            let p = o.path.clone().unwrap_or_default();
            if o.deleted == Some(true) {
                format!("{p} (deleted)")
            } else {
                p
            }
        }
    }
}

fn figures(o: &ObjectDoc) -> Figures {
    Figures {
        resident_bytes: o.resident_bytes,
        swap_bytes: o.swap_bytes,
        size_bytes: o.size_bytes,
    }
}

/// B less A, saturating: a kernel figure near 2^64 must not wrap into a negative change.
fn delta(a: Option<u64>, b: Option<u64>) -> i64 {
    let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
    if b >= a {
        i64::try_from(b - a).unwrap_or(i64::MAX)
    } else {
        i64::try_from(a - b).map_or(i64::MIN, |d| -d)
    }
}

/// Objects matched by identity, largest change first; changes under `min_change` left out.
pub fn object_diffs(a: &ObjectsDoc, b: &ObjectsDoc, min_change: u64) -> Vec<ObjectDiff> {
    let before: HashMap<Key, &ObjectDoc> = a.objects.iter().map(|o| (key(o), o)).collect();
    let after: HashMap<Key, &ObjectDoc> = b.objects.iter().map(|o| (key(o), o)).collect();
    let mut keys: Vec<&Key> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<ObjectDiff> = keys
        .into_iter()
        .filter_map(|k| {
            let (oa, ob) = (before.get(k).copied(), after.get(k).copied());
            let (fa, fb) = (oa.map(figures), ob.map(figures));
            let newest = ob.or(oa)?;
            let d = ObjectDiff {
                change: Change::Changed,
                kind: k.0,
                id: k.2.clone(),
                dev: k.1.clone(),
                namespace: k.3,
                name: display_name(newest),
                owner: newest.owner.clone(),
                a: fa,
                b: fb,
                resident_delta_bytes: delta(
                    fa.map(|f| f.resident_bytes),
                    fb.map(|f| f.resident_bytes),
                ),
                swap_delta_bytes: delta(fa.map(|f| f.swap_bytes), fb.map(|f| f.swap_bytes)),
                size_delta_bytes: delta(fa.map(|f| f.size_bytes), fb.map(|f| f.size_bytes)),
            };
            let change = match (fa, fb) {
                (None, Some(_)) => Change::Appeared,
                (Some(_), None) => Change::Disappeared,
                (Some(x), Some(y)) if x == y => return None,
                _ if d.held_delta() > 0 => Change::Grew,
                _ if d.held_delta() < 0 => Change::Shrank,
                _ => Change::Changed,
            };
            let biggest = [d.held_delta(), d.resident_delta_bytes, d.size_delta_bytes]
                .iter()
                .map(|v| v.unsigned_abs())
                .max()
                .unwrap_or(0);
            let present = fa.or(fb).map_or(0, |f| f.resident_bytes + f.swap_bytes);
            let magnitude = match change {
                Change::Appeared | Change::Disappeared => present,
                _ => biggest,
            };
            (magnitude >= min_change).then_some(ObjectDiff { change, ..d })
        })
        .collect();
    out.sort_by(|x, y| {
        y.held_delta()
            .unsigned_abs()
            .cmp(&x.held_delta().unsigned_abs())
            .then(x.change.cmp(&y.change))
            .then(x.kind.cmp(&y.kind))
            .then(x.id.cmp(&y.id))
    });
    out
}

/// Processes matched by pid and command, largest change first.
pub fn proc_diffs(a: &ProcsDoc, b: &ProcsDoc, min_change: u64) -> Vec<ProcDiff> {
    // pid and command: a pid reused overnight by another program is another process.
    let index = |d: &ProcsDoc| -> BTreeMap<(i64, String), (u64, String)> {
        d.processes
            .iter()
            .map(|p| {
                (
                    (i64::from(p.pid.unwrap_or(0)), p.comm.clone()),
                    (p.shared_charged_bytes, p.user.clone()),
                )
            })
            .collect()
    };
    let (before, after) = (index(a), index(b));
    let mut keys: Vec<&(i64, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<ProcDiff> = keys
        .into_iter()
        .filter_map(|k| {
            let (pa, pb) = (before.get(k), after.get(k));
            let (ba, bb) = (pa.map(|p| p.0), pb.map(|p| p.0));
            let d = delta(ba, bb);
            let change = match (ba, bb) {
                (None, Some(_)) => Change::Appeared,
                (Some(_), None) => Change::Disappeared,
                _ if d > 0 => Change::Grew,
                _ if d < 0 => Change::Shrank,
                _ => return None,
            };
            // Processes that came or went holding nothing are noise here.
            if d == 0 || d.unsigned_abs() < min_change.max(1) {
                return None;
            }
            Some(ProcDiff {
                change,
                pid: k.0,
                comm: k.1.clone(),
                user: pb.or(pa).map(|p| p.1.clone()).unwrap_or_default(),
                a_bytes: ba,
                b_bytes: bb,
                delta_bytes: d,
            })
        })
        .collect();
    out.sort_by(|x, y| {
        y.delta_bytes
            .unsigned_abs()
            .cmp(&x.delta_bytes.unsigned_abs())
            .then(x.pid.cmp(&y.pid))
    });
    out
}
