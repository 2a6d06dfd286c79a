//! `/proc/PID/pagemap`: which pages a process has in its page tables, read only over the ranges
//! asked for (docs/facts.md #10).
//!
//! Presence comes from the `PAGEMAP_SCAN` ioctl (Linux 6.7+), which returns run-length regions:
//! 100 holders x 2 GiB of fully present 4 KiB pages took 0.56 s of CPU here, against 1.5 s for
//! reading the 8-byte entries, as long as only "present" is asked (asking "file page" too makes
//! the kernel look at every page's `struct page`: 3.9 s). Older kernels get the entries read in
//! 1 MiB preads. Physical page numbers (for `procs --exact`) need the entries themselves, and
//! CAP_SYS_ADMIN: without it the kernel reports every PFN as 0 (docs/facts.md #8).

use super::{classify, maps, Read, Reader};
use crate::model::Pid;
pub use crate::model::{PhysPages, PhysScan};
use serde::Serialize;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Page is present in RAM (bit 63).
pub const PM_PRESENT: u64 = 1 << 63;
/// Page is swapped (bit 62); never set for shmem pages (docs/facts.md #14).
pub const PM_SWAP: u64 = 1 << 62;
/// Page is a file page or shared anonymous (shmem) page (bit 61).
pub const PM_FILE: u64 = 1 << 61;
/// Page is mapped only once (bit 56), by the same test by which smaps counts it private.
pub const PM_MMAP_EXCLUSIVE: u64 = 1 << 56;
/// Bits 0-54: the page frame number (0 without CAP_SYS_ADMIN).
pub const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// Bytes read from pagemap per pread: 131072 entries, 512 MiB of address space.
const CHUNK_BYTES: usize = 1 << 20;

/// Present pages of `start..end` in the process whose pagemap is `fd`, and how many of them
/// it alone maps ([`PM_MMAP_EXCLUSIVE`]), the entries read 64 KiB at a time into `buf`.
pub(crate) fn count_range(
    fd: rustix::fd::BorrowedFd<'_>,
    start: u64,
    end: u64,
    page: u64,
    buf: &mut Vec<u8>,
) -> io::Result<(u64, u64)> {
    let (mut present, mut only) = (0, 0);
    each_present(fd, start, end, page, buf, |v| {
        present += 1;
        only += u64::from(v & PM_MMAP_EXCLUSIVE != 0);
    })?;
    Ok((present, only))
}

/// Calls `f` with the pagemap entry of every present page of `start..end` in the process whose
/// pagemap is `fd`, the entries read 64 KiB at a time into `buf`.
pub(crate) fn each_present(
    fd: rustix::fd::BorrowedFd<'_>,
    start: u64,
    end: u64,
    page: u64,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(u64),
) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    let (mut at, last) = (start / page * 8, end.div_ceil(page) * 8);
    while at < last {
        let want = usize::try_from(last - at).unwrap_or(CHUNK).min(CHUNK);
        let n = rustix::io::pread(fd, &mut buf[..want], at)?;
        let n = n - n % 8;
        if n == 0 {
            break; // the end of the address space
        }
        for e in buf[..n].chunks_exact(8) {
            let v = u64::from_le_bytes(e.try_into().expect("8 bytes"));
            if v & PM_PRESENT != 0 {
                f(v);
            }
        }
        at += n as u64;
    }
    Ok(())
}

/// A set of pages as sorted, disjoint, non-adjacent runs `(first_page, page_count)`. Serialises
/// as `[[first_page, page_count], ...]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PageRanges(Vec<(u64, u64)>);

impl PageRanges {
    /// No pages.
    pub const EMPTY: PageRanges = PageRanges(Vec::new());

    /// No pages.
    pub fn new() -> PageRanges {
        PageRanges(Vec::new())
    }

    /// From runs in any order, overlapping or not.
    pub fn from_runs(runs: impl IntoIterator<Item = (u64, u64)>) -> PageRanges {
        let mut v: Vec<(u64, u64)> = runs.into_iter().filter(|r| r.1 > 0).collect();
        v.sort_unstable();
        let mut out = PageRanges::new();
        for (first, count) in v {
            out.add(first, count);
        }
        out
    }

