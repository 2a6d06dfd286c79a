//! A process's PSS and USS counted from its pagemap and `/proc/kpagecount` instead of a walk
//! of its page tables by smaps or smaps_rollup, where most of its pages are those of shared
//! memory objects that it maps whole, as every worker of a PHP-FPM-like pool maps its 64 MiB
//! region. smaps looks at each of those pages once per process that maps them; here each
//! object's pages are looked at once per scan, and only a process's other pages once per
//! process.
//!
//! PSS is the sum, over the pages a process has in its page tables, of the page size divided
//! by the page's mapcount; a page mapped once is private. smaps sums it in 1/4096 bytes and
//! prints it truncated to kB. kpagecount gives the mapcount smaps reads (on this kernel, with
//! `CONFIG_PAGE_MAPCOUNT`, each page's own), and pagemap's bit 56 is set where it is 1: the
//! tests compare both with smaps_rollup to the kB. Pages the kernel counts no mapping of (the
//! zero page, pages of `VM_PFNMAP` mappings such as `[vvar]`), which smaps skips, have a
//! mapcount of 0 and are skipped here too.
//!
//! Which of an object's pages a process maps is known without its page tables when it maps
//! the object once, whole, and its `RssShmem` (exact: the `task` program sums it) equals the
//! allocated pages of all its objects (`st_blocks`): `RssShmem` counts the shmem pages in its
//! page tables, which lie only in its shared mappings of shmem and tmpfs files (the caller has
//! checked it has no other file mapping on a device of major 0), each page at most once per
//! mapping, so equality means it maps every page of every one. Swapped pages are allocated
//! and in no page table: an object with some never passes.

use super::measure::InodeStat;
use super::pagemap::{each_present, PM_MMAP_EXCLUSIVE, PM_PFN_MASK};
use super::parse::maps::MapsEntry;
use super::procmap;
use super::read::open_sub;
use rustc_hash::FxHashMap;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, OFlags};
use std::collections::HashMap;
use std::sync::Mutex;

/// smaps' unit of PSS: 1/4096 byte (`PSS_SHIFT` in the kernel's fs/proc/task_mmu.c).
const PSS_SHIFT: u32 = 12;

/// Mapcounts are read from kpagecount in runs that bridge gaps of up to this many page
/// frames. Each entry read costs the kernel a look at its page: on the 300-worker pool of
/// `bench/ratios.sh`, bridging gaps of 32 read 246,260 entries for 33,494 wanted and took
/// 87.5 ms of CPU for `procs --pss`; 1, 4 and 8 took 75.5-76.3 ms (8: 62,256 entries in
/// 19,996 preads).
const BRIDGE: u64 = 8;

/// Mapcounts kept for a scan, at most (~16 bytes each): beyond, a frame not kept is read again
/// for each process that maps it. The 300-worker pool keeps ~700.
const KEPT_MAPCOUNTS: usize = 1 << 20;

/// An object's pages are read from pagemap this many at a time (64 KiB of entries).
const OBJECT_CHUNK: u64 = 8192;

/// A process's figures, as smaps would sum them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Figures {
    /// PSS of all its pages, bytes.
    pub pss: u64,
    /// Bytes of its pages mapped once.
    pub private: u64,
    /// For each object mapping given (in that order): its PSS, resident and private bytes.
    pub mappings: Vec<(u64, u64, u64)>,
}

/// What one scan's processes share: kpagecount, the mapcounts read from it, and each object
/// as counted.
pub(crate) struct Counter {
    kpagecount: OwnedFd,
    mapcounts: Mutex<FxHashMap<u64, u64>>,
    objects: Mutex<HashMap<(u64, u64), Object>>,
}

#[derive(Clone, Copy, Debug)]
enum Object {
    /// Its `stat`, its pages not counted yet.
    Stat(InodeStat),
    /// Its `stat`, the PSS (in 1/4096 bytes) of all its pages for a process mapping each of
    /// them once, and how many are mapped once.
    Counted(InodeStat, u64, u64),
    /// Not a regular file, or gone.
    Unusable,
}

