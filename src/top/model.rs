//! What the live view shows, derived from one accounted snapshot and the model before it.
//!
//! Like below's `Model::new(&sample, last)`: every figure carries its change since the previous
//! refresh, so the widgets only format. Rows own their data (no borrow of the snapshot), so the
//! previous model can be kept as the baseline for the next one.

use crate::account::{Accounted, Policy};
use crate::model::{EstimateReason, ObjectId, ObjectKind, Pid, ScanNotes, Via};
use crate::render::units::escape;
use crate::render::{object_id, object_name};
use std::collections::HashMap;
use std::time::Duration;

/// A figure in bytes and its change since the previous refresh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fig {
    pub now: u64,
    /// None when there is nothing to compare with: the first refresh, a row that just appeared,
    /// or a charge computed under another policy than the previous one.
    pub change: Option<i64>,
}

impl Fig {
    pub fn new(now: u64, before: Option<u64>) -> Fig {
        Fig {
            now,
            change: before.map(|b| (i128::from(now) - i128::from(b)) as i64),
        }
    }

    pub fn grew(&self) -> bool {
        self.change.is_some_and(|c| c > 0)
    }

    pub fn shrank(&self) -> bool {
        self.change.is_some_and(|c| c < 0)
    }
}

/// How a row moved since the previous refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trend {
    /// Not in the previous refresh.
    New,
    /// A figure grew (growth wins over shrinkage: growth is what users watch for).
    Grew,
    Shrank,
    Same,
}

