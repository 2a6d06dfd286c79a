//! One object page by page: where it is resident, which pages each holder has in its page
//! tables, and which resident pages no live process maps (orphaned).
//!
//! Residency comes from the object itself (`collect::residency`); per-holder presence from each
//! holder's pagemap over its mapping of the object only (`collect::pagemap`). No smaps is read:
//! PSS is worked out from the holders' pages (page size / number of mappings of the page), the
//! way smaps does it, since every process mapping the object is one of its holders.

use crate::collect::pagemap::{self, PageRanges, Unread};
use crate::collect::residency::{self, Residency};
use crate::model::{Object, ObjectId, ObjectKind, Snapshot, Via};
use std::path::{Path, PathBuf};

/// One holder (mapping or fd) of the object.
#[derive(Clone, Debug)]
pub struct HolderView {
    /// Pages of the object in this holder's page tables (object page numbers); None for an fd
    /// (no page tables) or a holder that could not be read.
    pub mapped: Option<PageRanges>,
    /// This mapping's proportional share of the pages it maps.
    pub pss_bytes: Option<u64>,
    /// Why `mapped` is missing for a mapping.
    pub unread: Option<Unread>,
}

/// The object, analysed.
#[derive(Clone, Debug)]
pub struct ObjectView {
    /// Index in `snapshot.objects`.
    pub index: usize,
    pub page_size: u64,
    /// Size in pages (rounded up).
    pub pages: u64,
    pub swap_in_use: bool,
    /// Resident and swapped pages, or why they could not be had.
    pub residency: Result<Residency, String>,
    /// One per `object.holders` entry, in the same order.
    pub holders: Vec<HolderView>,
    /// Resident pages that no holder maps; None without residency.
    pub orphaned: Option<PageRanges>,
}

impl ObjectView {
    /// Resident bytes in no live process's page tables: from the ranges, or, without them,
    /// all of the object's resident bytes when nothing maps it (an unattached SysV segment).
    pub fn orphaned_bytes(&self, o: &Object) -> Option<u64> {
        match &self.orphaned {
            Some(r) => Some(r.pages() * self.page_size),
            None => self
                .holders
                .iter()
                .all(|h| h.mapped.is_none() && h.unread.is_none())
                .then_some(o.resident_bytes),
        }
    }

