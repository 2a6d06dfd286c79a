//! Turns per-process mappings and fds into objects, adds the objects nobody holds (SysV
//! segments, `/dev/shm` files), and measures each one once.

use super::measure::{self, InodeStat};
use super::{maps, Context, RawProcess};
use crate::model::{
    Accuracy, EstimateReason, FileDetail, Holder, Meminfo, Object, ObjectDetail, ObjectId, Process,
    ScanNotes, SysvKey, SysvSegment, TmpfsMount, Via,
};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

pub(crate) struct Built {
    pub objects: Vec<Object>,
    pub mounts: Vec<TmpfsMount>,
}

/// A way to reach an object's inode.
#[derive(Clone, Debug)]
enum Handle {
    /// `/proc/PID/fd/N`: works for the owner without capabilities (FACTS #7).
    Fd(PathBuf),
    /// A path in shmwho's own mount namespace.
    Path(PathBuf),
    /// `/proc/PID/map_files/START-END`: needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN.
    MapFiles(PathBuf),
}

impl Handle {
    fn path(&self) -> &Path {
        match self {
            Handle::Fd(p) | Handle::Path(p) | Handle::MapFiles(p) => p,
        }
    }
    fn rank(&self) -> u8 {
        match self {
            Handle::Fd(_) => 0,
            Handle::Path(_) => 1,
            Handle::MapFiles(_) => 2,
        }
    }
}

struct Draft {
    obj: Object,
    handles: Vec<Handle>,
    /// Pages of this object a holder may have in its page tables, at most (mapped length).
    mapped_len: HashMap<usize, u64>,
    /// Largest smaps `Rss` of one of its mappings: a lower bound of its resident size.
    max_mapping_rss: u64,
    /// Size as far as mappings show it (end of the furthest mapping), when unmeasured.
    mapped_extent: u64,
    /// Mapped by a process read through a thread (leader exited), which has no map_files.
    leader_exited: bool,
}