    /// Adds a run that starts at or after the start of the last one (merging overlaps).
    pub fn add(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(last) = self.0.last_mut() {
            debug_assert!(first >= last.0, "runs added out of order");
            let last_end = last.0 + last.1;
            if first <= last_end {
                last.1 = last.1.max(first + count - last.0);
                return;
            }
        }
        self.0.push((first, count));
    }

    /// The same ranges in pages `factor` times larger: a large page is in when any of its
    /// base pages is (a huge page is mapped whole).
    pub fn coarsen(&self, factor: u64) -> PageRanges {
        if factor <= 1 {
            return self.clone();
        }
        PageRanges::from_runs(self.0.iter().map(|&(first, count)| {
            let start = first / factor;
            let end = (first + count).div_ceil(factor);
            (start, end - start)
        }))
    }

    /// The runs, as (first page, count), sorted and disjoint.
    pub fn runs(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Number of pages in all runs.
    pub fn pages(&self) -> u64 {
        self.0.iter().map(|r| r.1).sum()
    }

    /// Whether no page is in any run.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pages in either.
    pub fn union(&self, other: &PageRanges) -> PageRanges {
        let mut all = self.0.clone();
        all.extend_from_slice(&other.0);
        PageRanges::from_runs(all)
    }

    /// Pages in `self` and not in `other`.
    pub fn subtract(&self, other: &PageRanges) -> PageRanges {
        let mut out = PageRanges::new();
        let mut j = 0;
        for &(first, count) in &self.0 {
            let end = first + count;
            let mut at = first;
            while j < other.0.len() && other.0[j].0 + other.0[j].1 <= at {
                j += 1;
            }
            let mut k = j;
            while at < end {
                match other.0.get(k) {
                    Some(&(of, oc)) if of < end => {
                        if of > at {
                            out.add(at, of - at);
                        }
                        at = at.max(of + oc);
                        k += 1;
                    }
                    _ => {
                        out.add(at, end - at);
                        at = end;
                    }
                }
            }
        }
        out
    }

    /// Pages in both.
    pub fn intersect(&self, other: &PageRanges) -> PageRanges {
        self.subtract(&self.subtract(other))
    }

    /// Runs clipped to pages `[first, end)`.
    pub fn clip(&self, first: u64, end: u64) -> PageRanges {
        PageRanges::from_runs([(first, end.saturating_sub(first))]).intersect(self)
    }
}

/// Pages of an object present in one mapping's entries: `entries[i]` describes object page
/// `first_page + i`. Only shared (file or shmem) pages count: in a private mapping of a file an
/// anonymous copy-on-write page is not the object's.
pub fn decode_present(entries: &[u64], first_page: u64, out: &mut PageRanges) {
    let mut i = 0;
    while i < entries.len() {
        if entries[i] & (PM_PRESENT | PM_FILE) != PM_PRESENT | PM_FILE {
            i += 1;
            continue;
        }
        let start = i;
        while i < entries.len() && entries[i] & (PM_PRESENT | PM_FILE) == PM_PRESENT | PM_FILE {
            i += 1;
        }
        out.add(first_page + start as u64, (i - start) as u64);
    }
}

/// Sorts present entries into anonymous and file PFNs.
pub fn decode_pfns(entries: &[u64], out: &mut PhysPages) {
    for &e in entries {
        if e & PM_PRESENT == 0 {
            continue;
        }
        let pfn = e & PM_PFN_MASK;
        if e & PM_FILE != 0 {
            out.file.push(pfn);
        } else {
            out.anon.push(pfn);
        }
    }
}

/// An open `/proc/PID/pagemap`.
pub struct Pagemap {
    file: File,
    page_size: u64,
    /// `PAGEMAP_SCAN` answered (None: not tried yet).
    scan_works: Option<bool>,
    buf: Vec<u64>,
}

impl Pagemap {
    /// Opens `/proc/PID/pagemap` under `proc_root`.
    pub fn open(proc_root: &Path, pid: Pid, page_size: u64) -> io::Result<Pagemap> {
        Ok(Pagemap {
            file: File::open(proc_root.join(format!("{pid}/pagemap")))?,
            page_size,
            scan_works: None,
            buf: Vec::new(),
        })
    }

