//! Front ends: each takes an accounted snapshot and returns text. Units live only here.

pub mod cgroups;
pub mod json;
pub mod metrics;
pub mod table;
pub mod units;

use crate::account::Accounted;
use crate::cli::{GroupBy, ObjectSort, ProcSort};
use crate::model::{Object, ObjectDetail, ObjectId, ObjectKind, Pid, Process};

#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Exact byte counts instead of human units.
    pub bytes: bool,
    /// Effective uid, to word the privilege hint.
    pub euid: u32,
}

#[derive(Clone, Debug)]
pub struct ObjectFilter {
    pub kinds: Vec<ObjectKind>,
    pub pids: Vec<Pid>,
    pub sort: ObjectSort,
    pub top: Option<usize>,
}

impl Default for ObjectFilter {
    fn default() -> Self {
        ObjectFilter {
            kinds: Vec::new(),
            pids: Vec::new(),
            sort: ObjectSort::Resident,
            top: None,
        }
    }
}

/// Indices of the objects to show, sorted.
pub fn select_objects(acc: &Accounted, f: &ObjectFilter) -> Vec<usize> {
    let objs = &acc.snapshot.objects;
    let mut idx: Vec<usize> = (0..objs.len())
        .filter(|&i| f.kinds.is_empty() || f.kinds.contains(&objs[i].kind()))
        .filter(|&i| {
            f.pids.is_empty()
                || f.pids.iter().any(|p| {
                    objs[i].holders.iter().any(|h| h.pid == *p) || acc.owners[i] == Some(*p)
                })
        })
        .collect();
    let key = |o: &Object| match f.sort {
        ObjectSort::Resident => o.resident_bytes,
        ObjectSort::Size => o.size_bytes,
        ObjectSort::Swap => o.swap_bytes,
        ObjectSort::Holders => o.holder_pids().len() as u64,
    };
    idx.sort_by(|&a, &b| {
        key(&objs[b])
            .cmp(&key(&objs[a]))
            .then(objs[a].id.cmp(&objs[b].id))
    });
    if let Some(n) = f.top {
        idx.truncate(n);
    }
    idx
}

/// What `shmwho show` would accept for this object, and what the table prints as its id.
pub fn object_id(o: &Object) -> String {
    match o.id {
        ObjectId::Sysv { shmid, .. } => format!("sysv:{shmid}"),
        ObjectId::Inode { ino, .. } => ino.to_string(),
    }
}

/// A readable name: the memfd name, SysV key or path. Raw: the table escapes it.
pub fn object_name(o: &Object) -> String {
    let mut s = match &o.detail {
        ObjectDetail::AnonShared => "(anonymous)".to_string(),
        ObjectDetail::Sysv { key, segment, .. } => {
            let key = key.map(|k| format!("key {k}")).unwrap_or_default();
            if segment.as_ref().is_some_and(|s| s.removed()) {
                format!("{key} (removed)")
            } else {
                key
            }
        }
        ObjectDetail::Memfd { name } => format!("memfd:{name}"),
        ObjectDetail::PosixShm(f) | ObjectDetail::Tmpfs(f) => {
            let p = f.path.to_string_lossy().into_owned();
            if f.deleted {
                format!("{p} (deleted)")
            } else {
                p
            }
        }
    };
    if let Some(ns) = o.foreign_ns {
        let what = if o.kind() == ObjectKind::Sysv {
            "ipc"
        } else {
            "mnt"
        };
        s.push_str(&format!(" [{what} ns {ns}]"));
    }
    s
}

#[derive(Clone, Debug)]
pub struct ProcFilter {
    pub pids: Vec<Pid>,
    pub user: Option<String>,
    pub comm: Option<String>,
    pub by: Option<GroupBy>,
    pub sort: ProcSort,
    pub top: Option<usize>,
    /// PSS/USS columns are present.
    pub pss: bool,
    /// `--exact`: physical pages of every process, for UNIQUE and FREED-IF-GONE.
    pub exact: Option<std::sync::Arc<crate::collect::pagemap::PhysScan>>,
}

/// One row of the procs view: a process, or a group of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcRow {
    pub pid: Pid,
    pub ppid: Pid,
    pub comm: String,
    pub user: String,
    /// Processes in the row (1 unless grouped).
    pub count: u32,
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
    pub swap: u64,
    pub shared: u64,
    pub owned_objects: u32,
    pub pss: Option<u64>,
    pub uss: Option<u64>,
    /// Memory cgroup of the process, or of the group with `--by cgroup`.
    pub cgroup: Option<String>,
    /// The processes in the row.
    pub members: Vec<Pid>,
    /// With `--exact`: distinct pages mapped plus shared memory charged.
    pub unique: Option<u64>,
    /// With `--exact`: pages and objects no process outside the row holds.
    pub freed_if_gone: Option<u64>,
}

impl ProcRow {
    /// Private anonymous memory plus the shared memory charged to it.
    pub fn total(&self) -> u64 {
        self.anon + self.shared
    }

