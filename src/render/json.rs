//! JSON output, schema 1 (docs/json.md). Always bytes. Field names are a contract: add, never
//! rename.

use crate::account::Accounted;
use crate::model::{Object, ObjectDetail, Pid, Via};
use crate::report::{
    address_text, dev_text, object_id, proc_rows, select_objects, ObjectQuery, ProcQuery, ProcRow,
};
use crate::schema::{
    CausesDoc, ChargeDoc, EstimateDoc, HolderDoc, HugetlbDoc, MountDoc, NotesDoc, ObjectDoc,
    ObjectsDoc, PidComm, ProcDoc, ProcsDoc, UnreadableDoc,
};
use serde::Serialize;

pub use crate::schema::SCHEMA;

pub(crate) fn object_doc(acc: &Accounted, i: usize) -> ObjectDoc {
    let snap = acc.snapshot;
    let o: &Object = &snap.objects[i];
    let comm = |pid: Pid| {
        snap.process(pid)
            .map_or("", |p| p.comm.as_str())
            .to_string()
    };
    let title = |pid: Pid| snap.process(pid).and_then(|p| p.title.clone());
    let holders = o
        .holders
        .iter()
        .map(|h| {
            let mut d = HolderDoc {
                pid: h.pid,
                comm: comm(h.pid),
                title: title(h.pid),
                via: h.via.as_str().to_string(),
                start: None,
                end: None,
                offset: None,
                fd: None,
                pss_bytes: None,
                rss_bytes: None,
            };
            match h.via {
                Via::Map {
                    start,
                    end,
                    offset,
                    pss_bytes,
                    rss_bytes,
                    ..
                } => {
                    if !snap.notes.addresses_hidden {
                        d.start = Some(address_text(start));
                        d.end = Some(address_text(end));
                    }
                    d.offset = Some(offset);
                    d.pss_bytes = pss_bytes;
                    d.rss_bytes = rss_bytes;
                }
                Via::Fd { fd } => d.fd = Some(fd),
            }
            d
        })
        .collect();
    let file = o.file();
    ObjectDoc {
        kind: o.kind(),
        id: object_id(o),
        inode: o.inode,
        dev: o.dev.map(dev_text),
        size_bytes: o.size_bytes,
        resident_bytes: o.resident_bytes,
        swap_bytes: o.swap_bytes,
        exact: o.is_exact(),
        estimate_reason: o.accuracy.estimate(),
        page_size_bytes: o.page_size_bytes,
        hugetlb: o.hugetlb(),
        holders,
        owner: acc.owners[i].map(|pid| PidComm {
            pid,
            comm: comm(pid),
            title: title(pid),
        }),
        charges: acc.charges[i]
            .iter()
            .map(|&(pid, bytes)| ChargeDoc { pid, bytes })
            .collect(),
        shmid: o.sysv().map(|s| s.shmid).or(match o.id {
            crate::model::ObjectId::Sysv { shmid, .. } => Some(shmid),
            crate::model::ObjectId::Inode { .. } => None,
        }),
        key: o.sysv_key(),
        nattch: o.sysv().map(|s| s.nattch),
        removed: o.sysv().map(|s| s.removed()),
        name: match &o.detail {
            ObjectDetail::Memfd { name } => Some(name.clone()),
            ObjectDetail::AnonShared
            | ObjectDetail::Sysv { .. }
            | ObjectDetail::PosixShm(_)
            | ObjectDetail::Tmpfs(_)
            | ObjectDetail::Hugetlbfs(_) => None,
        },
        path: file.map(|f| f.path.to_string_lossy().into_owned()),
        deleted: file.map(|f| f.deleted),
        mount_point: file
            .and_then(|f| f.mount_point.as_ref())
            .map(|p| p.to_string_lossy().into_owned()),
        namespace: o.foreign_ns,
        label: acc.labels[i].clone(),
    }
}

