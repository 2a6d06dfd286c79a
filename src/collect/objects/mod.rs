//! Turns per-process mappings and fds into objects, adds the objects nobody holds (SysV
//! segments, `/dev/shm` files), and measures each one once.
//!
//! [`build`] runs the steps in order: [`gather_holders`], [`add_segments`],
//! [`add_dev_shm_files`], [`measure_all`], [`estimate_unmeasured`], [`finish`].

mod describe;
mod estimate;
mod host;
mod measure;

use super::measure::InodeStat;
use super::{Context, RawProcess};
use crate::model::{
    Accuracy, EstimateReason, FileDetail, Holder, Meminfo, Object, ObjectDetail, ObjectId, Process,
    ScanNotes, SysvSegment, TmpfsMount, Via,
};
use describe::{blank, describe, sysv_detail};
use measure::{hugetlb_rss, Draft, Handle, Unmeasured};
use std::collections::HashMap;

/// The objects and tmpfs mounts of one scan.
pub(crate) struct Built {
    pub objects: Vec<Object>,
    pub mounts: Vec<TmpfsMount>,
}

/// Objects being built, by identity.
#[derive(Default)]
struct Drafts {
    list: Vec<Draft>,
    index: HashMap<ObjectId, usize>,
}

impl Drafts {
    /// The draft of `id`, made from `make` the first time.
    fn get_or_add(&mut self, id: ObjectId, make: impl FnOnce() -> Object) -> &mut Draft {
        let list = &mut self.list;
        let i = *self.index.entry(id).or_insert_with(|| {
            let mut obj = make();
            obj.id = id;
            list.push(Draft::new(obj));
            list.len() - 1
        });
        &mut self.list[i]
    }

    /// The draft of a file a walk of its mount found, held or not, created as `kind(file)`
    /// (in mount namespace `foreign_ns`) if no holder showed it yet. A held one was named from
    /// the holder's view: the walk's path names it now.
    fn walked_file(
        &mut self,
        st: &InodeStat,
        file: FileDetail,
        kind: fn(FileDetail) -> ObjectDetail,
        foreign_ns: Option<u64>,
    ) -> &mut Draft {
        let id = ObjectId::Inode {
            dev: st.dev,
            ino: st.ino,
        };
        let path = file.path.clone();
        let d = self.get_or_add(id, || Object {
            dev: Some(st.dev),
            inode: st.ino,
            foreign_ns,
            ..blank(id, kind(file))
        });
        if let Some(f) = d.obj.file_mut() {
            f.path = path;
            f.deleted = false;
        }
        d
    }
}

/// Builds and measures every object the scan saw.
pub(crate) fn build(
    ctx: &Context,
    meminfo: &Meminfo,
    processes: &[Process],
    raws: &[RawProcess],
    segments: Vec<(u64, SysvSegment)>,
    notes: &mut ScanNotes,
) -> Built {
    let mut drafts = Drafts::default();
    gather_holders(ctx, processes, raws, &mut drafts);
    add_segments(ctx, segments, &mut drafts);
    add_dev_shm_files(ctx, &mut drafts);
    add_hugetlbfs_files(ctx, &mut drafts);
    let mut scans = super::namespaces::scan_mounts(ctx, meminfo.swap_used_bytes() > 0);
    add_mount_files(&mut scans, &mut drafts);
    notes.unmeasured_mounts = scans.iter().filter(|m| !m.reached).count() as u32;
    let mut list = drafts.list;
    for d in &mut list {
        if d.obj.page_size_bytes == 0 {
            d.obj.page_size_bytes = ctx.page_size;
        }
    }
    let (unmeasured, vanished) = measure_all(ctx, meminfo, &mut list);
    estimate_unmeasured(processes, raws, &mut list, &unmeasured);
    let objects = finish(list, &vanished, meminfo, notes);
    Built {
        objects,
        mounts: scans.into_iter().map(|m| m.mount).collect(),
    }
}

