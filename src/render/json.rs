//! JSON output, schema 1 (docs/json.md). Always bytes. Field names are a contract: add, never
//! rename.

use super::{object_id, proc_rows, select_objects, ObjectFilter, ProcFilter, ProcRow};
use crate::account::Accounted;
use crate::model::{EstimateReason, Object, ObjectDetail, ObjectKind, Pid, SysvKey, Via};
use serde::Serialize;

pub const SCHEMA: u32 = 1;

#[derive(Serialize)]
struct ObjectsDoc<'a> {
    schema: u32,
    exact: bool,
    meminfo_shmem_bytes: u64,
    explained_bytes: u64,
    unexplained_bytes: i64,
    objects_resident_bytes: u64,
    unheld_bytes: u64,
    mounts: Vec<MountDoc>,
    notes: NotesDoc,
    objects: Vec<ObjectDoc<'a>>,
}

#[derive(Serialize)]
struct MountDoc {
    mount_point: String,
    used_bytes: Option<u64>,
    listed_bytes: u64,
    unheld_files_bytes: Option<u64>,
}

#[derive(Serialize)]
struct NotesDoc {
    vanished_processes: u32,
    unreadable_processes: u32,
    foreign_ipc_ns_unreadable: u32,
    hidepid: bool,
    /// Processes hidden from the caller of a restricted install (README): counted, not listed.
    #[serde(skip_serializing_if = "is_zero")]
    hidden_processes: u32,
    /// A restricted install prints no mapping addresses.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    addresses_hidden: bool,
    /// Processes with a counter beyond memory plus swap, capped there.
    #[serde(skip_serializing_if = "is_zero")]
    absurd_processes: u32,
    estimates: Vec<EstimateDoc>,
}

#[derive(Serialize)]
struct EstimateDoc {
    reason: EstimateReason,
    objects: u32,
    explanation: &'static str,
}

#[derive(Serialize)]
pub(crate) struct ObjectDoc<'a> {
    kind: ObjectKind,
    id: String,
    inode: u64,
    dev: Option<String>,
    size_bytes: u64,
    resident_bytes: u64,
    swap_bytes: u64,
    exact: bool,
    estimate_reason: Option<EstimateReason>,
    /// A SHM_HUGETLB segment (hugetlb pool memory, outside Shmem).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    hugetlb: bool,
    holders: Vec<HolderDoc<'a>>,
    owner: Option<PidComm<'a>>,
    charges: Vec<ChargeDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shmid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<SysvKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nattch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_point: Option<String>,
    /// IPC (SysV) or mount namespace inode, when not shmwho's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<u64>,
}

#[derive(Serialize)]
struct PidComm<'a> {
    pid: Pid,
    comm: &'a str,
}

#[derive(Serialize)]
struct ChargeDoc {
    pid: Pid,
    bytes: u64,
}

#[derive(Serialize)]
struct HolderDoc<'a> {
    pid: Pid,
    comm: &'a str,
    via: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_bytes: Option<u64>,
}