impl Counter {
    /// A counter for one scan, `None` where page frame numbers or kpagecount are refused to
    /// us (without CAP_SYS_ADMIN, pagemap shows every frame as 0).
    pub fn new(proc_root: &std::path::Path) -> Option<Counter> {
        if !super::pagemap::can_read_pfns() {
            return None;
        }
        let kpagecount = rustix::fs::open(
            proc_root.join("kpagecount"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()?;
        Some(Counter {
            kpagecount,
            mapcounts: Mutex::new(FxHashMap::default()),
            objects: Mutex::new(HashMap::new()),
        })
    }

    /// The figures of the process at `dir`, whose mappings of shared memory objects are
    /// `objects` (shared mappings of shmem or tmpfs files, and no other mapping on a device of
    /// major 0) and whose `RssShmem` is `rss_shmem`. `Ok(None)` where they cannot be counted
    /// this way (see the module's text), or something changed meanwhile: read smaps then.
    pub fn count(
        &self,
        dir: BorrowedFd<'_>,
        objects: &[&MapsEntry],
        rss_shmem: u64,
        page: u64,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Option<Figures>> {
        let Some(stats) = self.whole(dir, objects, rss_shmem, page) else {
            return Ok(None);
        };
        let pagemap = open_sub(dir, "pagemap", OFlags::RDONLY)?;
        let mut counted = Vec::with_capacity(objects.len());
        for (e, st) in objects.iter().zip(stats) {
            match self.object(pagemap.as_fd(), e, st, page, buf)? {
                Some(c) => counted.push(c),
                None => return Ok(None),
            }
        }
        let maps = open_sub(dir, "maps", OFlags::RDONLY)?;
        let Some(spans) = procmap::spans(maps.as_fd())? else {
            return Ok(None);
        };
        // Every object mapping still there as it was listed, and no other on a device of
        // major 0 (which could hold shmem pages too).
        let is_object = |s: &procmap::Span| {
            objects.iter().any(|e| {
                (e.start, e.end, e.dev_major, e.dev_minor, e.inode)
                    == (s.start, s.end, s.dev_major, s.dev_minor, s.inode)
            })
        };
        let found = spans.iter().filter(|s| is_object(s)).count();
        let odd = spans
            .iter()
            .any(|s| s.dev_major == 0 && (s.dev_minor, s.inode) != (0, 0) && !is_object(s));
        if found != objects.len() || odd {
            return Ok(None);
        }
        let (mut shifted, mut once) = (0u64, 0u64);
        let mut shared = Vec::new();
        let mut hidden = false;
        for (start, end) in reads(&spans, &is_object, page) {
            each_present(pagemap.as_fd(), start, end, page, buf, |v| {
                if v & PM_MMAP_EXCLUSIVE != 0 {
                    once += 1;
                } else {
                    let pfn = v & PM_PFN_MASK;
                    hidden |= pfn == 0;
                    shared.push(pfn);
                }
            })?;
        }
        if hidden {
            return Ok(None); // frame numbers hidden after all
        }
        let whole = page << PSS_SHIFT;
        shifted = shifted.saturating_add(once.saturating_mul(whole));
        let mut counts = Vec::new();
        self.mapcounts(&shared, &mut counts)?;
        for &n in &counts {
            match n {
                0 => {} // the zero page, a VM_PFNMAP page, or unmapped since
                1 => {
                    once += 1;
                    shifted = shifted.saturating_add(whole);
                }
                n => shifted = shifted.saturating_add(whole / n),
            }
        }
        let mut private = once.saturating_mul(page);
        let mut mappings = Vec::with_capacity(counted.len());
        for (st, pss, only) in counted {
            shifted = shifted.saturating_add(pss);
            let own_private = only.saturating_mul(page);
            private = private.saturating_add(own_private);
            mappings.push((pss >> PSS_SHIFT, st.allocated, own_private));
        }
        Ok(Some(Figures {
            pss: shifted >> PSS_SHIFT,
            private,
            mappings,
        }))
    }

    /// The `stat` of each of `objects` (in that order), where the process maps each once,
    /// from its start, over all its pages, and `rss_shmem` shows it maps all of them.
    fn whole(
        &self,
        dir: BorrowedFd<'_>,
        objects: &[&MapsEntry],
        rss_shmem: u64,
        page: u64,
    ) -> Option<Vec<InodeStat>> {
        if objects.is_empty() {
            return None;
        }
        let mut stats = Vec::with_capacity(objects.len());
        let mut allocated = 0u64;
        for (i, e) in objects.iter().enumerate() {
            let id = (e.dev(), e.inode);
            if e.offset != 0 || objects[..i].iter().any(|o| (o.dev(), o.inode) == id) {
                return None;
            }
            let st = self.stat(dir, e)?;
            if e.end.saturating_sub(e.start) < st.size.div_ceil(page).saturating_mul(page) {
                return None;
            }
            allocated = allocated.saturating_add(st.allocated);
            stats.push(st);
        }
        (allocated == rss_shmem).then_some(stats)
    }

    /// The `stat` of the object mapped at `e`, through the process's `map_files` link the first
    /// time, from the scan's table after.
    fn stat(&self, dir: BorrowedFd<'_>, e: &MapsEntry) -> Option<InodeStat> {
        let id = (e.dev(), e.inode);
        let known = self.objects().get(&id).copied();
        match known {
            Some(Object::Stat(st) | Object::Counted(st, ..)) => return Some(st),
            Some(Object::Unusable) => return None,
            None => {}
        }
        let link = format!("map_files/{:x}-{:x}", e.start, e.end);
        // Gone, refused, or another mapping there now: this process only says nothing.
        let st = rustix::fs::statat(dir, link.as_str(), AtFlags::empty())
            .ok()
            .map(InodeStat::from)
            .filter(|st| (st.dev, st.ino) == id)?;
        let known = if st.regular {
            Object::Stat(st)
        } else {
            Object::Unusable
        };
        self.objects().entry(id).or_insert(known);
        st.regular.then_some(st)
    }

    /// The PSS (in 1/4096 bytes) of all the pages of the object mapped at `e`, whose `stat`
    /// is `st`, and how many are mapped once: counted through this process's `pagemap` the
    /// first time (it maps every page), from the scan's table after. `None` where the pages
    /// present are not all it has (it changed since its `stat`). Read [`OBJECT_CHUNK`] pages
    /// at a time, their mapcounts not kept: an object of many GiB costs no more memory than a
    /// small one.
    fn object(
        &self,
        pagemap: BorrowedFd<'_>,
        e: &MapsEntry,
        st: InodeStat,
        page: u64,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Option<(InodeStat, u64, u64)>> {
        let id = (e.dev(), e.inode);
        if let Some(Object::Counted(st, pss, once)) = self.objects().get(&id).copied() {
            return Ok(Some((st, pss, once)));
        }
        let end = e
            .start
            .saturating_add(st.size.div_ceil(page).saturating_mul(page))
            .min(e.end);
        let whole = page << PSS_SHIFT;
        let (mut pss, mut once, mut present) = (0u64, 0u64, 0u64);
        let (mut pfns, mut entries) = (Vec::new(), Vec::new());
        let mut at = e.start;
        while at < end {
            let to = at.saturating_add(OBJECT_CHUNK * page).min(end);
            pfns.clear();
            each_present(pagemap, at, to, page, buf, |v| pfns.push(v & PM_PFN_MASK))?;
            present += pfns.len() as u64;
            pfns.sort_unstable();
            if pfns.first() == Some(&0) {
                return Ok(None); // frame numbers hidden after all
            }
            let mut unmapped = false;
            self.read_counts(&pfns, &mut entries, |_, n| match n {
                0 => unmapped = true, // unmapped since: this process no longer maps it
                1 => {
                    once += 1;
                    pss = pss.saturating_add(whole);
                }
                n => pss = pss.saturating_add(whole / n),
            })?;
            if unmapped {
                return Ok(None);
            }
            at = to;
        }
        if present.saturating_mul(page) != st.allocated {
            return Ok(None);
        }
        self.objects().insert(id, Object::Counted(st, pss, once));
        Ok(Some((st, pss, once)))
    }

    /// The mapcount of each of `pfns`, in that order, into `out`: from the scan's table, and
    /// those not in it yet read from kpagecount and kept there.
    fn mapcounts(&self, pfns: &[u64], out: &mut Vec<u64>) -> std::io::Result<()> {
        let mut counts = self.mapcounts.lock().unwrap_or_else(|e| e.into_inner());
        out.clear();
        let mut missing = Vec::new();
        for (i, pfn) in pfns.iter().enumerate() {
            match counts.get(pfn) {
                Some(&n) => out.push(n),
                None => {
                    out.push(0);
                    missing.push((*pfn, i));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        let sorted: Vec<u64> = missing.iter().map(|m| m.0).collect();
        self.read_counts(&sorted, &mut Vec::new(), |k, n| {
            let (pfn, at) = missing[k];
            if counts.len() < KEPT_MAPCOUNTS {
                counts.insert(pfn, n);
            }
            out[at] = n;
        })
    }

    /// Reads the mapcount of each of `sorted` (page frame numbers, ascending) from kpagecount,
    /// in runs of nearby frames read into `entries`, calling `f` with its index and count.
    fn read_counts(
        &self,
        sorted: &[u64],
        entries: &mut Vec<u8>,
        mut f: impl FnMut(usize, u64),
    ) -> std::io::Result<()> {
        let mut i = 0;
        while i < sorted.len() {
            let first = sorted[i];
            let mut j = i + 1;
            while j < sorted.len() && sorted[j] - sorted[j - 1] <= BRIDGE {
                j += 1;
            }
            let n = usize::try_from(sorted[j - 1] - first + 1).unwrap_or(usize::MAX);
            entries.clear();
            entries.resize(n * 8, 0u8);
            let got = rustix::io::pread(&self.kpagecount, &mut entries[..], first * 8)?;
            for (k, &pfn) in sorted.iter().enumerate().take(j).skip(i) {
                let e = usize::try_from(pfn - first).unwrap_or(usize::MAX) * 8;
                // Beyond what was read (past the last frame): not RAM, mapped by no one.
                let count = entries
                    .get(e..e + 8)
                    .filter(|_| e + 8 <= got)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                f(k, count);
            }
            i = j;
        }
        Ok(())
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), Object>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The address ranges of `spans` other than the object mappings, as pagemap reads them:
/// mappings less than 16 pages apart with no object between read as one (the gap's entries
/// read as absent: cheaper than a second pread).
fn reads(
    spans: &[procmap::Span],
    is_object: &impl Fn(&procmap::Span) -> bool,
    page: u64,
) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut joinable = false;
    for s in spans {
        if is_object(s) {
            joinable = false;
            continue;
        }
        match out.last_mut() {
            Some(last) if joinable && s.start >= last.1 && s.start - last.1 < 16 * page => {
                last.1 = s.end
            }
            _ => out.push((s.start, s.end)),
        }
        joinable = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, end: u64, inode: u64) -> procmap::Span {
        procmap::Span {
            start,
            end,
            dev_major: 0,
            dev_minor: u32::from(inode != 0),
            inode,
        }
    }

    /// A forked child maps all 48 allocated pages of a 64-page shared region (we map them
    /// too), 16 pages of private memory it shares copy-on-write with us, 8 of which it has
    /// written since, and 5 pages of its own: its figures are those smaps_rollup gives, to
    /// the kB.
    #[test]
    fn counted_figures_are_smaps_rollups() {
        let _mappings = super::super::guards::hold_mappings();
        use super::super::guards::{fork_paused, Region};
        if Counter::new(std::path::Path::new("/proc")).is_none() {
            eprintln!("skipped: page frame numbers and kpagecount need CAP_SYS_ADMIN (root)");
            return;
        }
        let pg = rustix::param::page_size();
        let map = |pages: usize, flags: libc::c_int| {
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            // SAFETY: a new mapping, unmapped by `Region`.
            let addr = unsafe { libc::mmap(std::ptr::null_mut(), pages * pg, prot, flags, -1, 0) };
            assert_ne!(addr, libc::MAP_FAILED);
            Region(addr as usize, pages * pg)
        };
        let write = |r: &Region, range: std::ops::Range<usize>| {
            for i in range {
                assert!(i * pg < r.1);
                // SAFETY: a page of the mapping `r`, checked above.
                unsafe { std::ptr::write_volatile((r.0 + i * pg) as *mut u8, 1) };
            }
        };
        let shared = map(64, libc::MAP_SHARED | libc::MAP_ANONYMOUS);
        let cow = map(16, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
        let own = map(5, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
        write(&shared, 0..48);
        write(&cow, 0..16);
        let child = fork_paused(|| {
            write(&shared, 0..48);
            write(&cow, 0..8);
            write(&own, 0..5);
        });
        let pid = child.0;
        let proc_dir = format!("/proc/{pid}");
        let dir = super::super::read::open_dir(std::path::Path::new(&proc_dir)).unwrap();
        let maps = std::fs::read(format!("{proc_dir}/maps")).unwrap();
        let entry = super::super::parse::maps::parse(&maps)
            .find(|e| e.start == shared.0 as u64)
            .unwrap();
        let status = std::fs::read(format!("{proc_dir}/status")).unwrap();
        let rss_shmem = super::super::parse::status::parse(&status)
            .unwrap()
            .rss_shmem;
        let pg = pg as u64;
        assert_eq!(rss_shmem, 48 * pg);
        let mut buf = Vec::new();
        let kb = |text: &[u8], key: &str| -> u64 {
            let text = std::str::from_utf8(text).unwrap();
            text.lines()
                .filter(|l| l.split(':').next() == Some(key))
                .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
                .sum()
        };
        let rollup = || {
            let text = std::fs::read(format!("{proc_dir}/smaps_rollup")).unwrap();
            let private = kb(&text, "Private_Clean") + kb(&text, "Private_Dirty");
            (kb(&text, "Pss"), private * 1024)
        };
        // Other tests' threads in this process write to memory the child shares copy-on-write
        // with us, each first write making a page the child's alone: count again until the
        // rollup is the same before and after.
        let mut tries = 0;
        let got = loop {
            let before = rollup();
            let counter = Counter::new(std::path::Path::new("/proc")).unwrap();
            let got = counter
                .count(dir.as_fd(), &[&entry], rss_shmem, pg, &mut buf)
                .unwrap()
                .expect("counted");
            let after = rollup();
            tries += 1;
            if before == after || tries == 20 {
                assert_eq!((got.pss / 1024, got.private), after, "{got:?}");
                break got;
            }
        };
        // The region: each of its 48 pages mapped by us and the child.
        assert_eq!(got.mappings, vec![(24 * pg, 48 * pg, 0)]);
        let smaps = std::fs::read(format!("{proc_dir}/smaps")).unwrap();
        let vma = super::super::parse::smaps::parse(&smaps)
            .into_iter()
            .find(|v| v.entry.start == shared.0 as u64)
            .unwrap();
        assert_eq!((vma.pss, vma.rss, vma.private), got.mappings[0]);
        // At least the child's 13 pages of its own, and half of the 8 it shares with us.
        assert!(
            got.private >= 13 * pg && got.pss >= 24 * pg + 13 * pg + 4 * pg,
            "{got:?}"
        );
        // Where RssShmem shows a page of the region is not in its page tables: not counted.
        let fresh = Counter::new(std::path::Path::new("/proc")).unwrap();
        let less = fresh.count(dir.as_fd(), &[&entry], rss_shmem - pg, pg, &mut buf);
        assert_eq!(less.unwrap(), None);
        drop((shared, cow, own));
    }

    #[test]
    fn reads_join_near_mappings_and_leave_out_objects() {
        let pg = 4096;
        let spans = [
            span(0x1000, 0x3000, 0),
            span(0x4000, 0x5000, 0),     // 1 page after: joined
            span(0x6000, 0x7000, 7),     // an object
            span(0x8000, 0x9000, 0),     // 1 page after the object: not joined across it
            span(0x300000, 0x301000, 0), // far: apart
        ];
        let is_object = |s: &procmap::Span| s.inode == 7;
        assert_eq!(
            reads(&spans, &is_object, pg),
            vec![(0x1000, 0x5000), (0x8000, 0x9000), (0x300000, 0x301000)]
        );
    }
}
