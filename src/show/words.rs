//! The sentences of `show` that must not claim more than the scan saw: who holds an object when
//! some holders cannot be seen, and whether memory nobody maps is a cache kept by a live owner
//! (normal) or memory owned by nobody (a leak candidate).

use crate::account::show::ObjectView;
use crate::account::Accounted;
use crate::model::{Object, ObjectKind, Snapshot};
use crate::render::units::Units;
use crate::report::object_id;

/// "1 attach", "3 attaches".
fn attaches(n: u64) -> String {
    format!("{n} attach{}", if n == 1 { "" } else { "es" })
}

/// Why some holders may be missing: the processes the scan could not read.
fn unread_processes(snap: &Snapshot) -> String {
    format!(
        "{} process(es) could not be read",
        snap.notes.unreadable.max(1)
    )
}

/// What the HOLDERS section says of an object with no listed holder. "No process maps it" only
/// when that is known: the segment's `nattch` is 0, or (for files) every process was read.
pub fn no_holders(snap: &Snapshot, o: &Object) -> String {
    let hidden = o.hidden_attaches();
    if hidden > 0 {
        return format!(
            "none visible: {}, not visible ({})",
            attaches(hidden),
            unread_processes(snap)
        );
    }
    if o.kind() == ObjectKind::Sysv {
        return "none: no process attaches it (nattch 0)".into();
    }
    if !snap.complete() {
        return format!(
            "none visible: {}; one of them may map it or hold it open",
            unread_processes(snap)
        );
    }
    "none: no process maps it or holds it open".into()
}

/// The object page's closing sentence: whose memory this is and whether that is normal.
pub fn object_verdict(acc: &Accounted, view: &ObjectView, units: Units) -> String {
    let snap = acc.snapshot;
    let o = &snap.objects[view.index];
    let b = |v| units.bytes(v);
    let what = acc.labels[view.index]
        .clone()
        .unwrap_or_else(|| format!("{} {}", o.kind().as_str(), object_id(o)));
    if let Some(pid) = acc.owners[view.index] {
        let who = snap
            .process(pid)
            .map_or_else(|| pid.to_string(), |p| format!("{} {pid}", p.label()));
        let unmapped = view
            .orphaned_bytes(o)
            .filter(|&v| v > 0)
            .map(|v| format!(" {} of it is in no live process's page tables;", b(v)))
            .unwrap_or_default();
        let freed = match (o.kind(), o.sysv()) {
            (ObjectKind::Sysv, Some(seg)) if !seg.removed() => format!(
                "it stays after its owner exits until removed (`ipcrm -m {}`)",
                seg.shmid
            ),
            (ObjectKind::Sysv, _) => "freed when its last attach goes".into(),
            (ObjectKind::AnonShared | ObjectKind::Memfd, _) => {
                "freed when its owner and every holder exit or let go of it".into()
            }
            (ObjectKind::PosixShm | ObjectKind::Tmpfs | ObjectKind::Hugetlbfs, _) => {
                "it stays after its owner exits until the file is removed".into()
            }
        };
        return format!(
            "{what} is kept by a live owner, {who}:{unmapped} normal for a cache or pool, not a leak; {freed}"
        );
    }
    let hidden = o.hidden_attaches();
    if hidden > 0 {
        return format!(
            "{what} has no visible owner but {} the scan could not see: not a leak while they hold it",
            attaches(hidden)
        );
    }
    if o.kind() != ObjectKind::Sysv && !snap.complete() {
        return format!(
            "{what} is held by no visible process ({}): a leak candidate only if none of them holds it",
            unread_processes(snap)
        );
    }
    let free = match o.kind() {
        ObjectKind::Sysv => o
            .sysv()
            .map(|s| format!("; `ipcrm -m {}` frees it", s.shmid))
            .unwrap_or_default(),
        ObjectKind::PosixShm | ObjectKind::Tmpfs | ObjectKind::Hugetlbfs => {
            "; removing the file frees it".into()
        }
        ObjectKind::AnonShared | ObjectKind::Memfd => String::new(),
    };
    format!(
        "{what} is owned by nobody ({} resident, no process maps it or holds it open{}): a leak candidate{free}",
        b(o.resident_bytes),
        if o.kind() == ObjectKind::Sysv {
            ", its creator has exited"
        } else {
            ""
        }
    )
}
