//! `show`'s arithmetic, without I/O: each holder's PSS of the object from the pages in its
//! page tables (page size / number of mappings of the page, as smaps does it: every process
//! mapping the object is one of its holders), the orphaned pages, and what a process is
//! charged under each policy.

use super::{account, Accounted, Policy};
use crate::collect::drill::{Drill, HolderPages};
use crate::collect::pagemap::{PageRanges, Unread};
use crate::collect::residency::Residency;
use crate::model::{Object, Pid, Snapshot, Via};

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
    /// Page size in bytes.
    pub page_size: u64,
    /// Size in pages (rounded up).
    pub pages: u64,
    /// Swap is in use on the host (residency alone cannot tell resident from swapped).
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
    /// all of the object's resident bytes when nothing maps it (an unattached SysV segment;
    /// unknown while the kernel counts attaches the scan could not see).
    pub fn orphaned_bytes(&self, o: &Object) -> Option<u64> {
        match &self.orphaned {
            Some(r) => Some(r.pages() * self.page_size),
            None => (o.hidden_attaches() == 0
                && self
                    .holders
                    .iter()
                    .all(|h| h.mapped.is_none() && h.unread.is_none()))
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

/// The view of one object from what the drill-down read.
pub fn object_view(snap: &Snapshot, drill: Drill) -> ObjectView {
    let o = &snap.objects[drill.index];
    // A hugetlb object is pictured in its huge pages (the drill coarsened the holders' pages).
    let page_size = o.page_size_bytes.max(snap.page_size);
    let size = drill
        .residency
        .as_ref()
        .map_or(o.size_bytes, |r| r.size_bytes);
    let mut holders: Vec<HolderView> = drill
        .holders
        .into_iter()
        .map(|h| match h {
            HolderPages::Mapped(r) => HolderView {
                mapped: Some(r),
                pss_bytes: None,
                unread: None,
            },
            HolderPages::Fd => HolderView {
                mapped: None,
                pss_bytes: None,
                unread: None,
            },
            HolderPages::Unread(e) => HolderView {
                mapped: None,
                pss_bytes: None,
                unread: Some(e),
            },
        })
        .collect();
    let mapped: Vec<Option<&PageRanges>> = holders.iter().map(|h| h.mapped.as_ref()).collect();
    let pss = pss_bytes(&mapped, page_size);
    for (h, p) in holders.iter_mut().zip(pss) {
        h.pss_bytes = p;
    }
    let mut view = ObjectView {
        index: drill.index,
        page_size,
        pages: size.div_ceil(page_size),
        swap_in_use: snap.meminfo.swap_used_bytes() > 0,
        residency: drill.residency,
        holders,
        orphaned: None,
    };
    if let Ok(r) = &view.residency {
        view.orphaned = Some(r.resident.subtract(&view.mapped_union()));
    }
    view
}

/// Puts the PSS worked out in `view` into the snapshot's holders of that object, as smaps
/// would have: the drill-down completes the snapshot before it is accounted.
pub fn fill_pss(snap: &mut Snapshot, view: &ObjectView) {
    let o = &mut snap.objects[view.index];
    for (h, hv) in o.holders.iter_mut().zip(&view.holders) {
        if let Via::Map { pss_bytes, .. } = &mut h.via {
            *pss_bytes = hv.pss_bytes;
        }
    }
}

/// An object the process maps, holds as an fd, or owns.
#[derive(Clone, Debug)]
pub struct ProcObject {
    /// The object, analysed.
    pub view: ObjectView,
    /// Indices in `object.holders` that are this process's.
    pub held: Vec<usize>,
    /// Bytes of the object in this process's page tables (None: an fd only, or unreadable).
    pub mapped_bytes: Option<u64>,
    /// This process's PSS of the object.
    pub pss_bytes: Option<u64>,
    /// The process owns the object.
    pub owned: bool,
}

/// One process and every shared object it maps, holds or owns.
#[derive(Clone, Debug)]
pub struct ProcessView {
    /// The process.
    pub pid: Pid,
    /// Its objects, in snapshot order.
    pub objects: Vec<ProcObject>,
    /// Shared memory charged to the process under owner, split and touched.
    pub charged: Vec<(Policy, u64)>,
}

impl ProcessView {
    /// The objects the process owns.
    pub fn owned(&self) -> impl Iterator<Item = &ProcObject> {
        self.objects.iter().filter(|o| o.owned)
    }
}

/// Objects (indices) that `pid` holds or owns: the ones to drill into.
pub fn process_objects(acc: &Accounted, pid: Pid) -> Vec<usize> {
    acc.snapshot
        .objects
        .iter()
        .enumerate()
        .filter(|(i, o)| acc.owners[*i] == Some(pid) || o.holders.iter().any(|h| h.pid == pid))
        .map(|(i, _)| i)
        .collect()
}

/// The process page from the views of [`process_objects`], on a snapshot whose holders carry
/// the views' PSS ([`fill_pss`]): each policy is accounted once on it.
pub fn process_view(snap: &Snapshot, pid: Pid, views: Vec<ObjectView>) -> ProcessView {
    let owners = account(snap, Policy::Owner).owners;
    let objects = views
        .into_iter()
        .map(|view| {
            let o = &snap.objects[view.index];
            let held: Vec<usize> = (0..o.holders.len())
                .filter(|&h| o.holders[h].pid == pid)
                .collect();
            let mine = |f: &dyn Fn(&HolderView) -> Option<u64>| -> Option<u64> {
                let v: Vec<u64> = held.iter().filter_map(|&h| f(&view.holders[h])).collect();
                (!v.is_empty()).then(|| v.iter().sum())
            };
            let page = view.page_size;
            let mapped_bytes = mine(&|h| h.mapped.as_ref().map(|r| r.pages() * page));
            let pss_bytes = mine(&|h| h.pss_bytes);
            ProcObject {
                owned: owners[view.index] == Some(pid),
                view,
                held,
                mapped_bytes,
                pss_bytes,
            }
        })
        .collect();
    let charged = [Policy::Owner, Policy::Split, Policy::Touched]
        .into_iter()
        .map(|p| (p, account(snap, p).charged(pid)))
        .collect();
    ProcessView {
        pid,
        objects,
        charged,
    }
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