/// Every mapping and fd of every process, as holders of their objects, with the handles that
/// reach each object.
fn gather_holders(ctx: &Context, processes: &[Process], raws: &[RawProcess], drafts: &mut Drafts) {
    for (pi, (p, raw)) in processes.iter().zip(raws).enumerate() {
        for e in &raw.maps {
            let (id, obj) = describe(ctx, p, e.dev(), e.inode, &e.path);
            let d = drafts.get_or_add(id, || obj);
            let smaps = raw.smaps_by_start.get(&e.start).copied();
            d.obj.holders.push(Holder {
                pid: p.pid,
                via: Via::Map {
                    start: e.start,
                    end: e.end,
                    offset: e.offset,
                    shared: e.shared,
                    pss_bytes: smaps.and_then(|s| s.0),
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
                    p.pid,
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
            let (id, obj) = describe(ctx, p, st.dev, st.ino, target);
            let d = drafts.get_or_add(id, || obj);
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
}

/// SysV segments, attached or not: the table is exact for anyone.
fn add_segments(ctx: &Context, segments: Vec<(u64, SysvSegment)>, drafts: &mut Drafts) {
    let own_ipc = ctx.own_ipc_ns.unwrap_or(0);
    for (ipc_ns, seg) in segments {
        let id = ObjectId::Sysv {
            ipc_ns,
            shmid: seg.shmid,
        };
        let d = drafts.get_or_add(id, || Object {
            dev: Some(ctx.shmem_dev),
            inode: seg.shmid as u64,
            foreign_ns: (ipc_ns != own_ipc).then_some(ipc_ns),
            ..blank(id, sysv_detail(None))
        });
        if let ObjectDetail::Sysv { key, segment, .. } = &mut d.obj.detail {
            *key = Some(seg.key);
            *segment = Some(seg);
        }
    }
}

/// POSIX shared memory: every file under `/dev/shm`, held or not.
fn add_dev_shm_files(ctx: &Context, drafts: &mut Drafts) {
    for (path, st) in host::walk_dev_shm(ctx) {
        let file = FileDetail {
            path: path.clone(),
            deleted: false,
            mount_point: Some(ctx.paths.dev_shm.clone()),
        };
        let d = drafts.walked_file(&st, file, ObjectDetail::PosixShm, None);
        d.obj.foreign_ns = None;
        d.handles.push(Handle::Path(ctx.paths.reach(&path)));
    }
}

/// Files on our hugetlbfs mounts, held or not.
fn add_hugetlbfs_files(ctx: &Context, drafts: &mut Drafts) {
    for (path, st) in host::walk_hugetlbfs(ctx) {
        let Some((m, _, size)) = ctx.hugetlbfs.get(&st.dev) else {
            continue;
        };
        let file = FileDetail {
            path: path.clone(),
            deleted: false,
            mount_point: Some(m.mount_point.clone()),
        };
        let d = drafts.walked_file(&st, file, ObjectDetail::Hugetlbfs, None);
        d.obj.page_size_bytes = *size;
        d.obj.hugetlb = true;
        d.obj.foreign_ns = None;
        d.handles.push(Handle::Path(ctx.paths.reach(&path)));
    }
}

/// Files on the tmpfs mounts of other mount namespaces and on hidden mounts, held or not:
/// named as their namespace names them.
fn add_mount_files(scans: &mut [super::namespaces::MountScan], drafts: &mut Drafts) {
    for scan in scans {
        let m = &scan.mount;
        let kind: fn(FileDetail) -> ObjectDetail = if scan.dev_shm {
            ObjectDetail::PosixShm
        } else {
            ObjectDetail::Tmpfs
        };
        for f in std::mem::take(&mut scan.files) {
            let file = FileDetail {
                path: f.path,
                deleted: false,
                mount_point: Some(m.mount_point.clone()),
            };
            let d = drafts.walked_file(&f.stat, file, kind, m.foreign_ns);
            if let Some(reach) = f.reach {
                d.handles.push(Handle::Path(reach));
            }
            d.handles.push(Handle::Measured(f.stat, f.resident));
        }
    }
}

/// Measures every draft: SysV segments from their table row, the rest by `stat` of a handle.
/// Returns the indices of those every handle refused, and of those whose holders all vanished.
fn measure_all(
    ctx: &Context,
    meminfo: &Meminfo,
    drafts: &mut [Draft],
) -> (Vec<(usize, EstimateReason)>, Vec<usize>) {
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
                let (huge_rss, huge) =
                    hugetlb_rss(seg, rss.saturating_add(swap), meminfo, ctx.page_size);
                *hugetlb = huge;
                if huge {
                    d.obj.hugetlb = true;
                    d.obj.page_size_bytes = meminfo.hugepage_bytes;
                }
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
            Err(Unmeasured::Denied(reason)) => unmeasured.push((i, reason)),
            Err(Unmeasured::Vanished) if d.leader_exited => {
                unmeasured.push((i, EstimateReason::LeaderExited));
            }
            Err(Unmeasured::Vanished) => vanished.push(i),
        }
    }
    (unmeasured, vanished)
}

/// Lower bounds for what could not be measured (see [`estimate`]).
fn estimate_unmeasured(
    processes: &[Process],
    raws: &[RawProcess],
    drafts: &mut [Draft],
    unmeasured: &[(usize, EstimateReason)],
) {
    let (unmeasured, reasons): (Vec<usize>, Vec<EstimateReason>) =
        unmeasured.iter().copied().unzip();
    // RssShmem of the processes that map an object to estimate, read now where the scan left
    // the counters out (`process::Done`).
    let mut reader = super::Reader::new();
    let rss_shmem = |pi: usize| -> u64 {
        let (p, raw) = (&processes[pi], &raws[pi]);
        let mapper = unmeasured
            .iter()
            .any(|&a| drafts[a].mapped_len.contains_key(&pi));
        match (&raw.dir, raw.done.counters || !mapper) {
            (Some(dir), false) => match super::process::read_status(&mut reader, dir) {
                super::Read::Ok(s) => s.rss_shmem,
                _ => 0,
            },
            // Without its directory (kept only while descriptors last), 0: still a bound.
            _ => p.rss_shmem_bytes,
        }
    };
    let rss: Vec<u64> = (0..processes.len()).map(rss_shmem).collect();
    let mapped: Vec<estimate::Mapped> = drafts
        .iter()
        .map(|d| estimate::Mapped {
            measured: d.obj.is_exact().then_some(d.obj.resident_bytes),
            mapped_len: &d.mapped_len,
            max_mapping_rss: d.max_mapping_rss,
        })
        .collect();
    let mappers: Vec<estimate::Mapper> = rss
        .into_iter()
        .zip(raws)
        .map(|(rss_shmem, raw)| estimate::Mapper {
            rss_shmem,
            other_anon_dev_mapped: raw.other_anon_dev_mapped,
        })
        .collect();
    let bounds = estimate::lower_bounds(&mapped, &mappers, &unmeasured);
    for ((&a, lb), reason) in unmeasured.iter().zip(bounds).zip(reasons) {
        let d = &mut drafts[a];
        d.obj.size_bytes = d.obj.size_bytes.max(d.mapped_extent);
        d.obj.resident_bytes = lb;
        d.obj.swap_bytes = 0;
        d.obj.accuracy = Accuracy::Estimate(reason);
    }
}

/// Drops the vanished, sorts by identity, caps absurd figures, and counts the estimates for
/// the notes.
fn finish(
    drafts: Vec<Draft>,
    vanished: &[usize],
    meminfo: &Meminfo,
    notes: &mut ScanNotes,
) -> Vec<Object> {
    let mut gone = vec![false; drafts.len()];
    for &i in vanished {
        gone[i] = true;
    }
    let mut objects: Vec<Object> = drafts
        .into_iter()
        .zip(gone)
        .filter(|(_, gone)| !gone)
        .map(|(d, _)| d.obj)
        .collect();
    objects.sort_by_key(|o| o.id);

    let ceiling = super::bounds::ceiling(meminfo);
    for o in &mut objects {
        super::bounds::object(o, ceiling);
    }
    let mut counts: HashMap<EstimateReason, u32> = HashMap::new();
    for o in &objects {
        if let Some(r) = o.accuracy.estimate() {
            *counts.entry(r).or_default() += 1;
        }
    }
    notes.estimates = counts.into_iter().collect();
    notes.estimates.sort();
    objects
}