pub(crate) fn build(
    ctx: &Context,
    meminfo: &Meminfo,
    processes: &[Process],
    raws: &[RawProcess],
    segments: Vec<(u64, SysvSegment)>,
    notes: &mut ScanNotes,
) -> Built {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut index: HashMap<ObjectId, usize> = HashMap::new();

    for (pi, (p, raw)) in processes.iter().zip(raws).enumerate() {
        for e in &raw.maps {
            let (id, mut obj) = describe(ctx, p, e.dev(), e.inode, &e.path);
            let i = *index.entry(id).or_insert_with(|| {
                obj.id = id;
                drafts.push(Draft::new(obj.clone()));
                drafts.len() - 1
            });
            let d = &mut drafts[i];
            let smaps = raw.smaps_by_start.get(&e.start).copied();
            d.obj.holders.push(Holder {
                pid: p.pid,
                via: Via::Map {
                    start: e.start,
                    end: e.end,
                    offset: e.offset,
                    shared: e.shared,
                    pss_bytes: smaps.map(|s| s.0),
                    rss_bytes: smaps.map(|s| s.1),
                },
            });
            let len = e.end - e.start;
            *d.mapped_len.entry(pi).or_default() += len;
            d.max_mapping_rss = d.max_mapping_rss.max(smaps.map_or(0, |s| s.1));
            d.mapped_extent = d.mapped_extent.max(e.offset + len);
            // A process whose leader exited lists no map_files, and task directories have none.
            if raw.task.is_some() {
                d.leader_exited = true;
            } else {
                d.handles.push(Handle::MapFiles(
                    ctx.paths
                        .pid_file(p.pid, &format!("map_files/{:x}-{:x}", e.start, e.end)),
                ));
            }
            // A file still linked in our own mount namespace can be stat'ed by path, which
            // needs no privilege; measure() checks it is still the same inode.
            if let (Some(f), None) = (d.obj.file(), d.obj.foreign_ns) {
                if !f.deleted && !d.handles.iter().any(|h| matches!(h, Handle::Path(_))) {
                    d.handles.push(Handle::Path(ctx.paths.reach(&f.path)));
                }
            }
        }
        for (fd, target, st) in &raw.fds {
            let (id, mut obj) = describe(ctx, p, st.dev, st.ino, target);
            let i = *index.entry(id).or_insert_with(|| {
                obj.id = id;
                drafts.push(Draft::new(obj.clone()));
                drafts.len() - 1
            });
            let d = &mut drafts[i];
            d.obj.holders.push(Holder {
                pid: p.pid,
                via: Via::Fd { fd: *fd },
            });
            d.handles.push(Handle::Fd(ctx.task_path(
                p.pid,
                raw.task,
                &format!("fd/{fd}"),
            )));
        }
    }

    // SysV segments, attached or not: the table is exact for anyone.
    let own_ipc = ctx.own_ipc_ns.unwrap_or(0);
    for (ipc_ns, seg) in segments {
        let id = ObjectId::Sysv {
            ipc_ns,
            shmid: seg.shmid,
        };
        let i = *index.entry(id).or_insert_with(|| {
            drafts.push(Draft::new(Object {
                dev: Some(ctx.shmem_dev),
                inode: seg.shmid as u64,
                foreign_ns: (ipc_ns != own_ipc).then_some(ipc_ns),
                ..blank(id, sysv_detail(None))
            }));
            drafts.len() - 1
        });
        if let ObjectDetail::Sysv { key, segment, .. } = &mut drafts[i].obj.detail {
            *key = Some(seg.key);
            *segment = Some(seg);
        }
    }

    // POSIX shared memory: every file under /dev/shm, held or not.
    for (path, st) in walk_dev_shm(ctx) {
        let id = ObjectId::Inode {
            dev: st.dev,
            ino: st.ino,
        };
        match index.get(&id) {
            Some(&i) => {
                let d = &mut drafts[i];
                if let Some(f) = d.obj.file_mut() {
                    f.path = path.clone();
                    f.deleted = false;
                }
                d.obj.foreign_ns = None;
                d.handles.push(Handle::Path(ctx.paths.reach(&path)));
            }
            None => {
                let mut d = Draft::new(Object {
                    dev: Some(st.dev),
                    inode: st.ino,
                    ..blank(
                        id,
                        ObjectDetail::PosixShm(FileDetail {
                            path: path.clone(),
                            deleted: false,
                            mount_point: Some(ctx.paths.dev_shm.clone()),
                        }),
                    )
                });
                d.handles.push(Handle::Path(ctx.paths.reach(&path)));
                index.insert(id, drafts.len());
                drafts.push(d);
            }
        }
    }

    let swap_in_use = meminfo.swap_used_bytes() > 0;
    let mut unmeasured = Vec::new();
    let mut vanished = Vec::new();
    for (i, d) in drafts.iter_mut().enumerate() {
        if let ObjectDetail::Sysv {
            segment: Some(seg),
            hugetlb,
            ..
        } = &mut d.obj.detail
        {
            if let (Some(rss), Some(swap)) = (seg.rss_bytes, seg.swap_bytes) {
                let (huge_rss, huge) = hugetlb_rss(seg, rss + swap, meminfo, ctx.page_size);
                *hugetlb = huge;
                d.obj.size_bytes = seg.size_bytes;
                // hugetlb pages never swap.
                (d.obj.resident_bytes, d.obj.swap_bytes) =
                    if huge { (huge_rss, 0) } else { (rss, swap) };
                d.obj.accuracy = Accuracy::Exact;
                continue;
            }
        }
        match d.measure(ctx, swap_in_use) {
            Ok(()) => {}
            Err(Unmeasured::Denied) => unmeasured.push(i),
            Err(Unmeasured::Vanished) if d.leader_exited => {
                d.obj.accuracy = Accuracy::Estimate(EstimateReason::LeaderExited);
                unmeasured.push(i);
            }
            Err(Unmeasured::Vanished) => vanished.push(i),
        }
    }

    // Lower bounds for what could not be stat'ed, from the holders' RssShmem (FACTS #9):
    // RssShmem(p) counts every shmem page p maps, so the pages of A that p maps are at least
    // RssShmem(p) minus what p can map of everything else. Never above the truth.
    let upper: Vec<Option<u64>> = drafts
        .iter()
        .map(|d| d.obj.is_exact().then_some(d.obj.resident_bytes))
        .collect();
    // What each process can map of each object, summed per process once: summing it over
    // every other object for each unmeasured one was quadratic (100,000 mappings of one
    // unprivileged process: minutes; see bench/scale.sh).
    let can_map = |j: usize, len: u64| upper[j].map_or(len, |u| u.min(len));
    let mut can_map_all = vec![0u64; processes.len()];
    for (j, d) in drafts.iter().enumerate() {
        for (&pi, &len) in &d.mapped_len {
            can_map_all[pi] = can_map_all[pi].saturating_add(can_map(j, len));
        }
    }
    for &a in &unmeasured {
        let mut lb = drafts[a].max_mapping_rss;
        for (&pi, &len_a) in &drafts[a].mapped_len {
            let others = can_map_all[pi].saturating_sub(can_map(a, len_a));
            let p_bound = processes[pi]
                .rss_shmem_bytes
                .saturating_sub(others)
                .saturating_sub(raws[pi].other_anon_dev_mapped)
                .min(len_a);
            lb = lb.max(p_bound);
        }
        let d = &mut drafts[a];
        d.obj.size_bytes = d.obj.size_bytes.max(d.mapped_extent);
        d.obj.resident_bytes = lb;
        d.obj.swap_bytes = 0;
        if d.obj.accuracy != Accuracy::Estimate(EstimateReason::LeaderExited) {
            d.obj.accuracy = Accuracy::Estimate(EstimateReason::MapFilesDenied);
        }
    }
    let mut gone = vec![false; drafts.len()];
    for &i in &vanished {
        gone[i] = true;
    }
    let mut objects: Vec<Object> = drafts
        .into_iter()
        .zip(gone)
        .filter(|(_, gone)| !gone)
        .map(|(d, _)| d.obj)
        .collect();
    objects.sort_by_key(|o| o.id);

    let mut counts: HashMap<EstimateReason, u32> = HashMap::new();
    for o in &objects {
        if let Some(r) = o.accuracy.estimate() {
            *counts.entry(r).or_default() += 1;
        }
    }
    notes.estimates = counts.into_iter().collect();
    notes.estimates.sort();

    Built {
        objects,
        mounts: tmpfs_usage(ctx),
    }
}

