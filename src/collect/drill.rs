//! The drill-down of `show`: the I/O behind one object's page picture. The object's own
//! residency through the first handle that opens it (`residency`), and each holder's pagemap
//! over its mapping of the object only (`pagemap`). No smaps, no arithmetic: `account::show`
//! works out PSS and orphaned pages from what is read here.

use super::pagemap::{self, PageRanges, Unread};
use super::residency::{self, Residency};
use crate::model::{Object, ObjectId, ObjectKind, Snapshot, Via};
use std::path::{Path, PathBuf};

/// What one holder's page tables say about the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HolderPages {
    /// A mapping, and the object pages present in its page tables.
    Mapped(PageRanges),
    /// An fd: no page tables.
    Fd,
    /// A mapping whose pagemap could not be read.
    Unread(Unread),
}

/// What was read about one object.
#[derive(Clone, Debug)]
pub struct Drill {
    /// Index in `snapshot.objects`.
    pub index: usize,
    /// Resident and swapped pages, or why they could not be had.
    pub residency: Result<Residency, String>,
    /// One per `object.holders` entry, in the same order.
    pub holders: Vec<HolderPages>,
}

/// Ways to open the object, best first: an fd link (works for the owner without privileges),
/// a path in our mount namespace, a map_files link (needs CAP_CHECKPOINT_RESTORE).
pub fn handles(proc_root: &Path, o: &Object) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for h in &o.holders {
        if let Via::Fd { fd } = h.via {
            out.push(proc_root.join(format!("{}/fd/{fd}", h.pid)));
        }
    }
    if let (Some(f), None) = (o.file(), o.foreign_ns) {
        if !f.deleted {
            out.push(f.path.clone());
        }
    }
    for h in &o.holders {
        if let Via::Map { start, end, .. } = h.via {
            out.push(proc_root.join(format!("{}/map_files/{start:x}-{end:x}", h.pid)));
        }
    }
    out
}

/// The pid of a `PROC/PID/map_files/RANGE` handle.
fn map_files_pid(proc_root: &Path, h: &Path) -> Option<crate::model::Pid> {
    let mut parts = h.strip_prefix(proc_root).ok()?.iter();
    let pid = parts.next()?.to_str()?.parse().ok()?;
    (parts.next()? == "map_files").then_some(pid)
}

/// (dev, inode) a handle must lead to.
fn expected_identity(o: &Object) -> Option<(u64, u64)> {
    match o.id {
        ObjectId::Inode { dev, ino } => Some((dev, ino)),
        ObjectId::Sysv { .. } => o.dev.map(|d| (d, o.inode)),
    }
}

/// Residency through the first handle that works.
pub fn read_residency(
    proc_root: &Path,
    o: &Object,
    page_size: u64,
    swap_in_use: bool,
) -> Result<Residency, String> {
    if o.hugetlb() {
        return Err(
            "hugetlb memory: its huge pages cannot be seen from a mapping that never touched them"
                .into(),
        );
    }
    let Some(expect) = expected_identity(o) else {
        return Err("the object's device is unknown".into());
    };
    let handles = handles(proc_root, o);
    if handles.is_empty() {
        return Err(match o.kind() {
            ObjectKind::Sysv if o.hidden_attaches() > 0 => "the processes attaching the segment cannot be read from here, and shmwho never attaches one itself: only its totals are known".into(),
            ObjectKind::Sysv => "no process attaches the segment, and shmwho never attaches one itself: only its totals are known".into(),
            ObjectKind::AnonShared
            | ObjectKind::Memfd
            | ObjectKind::PosixShm
            | ObjectKind::Tmpfs
            | ObjectKind::Hugetlbfs => {
                "no handle reaches the object from here (another mount namespace?)".into()
            }
        });
    }
    let mut denied = false;
    for h in &handles {
        let got = match map_files_pid(proc_root, h) {
            // Opening a map_files link takes the holder's mmap_lock: under the deadline.
            Some(pid) => {
                let path = h.clone();
                match super::deadline::call(pid, "map_files", move || {
                    residency::object_residency(&path, expect, page_size, swap_in_use)
                }) {
                    Some(got) => got,
                    None => continue, // its memory map is locked: the next handle
                }
            }
            None => residency::object_residency(h, expect, page_size, swap_in_use),
        };
        match got {
            Ok(r) => return Ok(r),
            Err(e) if e.denied() => denied = true,
            Err(_) => {} // holder gone or fd reused: next handle
        }
    }
    Err(if denied {
        "opening the object needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (run as root)".into()
    } else {
        "every holder went away while it was read".into()
    })
}

/// Reads the residency of object `index` and its holders' pages.
pub fn object(snap: &Snapshot, proc_root: &Path, index: usize) -> Drill {
    let o = &snap.objects[index];
    let swap_in_use = snap.meminfo.swap_used_bytes() > 0;
    let residency = read_residency(proc_root, o, snap.page_size, swap_in_use);
    let queries: Vec<pagemap::MappingQuery> = o
        .holders
        .iter()
        .filter_map(|h| match h.via {
            Via::Map {
                start,
                end,
                offset,
                shared,
                ..
            } => Some((h.pid, start, end, offset, shared)),
            Via::Fd { .. } => None,
        })
        .collect();
    let mut answers = pagemap::mapped_ranges_many(proc_root, queries, snap.page_size).into_iter();
    // pagemap speaks in base pages; a hugetlb object's picture is in its huge pages.
    let factor = (o.page_size_bytes / snap.page_size.max(1)).max(1);
    let holders = o
        .holders
        .iter()
        .map(|h| match h.via {
            Via::Map { .. } => match answers.next().expect("one answer per mapping") {
                Ok(r) => HolderPages::Mapped(r.coarsen(factor)),
                Err(e) => HolderPages::Unread(e),
            },
            Via::Fd { .. } => HolderPages::Fd,
        })
        .collect();
    Drill {
        index,
        residency,
        holders,
    }
}