    /// Pages present in any holder's page tables.
    pub fn mapped_union(&self) -> PageRanges {
        PageRanges::from_runs(
            self.holders
                .iter()
                .filter_map(|h| h.mapped.as_ref())
                .flat_map(|r| r.runs().iter().copied()),
        )
    }
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

/// (dev, inode) a handle must lead to.
fn expected_identity(o: &Object) -> Option<(u64, u64)> {
    match o.id {
        ObjectId::Inode { dev, ino } => Some((dev, ino)),
        ObjectId::Sysv { .. } => o.dev.map(|d| (d, o.inode)),
    }
}

/// Residency through the first handle that works.
fn read_residency(
    proc_root: &Path,
    o: &Object,
    page_size: u64,
    swap_in_use: bool,
) -> Result<Residency, String> {
    if o.hugetlb() {
        return Err("a SHM_HUGETLB segment: hugetlb pages cannot be seen from a mapping that never touched them".into());
    }
    let Some(expect) = expected_identity(o) else {
        return Err("the object's device is unknown".into());
    };
    let handles = handles(proc_root, o);
    if handles.is_empty() {
        return Err(match o.kind() {
            ObjectKind::Sysv => "no process attaches the segment, and shmwho never attaches one itself: only its totals are known".into(),
            ObjectKind::AnonShared
            | ObjectKind::Memfd
            | ObjectKind::PosixShm
            | ObjectKind::Tmpfs => {
                "no handle reaches the object from here (another mount namespace?)".into()
            }
        });
    }
    let mut denied = false;
    for h in &handles {
        match residency::object_residency(h, expect, page_size, swap_in_use) {
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

/// Reads what the view needs for object `index` of the snapshot.
pub fn analyse(snap: &Snapshot, proc_root: &Path, index: usize) -> ObjectView {
    let o = &snap.objects[index];
    let page_size = snap.page_size;
    let swap_in_use = snap.meminfo.swap_used_bytes() > 0;
    let residency = read_residency(proc_root, o, page_size, swap_in_use);
    let size = residency.as_ref().map_or(o.size_bytes, |r| r.size_bytes);
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
    let mut answers = pagemap::mapped_ranges_many(proc_root, queries, page_size).into_iter();
    let mut holders: Vec<HolderView> = o
        .holders
        .iter()
        .map(|h| match h.via {
            Via::Map { .. } => match answers.next().expect("one answer per mapping") {
                Ok(r) => HolderView {
                    mapped: Some(r),
                    pss_bytes: None,
                    unread: None,
                },
                Err(e) => HolderView {
                    mapped: None,
                    pss_bytes: None,
                    unread: Some(e),
                },
            },
            Via::Fd { .. } => HolderView {
                mapped: None,
                pss_bytes: None,
                unread: None,
            },
        })
        .collect();
    let mapped: Vec<Option<&PageRanges>> = holders.iter().map(|h| h.mapped.as_ref()).collect();
    let pss = pss_bytes(&mapped, page_size);
    for (h, p) in holders.iter_mut().zip(pss) {
        h.pss_bytes = p;
    }
    let mut view = ObjectView {
        index,
        page_size,
        pages: size.div_ceil(page_size),
        swap_in_use,
        residency,
        holders,
        orphaned: None,
    };
    if let Ok(r) = &view.residency {
        view.orphaned = Some(r.resident.subtract(&view.mapped_union()));
    }
    view
}

/// Fixed-point shift for PSS, as the kernel's smaps uses (`PSS_SHIFT`).
const PSS_SHIFT: u32 = 12;

/// PSS of each mapping: each page it maps counts page_size / (number of mappings that map it),
/// rounded as smaps rounds (fixed point, per page). None where `mapped` is None.
pub fn pss_bytes(mapped: &[Option<&PageRanges>], page_size: u64) -> Vec<Option<u64>> {
    // Boundaries where the number of mappings changes.
    let mut events: Vec<(u64, i64)> = Vec::new();
    for r in mapped.iter().flatten() {
        for &(first, count) in r.runs() {
            events.push((first, 1));
            events.push((first + count, -1));
        }
    }
    events.sort_unstable();
    // Segments [start, end) with their weight (fixed-point bytes per page), and prefix sums.
    let mut starts: Vec<u64> = Vec::new();
    let mut prefix: Vec<u128> = vec![0];
    let mut depth: i64 = 0;
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            depth += events[i].1;
            i += 1;
        }
        let Some(&(next, _)) = events.get(i) else {
            break;
        };
        if depth > 0 {
            let per_page = (u128::from(page_size) << PSS_SHIFT) / depth as u128;
            starts.push(at);
            let last = *prefix.last().expect("starts with 0");
            prefix.push(last + per_page * u128::from(next - at));
        }
    }
    mapped
        .iter()
        .map(|r| {
            r.map(|r| {
                let mut sum: u128 = 0;
                for &(first, count) in r.runs() {
                    // Every run starts and ends on a boundary, and segments cover it whole.
                    let a = starts.partition_point(|&s| s < first);
                    let b = starts.partition_point(|&s| s < first + count);
                    sum += prefix[b] - prefix[a];
                }
                (sum >> PSS_SHIFT) as u64
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(runs: &[(u64, u64)]) -> PageRanges {
        PageRanges::from_runs(runs.iter().copied())
    }

    #[test]
    fn pss_divides_shared_pages() {
        // The write-up: child 1 maps the first quarter, child 2 the first half, the master
        // nothing; 16 pages of 4096.
        let master = r(&[]);
        let c1 = r(&[(0, 4)]);
        let c2 = r(&[(0, 8)]);
        let pss = pss_bytes(&[Some(&master), Some(&c1), Some(&c2), None], 4096);
        assert_eq!(
            pss,
            vec![Some(0), Some(2 * 4096), Some(2 * 4096 + 4 * 4096), None]
        );
        let total: u64 = pss.iter().flatten().sum();
        assert_eq!(total, 8 * 4096, "PSS adds up to the pages mapped");
    }

    #[test]
    fn pss_rounds_like_smaps() {
        // Three mappers of one page: 4096/3 each, in 1/4096ths, rounded down once at the end.
        let a = r(&[(0, 1)]);
        let pss = pss_bytes(&[Some(&a), Some(&a), Some(&a)], 4096);
        assert_eq!(pss, vec![Some(1365); 3]);
        // Interleaved mappers: even pages by one, odd pages by another, all by a third.
        let even = PageRanges::from_runs((0..8).map(|i| (2 * i, 1)));
        let odd = PageRanges::from_runs((0..8).map(|i| (2 * i + 1, 1)));
        let all = r(&[(0, 16)]);
        let pss = pss_bytes(&[Some(&even), Some(&odd), Some(&all)], 4096);
        assert_eq!(pss, vec![Some(8 * 2048), Some(8 * 2048), Some(16 * 2048)]);
    }
}