impl Draft {
    fn new(obj: Object) -> Draft {
        Draft {
            obj,
            handles: Vec::new(),
            mapped_len: HashMap::new(),
            max_mapping_rss: 0,
            mapped_extent: 0,
            leader_exited: false,
        }
    }

    /// `stat`s the first handle that still names the object.
    fn measure(&mut self, ctx: &Context, swap_in_use: bool) -> Result<(), Unmeasured> {
        self.handles.sort_by_key(Handle::rank);
        let expect = match self.obj.id {
            ObjectId::Inode { dev, ino } => (dev, ino),
            ObjectId::Sysv { shmid, .. } => (ctx.shmem_dev, shmid as u64),
        };
        let mut denied = false;
        let handles = std::mem::take(&mut self.handles);
        for h in &handles {
            let st: InodeStat = match measure::stat(h.path()) {
                Ok(st) if (st.dev, st.ino) == expect => st,
                Ok(_) => continue, // pid or fd number reused: another file now
                Err(Errno::PERM) | Err(Errno::ACCESS) => {
                    denied = true;
                    continue;
                }
                Err(_) => continue,
            };
            self.obj.size_bytes = st.size;
            self.obj.resident_bytes = st.allocated;
            self.obj.swap_bytes = 0;
            self.obj.accuracy = Accuracy::Exact;
            if let Some(f) = self.obj.file_mut() {
                fix_deleted(f, st.nlink);
            }
            if swap_in_use {
                match super::residency::resident_bytes(h.path(), expect, ctx.page_size) {
                    Ok(resident) => {
                        self.obj.resident_bytes = resident.min(st.allocated);
                        self.obj.swap_bytes = st.allocated - self.obj.resident_bytes;
                    }
                    Err(_) => {
                        self.obj.accuracy =
                            Accuracy::Estimate(EstimateReason::SwapSplitUnavailable);
                    }
                }
            }
            return Ok(());
        }
        Err(if denied {
            Unmeasured::Denied
        } else {
            Unmeasured::Vanished
        })
    }
}

