//! Rows of the views: which objects to show and in which order, and one row per process or
//! group of processes with the figures of the procs view.

use super::{GroupBy, ObjectQuery, ProcColumn, ProcQuery, SortKey};
use crate::account::Accounted;
use crate::model::{Pid, Process, Workload};
use std::collections::HashMap;

/// Private anonymous memory plus the shared memory charged to it: the TOTAL of every view.
pub fn total_bytes(anon: u64, shared: u64) -> u64 {
    anon.saturating_add(shared)
}

/// Indices of the objects to show, sorted.
pub fn select_objects(acc: &Accounted, f: &ObjectQuery) -> Vec<usize> {
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
    let key = |i: usize| f.sort.cell(acc, i).figure();
    idx.sort_by(|&a, &b| key(b).cmp(&key(a)).then(objs[a].id.cmp(&objs[b].id)));
    if f.reverse {
        idx.reverse();
    }
    if let Some(n) = f.top {
        idx.truncate(n);
    }
    idx
}

/// One row of the procs view: a process, or a group of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcRow {
    /// Process id; a tree group's root pid; 0 for other groups.
    pub pid: Pid,
    /// Parent process id (0 for groups).
    pub ppid: Pid,
    /// Command name (empty for groups other than by command and by tree).
    pub comm: String,
    /// Process title (a tree group: its root's; None for other groups).
    pub title: Option<String>,
    /// User name (empty for groups other than by user and by tree).
    pub user: String,
    /// Processes in the row (1 unless grouped).
    pub count: u32,
    /// Resident set size.
    pub rss: u64,
    /// Private anonymous resident memory.
    pub anon: u64,
    /// File-backed resident memory.
    pub file: u64,
    /// Resident shared memory mapped (RssShmem).
    pub shmem: u64,
    /// Swapped-out memory.
    pub swap: u64,
    /// Shared memory charged to the row under the policy.
    pub shared: u64,
    /// Objects the row's processes own.
    pub owned_objects: u32,
    /// PSS from smaps, when read.
    pub pss: Option<u64>,
    /// USS from smaps, when read.
    pub uss: Option<u64>,
    /// Memory cgroup of the process, or of the group with `--by cgroup`.
    pub cgroup: Option<String>,
    /// Pod, container and unit of the process (from its cgroup), or what names the group with
    /// `--by pod|container|unit`.
    pub workload: Workload,
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
        total_bytes(self.anon, self.shared)
    }

    /// The row of one process; `owned` counts the objects each process owns ([`owned_counts`]).
    pub fn from_process(acc: &Accounted, p: &Process, owned: &HashMap<Pid, u32>) -> ProcRow {
        ProcRow {
            pid: p.pid,
            ppid: p.ppid,
            comm: p.comm.clone(),
            title: p.title.clone(),
            user: p.user.clone(),
            count: 1,
            rss: p.rss_bytes,
            anon: p.rss_anon_bytes,
            file: p.rss_file_bytes,
            shmem: p.rss_shmem_bytes,
            swap: p.swap_bytes,
            shared: acc.charged(p.pid),
            owned_objects: owned.get(&p.pid).copied().unwrap_or(0),
            pss: p.smaps.map(|s| s.pss_bytes),
            uss: p.smaps.map(|s| s.uss_bytes),
            cgroup: p.cgroup.clone(),
            workload: p
                .cgroup
                .as_deref()
                .map(crate::collect::container::parse)
                .unwrap_or_default(),
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

/// What names a group: the pod, container or unit it is one of (a container's pod too: a
/// container is in one pod); all three for a cgroup, which its path names.
fn group_workload(by: GroupBy, w: &Workload) -> Workload {
    match by {
        GroupBy::Cgroup => w.clone(),
        GroupBy::Pod => Workload {
            pod_uid: w.pod_uid.clone(),
            ..Workload::default()
        },
        GroupBy::Container if w.container_id.is_some() => Workload {
            unit: None,
            ..w.clone()
        },
        GroupBy::Unit => Workload {
            unit: w.unit.clone(),
            ..Workload::default()
        },
        _ => Workload::default(),
    }
}

/// How many objects each process owns, counted in one pass over the owners.
pub fn owned_counts(acc: &Accounted) -> HashMap<Pid, u32> {
    let mut owned: HashMap<Pid, u32> = HashMap::new();
    for pid in acc.owners.iter().flatten() {
        *owned.entry(*pid).or_default() += 1;
    }
    owned
}

/// Rows of the procs view after filtering, grouping, sorting and `--top`.
pub fn proc_rows(acc: &Accounted, f: &ProcQuery) -> Vec<ProcRow> {
    let owned = owned_counts(acc);
    let mut rows: Vec<ProcRow> = acc
        .snapshot
        .processes
        .iter()
        .filter(|p| f.pids.is_empty() || f.pids.contains(&p.pid))
        .filter(|p| {
            f.users.is_empty()
                || f.users
                    .iter()
                    .any(|u| p.user == *u || p.uid.to_string() == *u)
        })
        .filter(|p| {
            f.comm.as_ref().is_none_or(|c| {
                p.comm.contains(c.as_str())
                    || p.title.as_deref().is_some_and(|t| t.contains(c.as_str()))
            })
        })
        .map(|p| ProcRow::from_process(acc, p, &owned))
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
                // "-": processes outside any pod, container or unit.
                GroupBy::Pod => r.workload.pod_uid.clone().unwrap_or_else(|| "-".into()),
                GroupBy::Container => r
                    .workload
                    .container_id
                    .clone()
                    .unwrap_or_else(|| "-".into()),
                GroupBy::Unit => r.workload.unit.clone().unwrap_or_else(|| "-".into()),
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
                        title: if by == GroupBy::Tree {
                            root.map_or_else(|| r.title.clone(), |p| p.title.clone())
                        } else {
                            None
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
                        workload: group_workload(by, &r.workload),
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
    let desc = |r: &ProcRow| f.sort.cell(r).figure();
    match (f.sort, f.sort.sort_key()) {
        (ProcColumn::Command, _) => {
            rows.sort_by(|a, b| a.comm.cmp(&b.comm).then(a.pid.cmp(&b.pid)))
        }
        (_, SortKey::Ascending) => rows.sort_by_key(desc),
        (_, SortKey::Descending) => rows.sort_by(|a, b| {
            desc(b)
                .cmp(&desc(a))
                .then(a.comm.cmp(&b.comm))
                .then(a.pid.cmp(&b.pid))
        }),
    }
    if f.reverse {
        rows.reverse();
    }
    if let Some(n) = f.top {
        rows.truncate(n);
    }
    rows
}