    /// Pages of the object mapped at `start..end` (file offset `offset`) that are in this
    /// process's page tables, in object page offsets. `shared`: a MAP_SHARED mapping, whose
    /// present pages are all the object's; in a private one, anonymous copy-on-write pages are
    /// told apart page by page, which costs the kernel a look at every page's `struct page`
    /// (7x slower on 100 holders x 2 GiB).
    pub fn mapped_ranges(
        &mut self,
        start: u64,
        end: u64,
        offset: u64,
        shared: bool,
    ) -> io::Result<PageRanges> {
        let first_page = offset / self.page_size;
        let mut out = PageRanges::new();
        if self.scan_works != Some(false) {
            let want = if shared {
                scan::PAGE_IS_PRESENT
            } else {
                scan::PAGE_IS_PRESENT | scan::PAGE_IS_FILE
            };
            match scan::regions(&self.file, start, end, want, 0, 0) {
                Ok(regions) => {
                    self.scan_works = Some(true);
                    for (s, e, _) in regions {
                        out.add(
                            first_page + (s - start) / self.page_size,
                            (e - s) / self.page_size,
                        );
                    }
                    return Ok(out);
                }
                Err(e) if scan::unsupported(&e) => self.scan_works = Some(false),
                Err(e) => return Err(e),
            }
        }
        let mut vpage = start / self.page_size;
        let end_page = end / self.page_size;
        while vpage < end_page {
            let n = self.read_entries(vpage, end_page)?;
            if n == 0 {
                break;
            }
            let at = first_page + (vpage - start / self.page_size);
            decode_present(&self.buf[..n], at, &mut out);
            vpage += n as u64;
        }
        Ok(out)
    }

    /// Physical pages of `start..end`, skipping the zero page where the kernel can say which it
    /// is (PAGEMAP_SCAN). Sparse ranges are found by the scan first, so a reserved terabyte of
    /// address space costs nothing.
    pub fn phys_pages(&mut self, start: u64, end: u64, out: &mut PhysPages) -> io::Result<()> {
        let ranges: Vec<(u64, u64)> = if self.scan_works != Some(false) {
            match scan::regions(
                &self.file,
                start,
                end,
                scan::PAGE_IS_PRESENT | scan::PAGE_IS_PFNZERO,
                scan::PAGE_IS_PFNZERO,
                0,
            ) {
                Ok(r) => {
                    self.scan_works = Some(true);
                    r.into_iter().map(|(s, e, _)| (s, e)).collect()
                }
                Err(e) if scan::unsupported(&e) => {
                    self.scan_works = Some(false);
                    vec![(start, end)]
                }
                Err(e) => return Err(e),
            }
        } else {
            vec![(start, end)]
        };
        for (s, e) in ranges {
            let mut vpage = s / self.page_size;
            let end_page = e / self.page_size;
            while vpage < end_page {
                let n = self.read_entries(vpage, end_page)?;
                if n == 0 {
                    break;
                }
                decode_pfns(&self.buf[..n], out);
                vpage += n as u64;
            }
        }
        Ok(())
    }