/// Why no handle of an object could be `stat`ed.
enum Unmeasured {
    /// Every handle was refused (EPERM/EACCES): estimate it.
    Denied,
    /// Every holder went away: drop it.
    Vanished,
}

/// maps and fd links append ` (deleted)` to unlinked files, but a file may be *named* so;
/// `st_nlink` settles it.
fn fix_deleted(f: &mut FileDetail, nlink: u64) {
    let now_deleted = nlink == 0;
    if f.deleted && !now_deleted {
        let mut b = std::mem::take(&mut f.path)
            .into_os_string()
            .into_encoded_bytes();
        b.extend_from_slice(b" (deleted)");
        f.path = PathBuf::from(OsString::from_vec(b));
    }
    f.deleted = now_deleted;
}

/// `/proc/sysvipc/shm` overstates a SHM_HUGETLB segment's `rss` by the huge page factor
/// (6.18: 1 GiB for a 2 MiB segment with its one huge page faulted in: the page cache counts
/// 512 base pages per huge folio and the column multiplies by 512 again). A normal segment
/// never holds more than its size in pages, so more than that marks a hugetlb segment, whose
/// true size is the column divided by the factor. Returns (resident, is_hugetlb).
fn hugetlb_rss(seg: &SysvSegment, held: u64, meminfo: &Meminfo, page: u64) -> (u64, bool) {
    let hp = meminfo.hugepage_bytes;
    if hp <= page || held <= seg.size_bytes.div_ceil(page) * page {
        return (held, false);
    }
    (held / (hp / page), true)
}

/// An object not measured yet: `build` sets its figures and accuracy, or drops it.
fn blank(id: ObjectId, detail: ObjectDetail) -> Object {
    Object {
        id,
        detail,
        dev: None,
        inode: 0,
        size_bytes: 0,
        resident_bytes: 0,
        swap_bytes: 0,
        accuracy: Accuracy::Estimate(EstimateReason::MapFilesDenied),
        holders: Vec::new(),
        foreign_ns: None,
    }
}

fn sysv_detail(key: Option<SysvKey>) -> ObjectDetail {
    ObjectDetail::Sysv {
        key,
        segment: None,
        hugetlb: false,
    }
}

/// Kind, identity and names of the object behind a mapping or fd of process `p`.
fn describe(ctx: &Context, p: &Process, dev: u64, ino: u64, path: &[u8]) -> (ObjectId, Object) {
    let inode_id = ObjectId::Inode { dev, ino };
    if dev == ctx.shmem_dev {
        if let Some(rest) = path.strip_prefix(b"/SYSV") {
            let ipc_ns = p.ipc_ns.or(ctx.own_ipc_ns).unwrap_or(0);
            let id = ObjectId::Sysv {
                ipc_ns,
                shmid: ino as i32,
            };
            // Segments of other namespaces are not in our /proc/sysvipc/shm; keep the key.
            let key = rest.get(..8).and_then(SysvKey::from_map_name);
            let obj = Object {
                dev: Some(dev),
                inode: ino,
                foreign_ns: (p.ipc_ns.is_some() && p.ipc_ns != ctx.own_ipc_ns).then_some(ipc_ns),
                ..blank(id, sysv_detail(key))
            };
            return (id, obj);
        }
        if let Some(rest) = path.strip_prefix(b"/memfd:") {
            let (name, _) = maps::strip_deleted(rest);
            let obj = Object {
                dev: Some(dev),
                inode: ino,
                ..blank(
                    inode_id,
                    ObjectDetail::Memfd {
                        name: String::from_utf8_lossy(name).into_owned(),
                    },
                )
            };
            return (inode_id, obj);
        }
        let obj = Object {
            dev: Some(dev),
            inode: ino,
            ..blank(inode_id, ObjectDetail::AnonShared)
        };
        return (inode_id, obj);
    }
    let (mount_point, ns) = ctx
        .tmpfs
        .get(&dev)
        .map(|(m, ns)| (Some(m.mount_point.clone()), *ns))
        .unwrap_or((None, None));
    let posix = mount_point.as_deref() == Some(ctx.paths.dev_shm.as_path());
    let (p, deleted) = maps::strip_deleted(path);
    let file = FileDetail {
        path: PathBuf::from(OsString::from_vec(p.to_vec())),
        deleted,
        mount_point,
    };
    let obj = Object {
        dev: Some(dev),
        inode: ino,
        foreign_ns: ns,
        ..blank(
            inode_id,
            if posix {
                ObjectDetail::PosixShm(file)
            } else {
                ObjectDetail::Tmpfs(file)
            },
        )
    };
    (inode_id, obj)
}