fn trend(new: bool, figs: &[Fig]) -> Trend {
    if new {
        Trend::New
    } else if figs.iter().any(Fig::grew) {
        Trend::Grew
    } else if figs.iter().any(Fig::shrank) {
        Trend::Shrank
    } else {
        Trend::Same
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderInfo {
    pub pid: Pid,
    /// Escaped for the terminal.
    pub comm: String,
    pub via: Via,
}

#[derive(Clone, Debug)]
pub struct ObjRow {
    pub key: ObjectId,
    pub kind: ObjectKind,
    /// What the table prints and `shmwho show` accepts: the inode or `sysv:SHMID`.
    pub id: String,
    /// Escaped for the terminal.
    pub name: String,
    pub dev: Option<u64>,
    pub inode: u64,
    pub size: Fig,
    pub resident: Fig,
    pub swap: Fig,
    pub exact: bool,
    pub estimate: Option<EstimateReason>,
    pub hugetlb: bool,
    pub holders: Vec<HolderInfo>,
    /// Distinct processes holding it.
    pub holder_pids: usize,
    /// (pid, escaped comm).
    pub owner: Option<(Pid, String)>,
    /// Charges under the model's policy.
    pub charges: Vec<(Pid, u64)>,
    pub new: bool,
    /// Lower-case text the filter matches against.
    search: String,
}

impl ObjRow {
    pub fn trend(&self) -> Trend {
        trend(self.new, &[self.size, self.resident, self.swap])
    }

    pub fn matches(&self, needle_lower: &str) -> bool {
        self.search.contains(needle_lower)
    }
}

#[derive(Clone, Debug)]
pub struct ProcRow {
    pub pid: Pid,
    pub ppid: Pid,
    pub start_ticks: u64,
    /// Escaped for the terminal.
    pub comm: String,
    pub user: String,
    pub rss: Fig,
    pub anon: Fig,
    pub file: Fig,
    pub shmem: Fig,
    pub swap: Fig,
    /// Shared memory charged to it under the model's policy.
    pub shared: Fig,
    /// Private anonymous plus charged shared, as `shmwho procs` prints it.
    pub total: Fig,
    pub owned: u32,
    /// PSS from smaps, when smaps was read (charge policy `touched`).
    pub pss: Option<u64>,
    /// Part of `shared` comes from an object that could only be estimated (a lower bound).
    pub shared_estimate: bool,
    pub new: bool,
    search: String,
}

impl ProcRow {
    pub fn trend(&self) -> Trend {
        trend(
            self.new,
            &[self.rss, self.shmem, self.swap, self.shared, self.total],
        )
    }

    pub fn matches(&self, needle_lower: &str) -> bool {
        self.search.contains(needle_lower)
    }
}

#[derive(Clone, Debug)]
pub struct Model {
    /// Number of the scan, from 1.
    pub seq: u64,
    /// How long the scan took.
    pub scan: Duration,
    pub policy: Policy,
    pub with_smaps: bool,
    pub objects: Vec<ObjRow>,
    pub procs: Vec<ProcRow>,
    /// `Shmem` from /proc/meminfo.
    pub shmem: Fig,
    /// Resident bytes of the listed objects (hugetlb segments excluded, as in the reconciliation).
    pub objects_bytes: u64,
    /// Some object could only be estimated: `objects_bytes` is a lower bound.
    pub objects_estimate: bool,
    /// Files on tmpfs mounts nobody holds: statfs less the listed files.
    pub unheld_files: u64,
    pub unexplained: i64,
    /// Resident bytes of objects nobody is charged for.
    pub unowned: u64,
    pub swap_used: u64,
    pub notes: ScanNotes,
    /// Objects and processes of the previous refresh that are gone.
    pub objects_gone: usize,
    pub procs_gone: usize,
}

impl Model {
    /// Derives the rows from `acc`, with changes against `prev` (the model of the previous scan).
    pub fn new(acc: &Accounted, prev: Option<&Model>, seq: u64, scan: Duration) -> Model {
        let snap = acc.snapshot;
        let comm = |pid: Pid| {
            snap.process(pid)
                .map(|p| escape(&p.comm))
                .unwrap_or_default()
        };

        let prev_objs: HashMap<ObjectId, &ObjRow> = prev
            .map(|m| m.objects.iter().map(|o| (o.key, o)).collect())
            .unwrap_or_default();
        let objects: Vec<ObjRow> = snap
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let before = prev_objs.get(&o.id);
                let new = prev.is_some() && before.is_none();
                let holders: Vec<HolderInfo> = o
                    .holders
                    .iter()
                    .map(|h| HolderInfo {
                        pid: h.pid,
                        comm: comm(h.pid),
                        via: h.via.clone(),
                    })
                    .collect();
                let owner = acc.owners[i].map(|pid| (pid, comm(pid)));
                let id = object_id(o);
                let name = escape(&object_name(o));
                let mut search = format!("{} {id} {name}", o.kind().as_str());
                if let Some((pid, c)) = &owner {
                    search.push_str(&format!(" {pid} {c}"));
                }
                for h in &holders {
                    search.push_str(&format!(" {} {}", h.pid, h.comm));
                }
                ObjRow {
                    key: o.id,
                    kind: o.kind(),
                    id,
                    name,
                    dev: o.dev,
                    inode: o.inode,
                    size: Fig::new(o.size_bytes, before.map(|b| b.size.now)),
                    resident: Fig::new(o.resident_bytes, before.map(|b| b.resident.now)),
                    swap: Fig::new(o.swap_bytes, before.map(|b| b.swap.now)),
                    exact: o.is_exact(),
                    estimate: o.accuracy.estimate(),
                    hugetlb: o.hugetlb(),
                    holder_pids: o.holder_pids().len(),
                    holders,
                    owner,
                    charges: acc.charges[i].clone(),
                    new,
                    search: search.to_lowercase(),
                }
            })
            .collect();

        let mut owned: HashMap<Pid, u32> = HashMap::new();
        for pid in acc.owners.iter().flatten() {
            *owned.entry(*pid).or_default() += 1;
        }
        let mut estimated: std::collections::HashSet<Pid> = Default::default();
        for (o, ch) in snap.objects.iter().zip(&acc.charges) {
            if !o.is_exact() {
                estimated.extend(ch.iter().map(|c| c.0));
            }
        }
        // A pid with another start time is another process: compare only with the same one.
        let prev_procs: HashMap<(Pid, u64), &ProcRow> = prev
            .map(|m| {
                m.procs
                    .iter()
                    .map(|p| ((p.pid, p.start_ticks), p))
                    .collect()
            })
            .unwrap_or_default();
        let same_policy = prev.is_some_and(|m| m.policy == acc.policy);
        let procs: Vec<ProcRow> = snap
            .processes
            .iter()
            .map(|p| {
                let before = prev_procs.get(&(p.pid, p.start_ticks));
                let new = prev.is_some() && before.is_none();
                let b = |f: fn(&ProcRow) -> Fig| before.map(|r| f(r).now);
                let charged = |f: fn(&ProcRow) -> Fig| b(f).filter(|_| same_policy);
                let shared = acc.charged(p.pid);
                let comm = escape(&p.comm);
                let user = escape(&p.user);
                ProcRow {
                    pid: p.pid,
                    ppid: p.ppid,
                    start_ticks: p.start_ticks,
                    search: format!("{} {comm} {user}", p.pid).to_lowercase(),
                    comm,
                    user,
                    rss: Fig::new(p.rss_bytes, b(|r| r.rss)),
                    anon: Fig::new(p.rss_anon_bytes, b(|r| r.anon)),
                    file: Fig::new(p.rss_file_bytes, b(|r| r.file)),
                    shmem: Fig::new(p.rss_shmem_bytes, b(|r| r.shmem)),
                    swap: Fig::new(p.swap_bytes, b(|r| r.swap)),
                    shared: Fig::new(shared, charged(|r| r.shared)),
                    total: Fig::new(p.rss_anon_bytes + shared, charged(|r| r.total)),
                    owned: owned.get(&p.pid).copied().unwrap_or(0),
                    pss: p.smaps.map(|s| s.pss_bytes),
                    shared_estimate: estimated.contains(&p.pid),
                    new,
                }
            })
            .collect();

        let (objects_gone, procs_gone) = match prev {
            Some(m) => {
                let now_objs: std::collections::HashSet<ObjectId> =
                    objects.iter().map(|o| o.key).collect();
                let now_procs: std::collections::HashSet<(Pid, u64)> =
                    procs.iter().map(|p| (p.pid, p.start_ticks)).collect();
                (
                    m.objects
                        .iter()
                        .filter(|o| !now_objs.contains(&o.key))
                        .count(),
                    m.procs
                        .iter()
                        .filter(|p| !now_procs.contains(&(p.pid, p.start_ticks)))
                        .count(),
                )
            }
            None => (0, 0),
        };

        let r = &acc.reconciliation;
        Model {
            seq,
            scan,
            policy: acc.policy,
            with_smaps: snap.with_smaps,
            objects,
            procs,
            shmem: Fig::new(r.shmem_bytes, prev.map(|m| m.shmem.now)),
            objects_bytes: r.objects_bytes,
            objects_estimate: !snap.exact(),
            unheld_files: r.mounts.iter().filter_map(|m| m.unheld_files_bytes).sum(),
            unexplained: r.unexplained_bytes,
            unowned: acc.unheld_bytes,
            swap_used: snap.meminfo.swap_used_bytes(),
            notes: snap.notes.clone(),
            objects_gone,
            procs_gone,
        }
    }

    pub fn object(&self, key: &ObjectId) -> Option<&ObjRow> {
        self.objects.iter().find(|o| o.key == *key)
    }

    pub fn proc(&self, pid: Pid) -> Option<&ProcRow> {
        self.procs.iter().find(|p| p.pid == pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::account;
    use crate::account::tests::{object, process, snapshot};

    #[test]
    fn changes_against_the_previous_scan() {
        let s1 = snapshot(
            vec![process(10, 1), process(11, 2)],
            vec![object(1, 4096, &[10, 11]), object(2, 8192, &[11])],
        );
        let m1 = Model::new(&account(&s1, Policy::Owner), None, 1, Duration::ZERO);
        assert_eq!(
            m1.objects[0].resident.change, None,
            "nothing to compare yet"
        );
        assert!(!m1.objects[0].new);
        assert_eq!(m1.objects[0].trend(), Trend::Same);

        let mut s2 = snapshot(
            vec![process(10, 1), process(12, 3)],
            vec![object(1, 3 * 4096, &[10]), object(3, 4096, &[12])],
        );
        s2.objects[0].swap_bytes = 0;
        let m2 = Model::new(&account(&s2, Policy::Owner), Some(&m1), 2, Duration::ZERO);
        let o1 = m2.object(&m1.objects[0].key).unwrap();
        assert_eq!(o1.resident.change, Some(2 * 4096));
        assert_eq!(o1.trend(), Trend::Grew);
        assert!(m2.objects[1].new);
        assert_eq!(m2.objects[1].trend(), Trend::New);
        assert_eq!((m2.objects_gone, m2.procs_gone), (1, 1));
        let p10 = m2.proc(10).unwrap();
        assert_eq!(p10.shared.now, 3 * 4096);
        assert_eq!(p10.shared.change, Some(3 * 4096 - 4096));
        assert!(m2.proc(12).unwrap().new);

        // Under another policy, charges are not compared with the previous policy's.
        let m3 = Model::new(&account(&s2, Policy::Split), Some(&m1), 2, Duration::ZERO);
        assert_eq!(m3.proc(10).unwrap().shared.change, None);
        assert_eq!(m3.proc(10).unwrap().rss.change, Some(0));
    }

    #[test]
    fn a_reused_pid_is_a_new_process() {
        let s1 = snapshot(vec![process(10, 1)], vec![]);
        let m1 = Model::new(&account(&s1, Policy::Owner), None, 1, Duration::ZERO);
        let s2 = snapshot(vec![process(10, 99)], vec![]);
        let m2 = Model::new(&account(&s2, Policy::Owner), Some(&m1), 2, Duration::ZERO);
        assert!(m2.procs[0].new);
        assert_eq!(m2.procs_gone, 1);
    }
}