    /// Reads entries for virtual pages `vpage..end_page` (at most one chunk) into `buf`.
    fn read_entries(&mut self, vpage: u64, end_page: u64) -> io::Result<usize> {
        let want = ((end_page - vpage) as usize).min(CHUNK_BYTES / 8);
        self.buf.resize(want, 0);
        let bytes: &mut [u8] = as_bytes_mut(&mut self.buf);
        let mut got = 0;
        while got < bytes.len() {
            match self.file.read_at(&mut bytes[got..], vpage * 8 + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got / 8)
    }
}

/// The u64 buffer as bytes (pagemap entries are native-endian u64s).
fn as_bytes_mut(v: &mut [u64]) -> &mut [u8] {
    let len = std::mem::size_of_val(v);
    // SAFETY: u8 has no alignment or validity requirements and the length covers exactly the
    // same memory, borrowed mutably for the same lifetime.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// Mappings whose pages are kernel memory, not the process's: never counted.
fn kernel_special(path: &[u8]) -> bool {
    matches!(
        path,
        b"[vvar]" | b"[vvar_vclock]" | b"[vsyscall]" | b"[vdso]" | b"[uprobes]"
    )
}

/// A device mapping (`/dev/...` other than the shmem ones) may map device memory whose frames
/// are not RAM pages the process owns.
fn device_mapping(e: &maps::MapsEntry) -> bool {
    e.dev_major != 0 && e.path.starts_with(b"/dev/") && !e.path.starts_with(b"/dev/shm/")
}

/// Physical pages of a process outside the mappings starting at `skip` (its shared-memory
/// objects, which are accounted as objects).
pub(crate) fn process_phys_pages(
    reader: &mut Reader,
    proc_root: &Path,
    pid: Pid,
    skip: &[u64],
    page_size: u64,
) -> Read<PhysPages> {
    let Some(maps_text) = reader.read_locked(
        pid,
        "maps",
        &proc_root.join(format!("{pid}/maps")),
        usize::MAX,
    ) else {
        return Read::Vanished; // stuck: named in the snapshot's notes
    };
    let maps_text = match classify(maps_text) {
        Read::Ok(t) => t,
        Read::Vanished => return Read::Vanished,
        Read::Denied => return Read::Denied,
    };
    let mut pm = match classify(Pagemap::open(proc_root, pid, page_size)) {
        Read::Ok(p) => p,
        Read::Vanished => return Read::Vanished,
        Read::Denied => return Read::Denied,
    };
    let mut out = PhysPages::default();
    for e in maps::parse(maps_text) {
        if skip.contains(&e.start) || kernel_special(&e.path) || device_mapping(&e) {
            continue;
        }
        // Each mapping's walk under the deadline, not the whole process's: a large process
        // may take longer than that in all and still answer.
        let (start, end) = (e.start, e.end);
        let Some((back_pm, back_out, r)) = super::deadline::call(pid, "pagemap", move || {
            let r = pm.phys_pages(start, end, &mut out);
            (pm, out, r)
        }) else {
            return Read::Vanished; // stuck: named in the snapshot's notes
        };
        (pm, out) = (back_pm, back_out);
        match classify(r) {
            Read::Ok(()) => {}
            Read::Vanished => return Read::Vanished,
            Read::Denied => return Read::Denied,
        }
    }
    Read::Ok(out.finish())
}

/// Physical pages of each process in `wanted` (pid, starts of its object mappings to skip), on
/// up to 4 threads.
pub fn phys_pages(proc_root: &Path, wanted: Vec<(Pid, Vec<u64>)>, page_size: u64) -> PhysScan {
    let results = super::parallel_map(wanted, 64, |reader, (pid, skip)| {
        (
            pid,
            process_phys_pages(reader, proc_root, pid, &skip, page_size),
        )
    });
    let mut scan = PhysScan::default();
    for (pid, r) in results {
        match r {
            Read::Ok(p) => {
                scan.pages.insert(pid, p);
            }
            Read::Vanished => {
                scan.vanished += 1;
                scan.unread.push(pid);
            }
            Read::Denied => {
                scan.denied += 1;
                scan.unread.push(pid);
            }
        }
    }
    scan
}

/// Why a process's pagemap gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unread {
    /// The process exited (or unmapped the range) before it was read.
    Vanished,
    /// Permission denied (another user's process without CAP_SYS_PTRACE).
    Denied,
    /// The process's memory map is locked: pagemap did not answer in time
    /// (`collect::deadline`).
    Stuck,
}

/// One mapping of an object to read: (pid, start, end, file offset, MAP_SHARED).
pub type MappingQuery = (Pid, u64, u64, u64, bool);

/// [`Pagemap::mapped_ranges`] for each (pid, start, end, offset), in order. The kernel's page
/// walk is the whole cost and runs in the reading thread, so the queries are spread over up to
/// 4 threads (one per CPU) however few they are: 25 holders x 2 GiB took 202 ms on one thread,
/// the kind of object `show` is for.
pub fn mapped_ranges_many(
    proc_root: &Path,
    queries: Vec<MappingQuery>,
    page_size: u64,
) -> Vec<Result<PageRanges, Unread>> {
    let one = |_: &mut Reader, (pid, start, end, offset, shared): MappingQuery| {
        let root = proc_root.to_path_buf();
        let Some(got) = super::deadline::call(pid, "pagemap", move || {
            Pagemap::open(&root, pid, page_size)
                .and_then(|mut pm| pm.mapped_ranges(start, end, offset, shared))
        }) else {
            return Err(Unread::Stuck);
        };
        match classify(got) {
            Read::Ok(r) => Ok(r),
            Read::Vanished => Err(Unread::Vanished),
            Read::Denied => Err(Unread::Denied),
        }
    };
    // Even two queries are worth two threads: each is a long page walk.
    super::parallel_map(queries, 2, one)
}

/// Physical pages of every process in the snapshot but shmwho itself (whose pages are
/// transient), outside its mappings of shared-memory objects.
pub fn snapshot_phys_pages(proc_root: &Path, snap: &crate::model::Snapshot) -> PhysScan {
    let mut skip: std::collections::HashMap<Pid, Vec<u64>> = std::collections::HashMap::new();
    for o in &snap.objects {
        for h in &o.holders {
            if let crate::model::Via::Map { start, .. } = h.via {
                skip.entry(h.pid).or_default().push(start);
            }
        }
    }
    let me = std::process::id() as Pid;
    let wanted = snap
        .processes
        .iter()
        .filter(|p| p.pid != me)
        .map(|p| (p.pid, skip.remove(&p.pid).unwrap_or_default()))
        .collect();
    phys_pages(proc_root, wanted, snap.page_size)
}

/// Whether this process may read page frame numbers (CAP_SYS_ADMIN, docs/facts.md #8).
pub fn can_read_pfns() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::SYS_ADMIN)
    })
}