/// The objects view as a document.
pub fn objects_doc(acc: &Accounted, f: &ObjectQuery) -> ObjectsDoc {
    let snap = acc.snapshot;
    let r = &acc.reconciliation;
    ObjectsDoc {
        schema: SCHEMA,
        stuck_processes: snap.notes.stuck.iter().map(Into::into).collect(),
        exact: snap.exact(),
        meminfo_shmem_bytes: r.shmem_bytes,
        explained_bytes: r.explained_bytes,
        unexplained_bytes: r.unexplained_bytes,
        unexplained: CausesDoc {
            counter_drift_bytes: r.causes.drift_bytes,
            within_counter_drift: r.causes.within_drift(r.unexplained_bytes),
            unreadable_processes: r.causes.unreadable_processes,
            ipc_namespaces_not_entered: r.causes.ipc_namespaces_not_entered,
            mounts_not_measured: r.causes.mounts_not_measured,
        },
        objects_resident_bytes: r.objects_bytes,
        unheld_bytes: acc.unheld_bytes,
        mounts: r
            .mounts
            .iter()
            .map(|m| MountDoc {
                mount_point: m.mount_point.to_string_lossy().into_owned(),
                namespace: m.namespace,
                container: m.container.clone(),
                hidden: m.hidden,
                used_bytes: m.used_bytes,
                listed_bytes: m.listed_bytes,
                unheld_files_bytes: m.unheld_files_bytes,
            })
            .collect(),
        complete: snap.complete(),
        unreadable: snap
            .notes
            .unreadable_processes
            .iter()
            .map(|p| UnreadableDoc {
                pid: p.pid,
                comm: p.comm.clone(),
                title: None,
                user: p.user.clone(),
                rss_shmem_bytes: p.rss_shmem_bytes,
                reason: p.reason,
            })
            .collect(),
        unreadable_rss_shmem_bytes: snap.unreadable_rss_shmem_bytes(),
        hugetlb: HugetlbDoc {
            used_bytes: r.hugetlb.used_bytes,
            reserved_bytes: r.hugetlb.reserved_bytes,
            explained_bytes: r.hugetlb.explained_bytes,
            unexplained_bytes: r.hugetlb.unexplained_bytes,
        },
        notes: NotesDoc {
            vanished_processes: snap.notes.vanished,
            unreadable_processes: snap.notes.unreadable,
            foreign_ipc_ns_unreadable: snap.notes.foreign_ipc_ns,
            pinned_ipc_namespaces: snap.notes.pinned_ipc_ns,
            hidepid: snap.notes.hidepid,
            hidden_processes: snap.notes.hidden,
            addresses_hidden: snap.notes.addresses_hidden,
            absurd_processes: snap.notes.absurd_processes,
            estimates: snap
                .notes
                .estimates
                .iter()
                .map(|&(reason, objects)| EstimateDoc {
                    reason,
                    objects,
                    explanation: reason.explain().to_string(),
                })
                .collect(),
        },
        objects: select_objects(acc, f)
            .into_iter()
            .map(|i| object_doc(acc, i))
            .collect(),
    }
}

/// The objects view's JSON text.
pub fn objects(acc: &Accounted, f: &ObjectQuery) -> String {
    to_string(&objects_doc(acc, f))
}

fn proc_doc(r: &ProcRow, group: bool) -> ProcDoc {
    ProcDoc {
        // A tree group is named by its root's pid.
        pid: (!group || r.pid != 0).then_some(r.pid),
        ppid: (!group).then_some(r.ppid),
        comm: r.comm.clone(),
        title: r.title.clone(),
        user: r.user.clone(),
        processes: group.then_some(r.count),
        rss_bytes: r.rss,
        rss_anon_bytes: r.anon,
        rss_file_bytes: r.file,
        rss_shmem_bytes: r.shmem,
        swap_bytes: r.swap,
        shared_charged_bytes: r.shared,
        total_bytes: r.total(),
        owned_objects: r.owned_objects,
        pss_bytes: r.pss,
        uss_bytes: r.uss,
        cgroup: r.cgroup.clone(),
        workload: r.workload.clone(),
        unique_bytes: r.unique,
        freed_if_gone_bytes: r.freed_if_gone,
    }
}

/// The processes view as a document.
pub fn procs_doc(acc: &Accounted, f: &ProcQuery) -> ProcsDoc {
    let ungrouped = ProcQuery {
        by: None,
        top: if f.by.is_some() { None } else { f.top },
        ..f.clone()
    };
    let processes = proc_rows(acc, &ungrouped)
        .iter()
        .map(|r| proc_doc(r, false))
        .collect();
    let group_rows = f.by.map(|_| proc_rows(acc, f));
    let groups = group_rows
        .as_ref()
        .map(|rows| rows.iter().map(|r| proc_doc(r, true)).collect());
    let by_cgroup = f.by == Some(crate::report::GroupBy::Cgroup);
    let cgroups = group_rows
        .as_deref()
        .filter(|_| by_cgroup)
        .map(|rows| super::cgroups::json_docs(acc, rows));
    let pods = group_rows
        .as_deref()
        .filter(|_| f.by == Some(crate::report::GroupBy::Pod))
        .map(|rows| super::pods::json_docs(acc, rows));
    ProcsDoc {
        schema: SCHEMA,
        charge: acc.policy.as_str().to_string(),
        pss: f.pss,
        processes,
        groups,
        unheld_bytes: acc.unheld_bytes,
        charged_bytes: crate::size::sum_bytes(acc.per_process.values().copied()),
        // Every object, hugetlb included (the reconciliation's figure leaves hugetlb out, as it
        // is not Shmem), so that charged + unheld adds up to it.
        objects_resident_bytes: crate::size::sum_bytes(
            acc.snapshot.objects.iter().map(|o| o.resident_bytes),
        ),
        vanished_processes: acc.snapshot.notes.vanished,
        hidden_processes: acc.snapshot.notes.hidden,
        stuck_processes: acc.snapshot.notes.stuck.iter().map(Into::into).collect(),
        cgroups_note: cgroups
            .is_some()
            .then(|| crate::account::cgroup::NOTE.to_string()),
        cgroups,
        pods,
    }
}

/// The processes view's JSON text.
pub fn procs(acc: &Accounted, f: &ProcQuery) -> String {
    to_string(&procs_doc(acc, f))
}

fn to_string<T: Serialize>(doc: &T) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("JSON of plain data cannot fail");
    s.push('\n');
    s
}