/// Regular files under our `/dev/shm` (shm_open objects, POSIX semaphores), at most 8 levels
/// deep, named as mountinfo names them. Files on a `/dev/shm` hidden under another mount
/// cannot be reached by path.
fn walk_dev_shm(ctx: &Context) -> Vec<(PathBuf, InodeStat)> {
    let named = &ctx.paths.dev_shm;
    let reached = ctx.paths.reach(named);
    let Ok(top) = measure::stat(&reached) else {
        return Vec::new();
    };
    if !ctx.tmpfs.contains_key(&top.dev) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut stack = vec![(named.clone(), reached, 0u32)];
    while let Some((name, dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            let name = name.join(entry.file_name());
            if ft.is_dir() && depth < 8 {
                stack.push((name, path, depth + 1));
            } else if ft.is_file() {
                // lstat: no symlink following, and no open (contents untouched).
                if let Ok(st) = measure::lstat(&path) {
                    if st.dev == top.dev && st.regular {
                        out.push((name, st));
                    }
                }
            }
        }
    }
    out
}

/// What each of our own tmpfs mounts uses in all (statfs), for the reconciliation.
fn tmpfs_usage(ctx: &Context) -> Vec<TmpfsMount> {
    let mut mounts: Vec<TmpfsMount> = ctx
        .tmpfs
        .iter()
        .map(|(&dev, (m, ns))| {
            let here = ctx.paths.reach(&m.mount_point);
            let visible = ns.is_none() && measure::stat(&here).is_ok_and(|st| st.dev == dev);
            let used_bytes = if visible {
                rustix::fs::statfs(&here).ok().and_then(|sf| {
                    let blocks = sf.f_blocks;
                    (blocks > 0).then(|| (blocks - sf.f_bfree) * sf.f_bsize as u64)
                })
            } else {
                None
            };
            TmpfsMount {
                mount_point: m.mount_point.clone(),
                dev,
                foreign_ns: *ns,
                used_bytes,
            }
        })
        .collect();
    mounts.sort_by(|a, b| a.mount_point.cmp(&b.mount_point).then(a.dev.cmp(&b.dev)));
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(size: u64) -> SysvSegment {
        SysvSegment {
            key: SysvKey(0),
            shmid: 1,
            perms: 0o600,
            size_bytes: size,
            cpid: 1,
            lpid: 1,
            nattch: 0,
            uid: 0,
            cuid: 0,
            ctime: 0,
            rss_bytes: None,
            swap_bytes: None,
        }
    }

    #[test]
    fn hugetlb_rss_is_divided_back() {
        let mi = Meminfo {
            hugepage_bytes: 2 << 20,
            ..Meminfo::default()
        };
        // 6.18 reports 1 GiB for a 2 MiB hugetlb segment with one huge page.
        assert_eq!(
            hugetlb_rss(&seg(2 << 20), 1 << 30, &mi, 4096),
            (2 << 20, true)
        );
        // A normal segment, fully resident, size not a page multiple.
        assert_eq!(
            hugetlb_rss(&seg(10_000), 12_288, &mi, 4096),
            (12_288, false)
        );
        assert_eq!(hugetlb_rss(&seg(10_000), 0, &mi, 4096), (0, false));
    }
}