/// The `PAGEMAP_SCAN` ioctl (Linux 6.7+): matching pages as run-length regions.
mod scan {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    pub const PAGE_IS_FILE: u64 = 1 << 2;
    pub const PAGE_IS_PRESENT: u64 = 1 << 3;
    pub const PAGE_IS_PFNZERO: u64 = 1 << 5;

    /// `struct page_region` of `<linux/fs.h>`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct PageRegion {
        start: u64,
        end: u64,
        categories: u64,
    }

    /// `struct pm_scan_arg` of `<linux/fs.h>`.
    #[repr(C)]
    #[derive(Default)]
    struct PmScanArg {
        size: u64,
        flags: u64,
        start: u64,
        end: u64,
        walk_end: u64,
        vec: u64,
        vec_len: u64,
        max_pages: u64,
        category_inverted: u64,
        category_mask: u64,
        category_anyof_mask: u64,
        return_mask: u64,
    }

    /// `_IOWR('f', 16, struct pm_scan_arg)`.
    const PAGEMAP_SCAN: libc::c_ulong =
        (3 << 30) | ((std::mem::size_of::<PmScanArg>() as libc::c_ulong) << 16) | (0x66 << 8) | 16;

    /// The kernel does not have the ioctl (or not this way): fall back to reading entries.
    pub fn unsupported(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOTTY) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
        )
    }

    /// Regions of `start..end` whose categories, after flipping `inverted`, include all of
    /// `mask`; each as (start, end, categories & `ret`).
    pub fn regions(
        file: &File,
        start: u64,
        end: u64,
        mask: u64,
        inverted: u64,
        ret: u64,
    ) -> io::Result<Vec<(u64, u64, u64)>> {
        let mut out: Vec<(u64, u64, u64)> = Vec::new();
        let mut vec = vec![PageRegion::default(); 1024];
        let mut at = start;
        while at < end {
            let mut arg = PmScanArg {
                size: std::mem::size_of::<PmScanArg>() as u64,
                start: at,
                end,
                vec: vec.as_mut_ptr() as u64,
                vec_len: vec.len() as u64,
                category_inverted: inverted,
                category_mask: mask,
                return_mask: ret | (mask & !inverted),
                ..PmScanArg::default()
            };
            // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most vec_len regions into `vec`,
            // which lives until after the call; both are plain repr(C) data.
            let n = unsafe { libc::ioctl(file.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            for r in &vec[..n as usize] {
                let cat = r.categories & ret;
                match out.last_mut() {
                    Some(last) if last.1 == r.start && last.2 == cat => last.1 = r.end,
                    _ => out.push((r.start, r.end, cat)),
                }
            }
            if arg.walk_end <= at {
                break; // no progress: never loop forever on a kernel quirk
            }
            at = arg.walk_end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarsen_keeps_any_touched_large_page() {
        let r = PageRanges::from_runs([(0, 1), (512, 512), (1500, 2)]);
        assert_eq!(r.coarsen(512).runs(), &[(0, 3)]);
        let r = PageRanges::from_runs([(1024, 1)]);
        assert_eq!(r.coarsen(512).runs(), &[(2, 1)]);
        assert_eq!(r.coarsen(1), r);
    }

    const P: u64 = PM_PRESENT | PM_FILE;

    #[test]
    fn decodes_present_shared_pages_into_runs() {
        // present shared, present shared, absent, anonymous COW copy, present shared, swapped
        let e = [P | 7, P | 8, 0, PM_PRESENT | 9, P | 10, PM_SWAP];
        let mut r = PageRanges::new();
        decode_present(&e, 100, &mut r);
        assert_eq!(r.runs(), &[(100, 2), (104, 1)]);
        assert_eq!(r.pages(), 3);
        // A second mapping further on merges with an adjacent run.
        decode_present(&[P, P], 105, &mut r);
        assert_eq!(r.runs(), &[(100, 2), (104, 3)]);
    }

    #[test]
    fn decodes_pfns_by_kind() {
        let mut p = PhysPages::default();
        decode_pfns(
            &[PM_PRESENT | 5, P | 6, 0, PM_SWAP | 9, PM_PRESENT | 5],
            &mut p,
        );
        let p = p.finish();
        assert_eq!(p.anon, vec![5]);
        assert_eq!(p.file, vec![6]);
    }

    #[test]
    fn range_algebra() {
        let a = PageRanges::from_runs([(0, 10), (20, 5)]);
        let b = PageRanges::from_runs([(5, 20)]);
        assert_eq!(a.subtract(&b).runs(), &[(0, 5)]);
        assert_eq!(b.subtract(&a).runs(), &[(10, 10)]);
        assert_eq!(a.intersect(&b).runs(), &[(5, 5), (20, 5)]);
        assert_eq!(a.union(&b).runs(), &[(0, 25)]);
        assert_eq!(a.clip(8, 22).runs(), &[(8, 2), (20, 2)]);
        // Overlapping and unsorted input.
        let c = PageRanges::from_runs([(10, 5), (0, 3), (2, 4), (15, 1)]);
        assert_eq!(c.runs(), &[(0, 6), (10, 6)]);
        assert!(PageRanges::new().subtract(&a).is_empty());
        assert_eq!(a.subtract(&PageRanges::new()), a);
        // Interleaved pages.
        let odd = PageRanges::from_runs((0..8).map(|i| (2 * i + 1, 1)));
        let all = PageRanges::from_runs([(0, 16)]);
        assert_eq!(all.subtract(&odd).pages(), 8);
        assert_eq!(all.subtract(&odd).runs()[..2], [(0, 1), (2, 1)]);
    }

    #[test]
    fn serialises_as_pairs() {
        let a = PageRanges::from_runs([(0, 16384), (20000, 1)]);
        assert_eq!(serde_json::to_string(&a).unwrap(), "[[0,16384],[20000,1]]");
    }

    #[test]
    fn reads_own_pagemap() {
        // A fresh private anonymous region of ours with 2 of 4 pages touched: not an object, so
        // no page is "mapped" for show, but both are physical pages of the process.
        let page = rustix::param::page_size();
        // SAFETY: a fresh private anonymous mapping, written through raw pointers only inside
        // it, and unmapped at the end.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                4 * page,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
            .unwrap()
        };
        // SAFETY: both writes are inside the mapping made above.
        unsafe {
            base.cast::<u8>().write_volatile(1);
            base.cast::<u8>().add(2 * page).write_volatile(1);
        }
        let (start, end) = (base as u64, base as u64 + 4 * page as u64);
        let mut pm = Pagemap::open(Path::new("/proc"), std::process::id() as Pid, page as u64)
            .expect("own pagemap");
        let r = pm.mapped_ranges(start, end, 0, false).unwrap();
        assert!(r.is_empty(), "anonymous pages are not an object's: {r:?}");
        let mut p = PhysPages::default();
        pm.phys_pages(start, end, &mut p).unwrap();
        assert_eq!((p.anon.len(), p.file.len()), (2, 0));
        // The same through plain pread of the entries.
        pm.scan_works = Some(false);
        let mut q = PhysPages::default();
        pm.phys_pages(start, end, &mut q).unwrap();
        assert_eq!(q, p);
        // SAFETY: unmapping the mapping made above; nothing refers to it.
        unsafe { rustix::mm::munmap(base, 4 * page).unwrap() };
    }
}