pub(crate) fn object_doc<'a>(acc: &'a Accounted, i: usize) -> ObjectDoc<'a> {
    let snap = acc.snapshot;
    let o: &'a Object = &snap.objects[i];
    let comm = |pid: Pid| snap.process(pid).map_or("", |p| p.comm.as_str());
    let holders = o
        .holders
        .iter()
        .map(|h| {
            let mut d = HolderDoc {
                pid: h.pid,
                comm: comm(h.pid),
                via: h.via.as_str(),
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
                        d.start = Some(format!("{start:x}"));
                        d.end = Some(format!("{end:x}"));
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
        dev: o
            .dev
            .map(|d| format!("{}:{}", rustix::fs::major(d), rustix::fs::minor(d))),
        size_bytes: o.size_bytes,
        resident_bytes: o.resident_bytes,
        swap_bytes: o.swap_bytes,
        exact: o.is_exact(),
        estimate_reason: o.accuracy.estimate(),
        hugetlb: o.hugetlb(),
        holders,
        owner: acc.owners[i].map(|pid| PidComm {
            pid,
            comm: comm(pid),
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
            ObjectDetail::Memfd { name } => Some(name.as_str()),
            ObjectDetail::AnonShared
            | ObjectDetail::Sysv { .. }
            | ObjectDetail::PosixShm(_)
            | ObjectDetail::Tmpfs(_) => None,
        },
        path: file.map(|f| f.path.to_string_lossy().into_owned()),
        deleted: file.map(|f| f.deleted),
        mount_point: file
            .and_then(|f| f.mount_point.as_ref())
            .map(|p| p.to_string_lossy().into_owned()),
        namespace: o.foreign_ns,
    }
}

pub fn objects(acc: &Accounted, f: &ObjectFilter) -> String {
    let snap = acc.snapshot;
    let r = &acc.reconciliation;
    let doc = ObjectsDoc {
        schema: SCHEMA,
        exact: snap.exact(),
        meminfo_shmem_bytes: r.shmem_bytes,
        explained_bytes: r.explained_bytes,
        unexplained_bytes: r.unexplained_bytes,
        objects_resident_bytes: r.objects_bytes,
        unheld_bytes: acc.unheld_bytes,
        mounts: r
            .mounts
            .iter()
            .map(|m| MountDoc {
                mount_point: m.mount_point.to_string_lossy().into_owned(),
                used_bytes: m.used_bytes,
                listed_bytes: m.listed_bytes,
                unheld_files_bytes: m.unheld_files_bytes,
            })
            .collect(),
        notes: NotesDoc {
            vanished_processes: snap.notes.vanished,
            unreadable_processes: snap.notes.unreadable,
            foreign_ipc_ns_unreadable: snap.notes.foreign_ipc_ns,
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
                    explanation: reason.explain(),
                })
                .collect(),
        },
        objects: select_objects(acc, f)
            .into_iter()
            .map(|i| object_doc(acc, i))
            .collect(),
    };
    to_string(&doc)
}

#[derive(Serialize)]
struct ProcsDoc {
    schema: u32,
    charge: &'static str,
    pss: bool,
    processes: Vec<ProcDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<ProcDoc>>,
    /// Resident bytes of objects no process holds.
    unheld_bytes: u64,
    /// Sum of all charges: with unheld_bytes, equals objects_resident_bytes.
    charged_bytes: u64,
    objects_resident_bytes: u64,
    vanished_processes: u32,
    /// Processes hidden from the caller of a restricted install (README): counted, not listed.
    #[serde(skip_serializing_if = "is_zero")]
    hidden_processes: u32,
    /// With `--by cgroup`: each cgroup's charges against the kernel's memory.stat shmem.
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroups: Option<Vec<super::cgroups::CgroupDoc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroups_note: Option<&'static str>,
}

#[derive(Serialize)]
struct ProcDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<Pid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ppid: Option<Pid>,
    comm: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    processes: Option<u32>,
    rss_bytes: u64,
    rss_anon_bytes: u64,
    rss_file_bytes: u64,
    rss_shmem_bytes: u64,
    swap_bytes: u64,
    shared_charged_bytes: u64,
    total_bytes: u64,
    owned_objects: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uss_bytes: Option<u64>,
    /// Memory cgroup (of the process, or of the group with `--by cgroup`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<String>,
    /// With `--exact`: distinct physical pages mapped plus shared memory charged.
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_bytes: Option<u64>,
    /// With `--exact`: pages and objects no process outside the row holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    freed_if_gone_bytes: Option<u64>,
}

fn proc_doc(r: &ProcRow, group: bool) -> ProcDoc {
    ProcDoc {
        // A tree group is named by its root's pid.
        pid: (!group || r.pid != 0).then_some(r.pid),
        ppid: (!group).then_some(r.ppid),
        comm: r.comm.clone(),
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
        unique_bytes: r.unique,
        freed_if_gone_bytes: r.freed_if_gone,
    }
}

pub fn procs(acc: &Accounted, f: &ProcFilter) -> String {
    let ungrouped = ProcFilter {
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
    let by_cgroup = f.by == Some(crate::cli::GroupBy::Cgroup);
    let cgroups = group_rows
        .as_deref()
        .filter(|_| by_cgroup)
        .map(|rows| super::cgroups::json_docs(acc, rows));
    let doc = ProcsDoc {
        schema: SCHEMA,
        charge: acc.policy.as_str(),
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
        cgroups_note: cgroups.is_some().then_some(crate::account::cgroup::NOTE),
        cgroups,
    };
    to_string(&doc)
}

fn to_string<T: Serialize>(doc: &T) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("JSON of plain data cannot fail");
    s.push('\n');
    s
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