    fn from_process(acc: &Accounted, p: &Process) -> ProcRow {
        ProcRow {
            pid: p.pid,
            ppid: p.ppid,
            comm: p.comm.clone(),
            user: p.user.clone(),
            count: 1,
            rss: p.rss_bytes,
            anon: p.rss_anon_bytes,
            file: p.rss_file_bytes,
            shmem: p.rss_shmem_bytes,
            swap: p.swap_bytes,
            shared: acc.charged(p.pid),
            owned_objects: acc.owned_by(p.pid).count() as u32,
            pss: p.smaps.map(|s| s.pss_bytes),
            uss: p.smaps.map(|s| s.uss_bytes),
            cgroup: p.cgroup.clone(),
            members: vec![p.pid],
            unique: None,
            freed_if_gone: None,
        }
    }

    fn add(&mut self, o: &ProcRow) {
        self.count += o.count;
        self.rss = self.rss.saturating_add(o.rss);
        self.anon = self.anon.saturating_add(o.anon);
        self.file = self.file.saturating_add(o.file);
        self.shmem = self.shmem.saturating_add(o.shmem);
        self.swap = self.swap.saturating_add(o.swap);
        self.shared = self.shared.saturating_add(o.shared);
        self.owned_objects += o.owned_objects;
        self.pss = add_opt(self.pss, o.pss);
        self.uss = add_opt(self.uss, o.uss);
        self.members.extend_from_slice(&o.members);
    }
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

/// Rows of the procs view after filtering, grouping, sorting and `--top`.
pub fn proc_rows(acc: &Accounted, f: &ProcFilter) -> Vec<ProcRow> {
    let mut rows: Vec<ProcRow> = acc
        .snapshot
        .processes
        .iter()
        .filter(|p| f.pids.is_empty() || f.pids.contains(&p.pid))
        .filter(|p| {
            f.user
                .as_ref()
                .is_none_or(|u| p.user == *u || p.uid.to_string() == *u)
        })
        .filter(|p| f.comm.as_ref().is_none_or(|c| p.comm.contains(c.as_str())))
        .map(|p| ProcRow::from_process(acc, p))
        .collect();
    if let Some(by) = f.by {
        let mut groups: Vec<ProcRow> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let roots = (by == GroupBy::Tree)
            .then(|| crate::account::exact::tree_roots(&acc.snapshot.processes));
        for r in rows {
            let tree_root = roots
                .as_ref()
                .map(|m| m.get(&r.pid).copied().unwrap_or(r.pid));
            let key = match by {
                GroupBy::Tree => tree_root.unwrap_or(r.pid).to_string(),
                GroupBy::Command => r.comm.clone(),
                GroupBy::User => r.user.clone(),
                // "-": processes whose cgroup could not be read.
                GroupBy::Cgroup => r.cgroup.clone().unwrap_or_else(|| "-".to_string()),
            };
            match index.get(&key) {
                Some(&i) => {
                    let g: &mut ProcRow = &mut groups[i];
                    g.add(&r);
                }
                None => {
                    index.insert(key.clone(), groups.len());
                    let root = tree_root.and_then(|pid| acc.snapshot.process(pid));
                    groups.push(ProcRow {
                        pid: tree_root.unwrap_or(0),
                        ppid: 0,
                        comm: if by == GroupBy::Command {
                            key.clone()
                        } else if by == GroupBy::Tree {
                            root.map_or_else(|| r.comm.clone(), |p| p.comm.clone())
                        } else {
                            String::new()
                        },
                        user: if by == GroupBy::User {
                            key
                        } else if by == GroupBy::Tree {
                            root.map_or_else(|| r.user.clone(), |p| p.user.clone())
                        } else {
                            String::new()
                        },
                        cgroup: if by == GroupBy::Cgroup {
                            r.cgroup.clone()
                        } else {
                            None
                        },
                        ..r
                    });
                }
            }
        }
        rows = groups;
    }
    if let Some(ex) = &f.exact {
        let members: Vec<Vec<Pid>> = rows.iter().map(|r| r.members.clone()).collect();
        let exact = crate::account::exact::group_memory(acc, &ex.pages, &members);
        for (r, g) in rows.iter_mut().zip(exact) {
            // A member whose pages could not be read leaves the row without an exact figure.
            if r.members.iter().any(|p| ex.unread.contains(p)) {
                continue;
            }
            r.unique = Some(g.unique_bytes());
            r.freed_if_gone = Some(g.freed_if_gone_bytes());
        }
    }
    let desc = |r: &ProcRow| -> u64 {
        match f.sort {
            ProcSort::Total => r.total(),
            ProcSort::Rss => r.rss,
            ProcSort::Shared => r.shared,
            ProcSort::Shmem => r.shmem,
            ProcSort::Swap => r.swap,
            ProcSort::Pss => r.pss.unwrap_or(0),
            ProcSort::Uss => r.uss.unwrap_or(0),
            ProcSort::Unique => r.unique.unwrap_or(0),
            ProcSort::FreedIfGone => r.freed_if_gone.unwrap_or(0),
            ProcSort::Pid | ProcSort::Command => 0,
        }
    };
    match f.sort {
        ProcSort::Pid => rows.sort_by_key(|r| r.pid),
        ProcSort::Command => rows.sort_by(|a, b| a.comm.cmp(&b.comm).then(a.pid.cmp(&b.pid))),
        _ => rows.sort_by(|a, b| {
            desc(b)
                .cmp(&desc(a))
                .then(a.comm.cmp(&b.comm))
                .then(a.pid.cmp(&b.pid))
        }),
    }
    if let Some(n) = f.top {
        rows.truncate(n);
    }
    rows
}
