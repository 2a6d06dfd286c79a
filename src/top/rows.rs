//! What the live view shows, derived from one accounted snapshot and the model before it.
//!
//! Like below's `Model::new(&sample, last)`: every figure carries its change since the previous
//! refresh, so the widgets only format. Rows own their data (no borrow of the snapshot), so the
//! previous model can be kept as the baseline for the next one.

use crate::account::{Accounted, Policy};
use crate::model::{EstimateReason, ObjectId, ObjectKind, Pid, ScanNotes, Via};
use crate::render::units::escape;
use crate::report::{self, object_id, object_name};
use std::collections::HashMap;
use std::time::Duration;

/// A figure in bytes and its change since the previous refresh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fig {
    /// The figure now.
    pub now: u64,
    /// None when there is nothing to compare with: the first refresh, a row that just appeared,
    /// or a charge computed under another policy than the previous one.
    pub change: Option<i64>,
}

impl Fig {
    /// A figure, compared with its value `before` when there is one.
    pub fn new(now: u64, before: Option<u64>) -> Fig {
        Fig {
            now,
            change: before.map(|b| (i128::from(now) - i128::from(b)) as i64),
        }
    }

    /// It grew since the previous refresh.
    pub fn grew(&self) -> bool {
        self.change.is_some_and(|c| c > 0)
    }

    /// It shrank since the previous refresh.
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
    /// A figure shrank and none grew.
    Shrank,
    /// Nothing changed.
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
/// A holder of an object.
pub struct HolderInfo {
    /// The holding process.
    pub pid: Pid,
    /// Escaped for the terminal.
    pub comm: String,
    /// How it holds the object.
    pub via: Via,
}

/// An object as the live view shows it: its figures with their changes.
#[derive(Clone, Debug)]
pub struct LiveObject {
    /// Identity, to follow the object from scan to scan.
    pub key: ObjectId,
    /// Its kind.
    pub kind: ObjectKind,
    /// What the table prints and `shmwho show` accepts: the inode or `sysv:SHMID`.
    pub id: String,
    /// Escaped for the terminal.
    pub name: String,
    /// Device of the inode, when known.
    pub dev: Option<u64>,
    /// Inode (the shmid for SysV).
    pub inode: u64,
    /// Size.
    pub size: Fig,
    /// Bytes in RAM.
    pub resident: Fig,
    /// Bytes in swap.
    pub swap: Fig,
    /// Measured (false: estimated).
    pub exact: bool,
    /// Why it is estimated.
    pub estimate: Option<EstimateReason>,
    /// A hugetlb SysV segment (outside Shmem).
    pub hugetlb: bool,
    /// Who holds it.
    pub holders: Vec<HolderInfo>,
    /// Distinct processes holding it.
    pub holder_pids: usize,
    /// Attaches of a SysV segment no listed mapping accounts for (`Object::hidden_attaches`).
    pub hidden_attaches: u64,
    /// (pid, escaped title or comm).
    pub owner: Option<(Pid, String)>,
    /// Charges under the model's policy.
    pub charges: Vec<(Pid, u64)>,
    /// Not in the previous refresh.
    pub new: bool,
    /// Lower-case text the filter matches against.
    search: String,
}

impl LiveObject {
    /// How the row moved since the previous refresh.
    pub fn trend(&self) -> Trend {
        trend(self.new, &[self.size, self.resident, self.swap])
    }

    /// Whether the filter (lower case) matches the row.
    pub fn matches(&self, needle_lower: &str) -> bool {
        self.search.contains(needle_lower)
    }
}

/// A process as the live view shows it: the procs view's row ([`report::ProcRow`]) with the
/// change of each figure.
#[derive(Clone, Debug)]
pub struct LiveProc {
    /// Process id.
    pub pid: Pid,
    /// Parent process id.
    pub ppid: Pid,
    /// Start time, to tell a reused pid from the same process.
    pub start_ticks: u64,
    /// Title (else command name), escaped for the terminal.
    pub comm: String,
    /// User name, escaped for the terminal.
    pub user: String,
    /// Resident set size.
    pub rss: Fig,
    /// Private anonymous resident memory.
    pub anon: Fig,
    /// File-backed resident memory.
    pub file: Fig,
    /// Resident shared memory mapped (RssShmem).
    pub shmem: Fig,
    /// Swapped-out memory.
    pub swap: Fig,
    /// Shared memory charged to it under the model's policy.
    pub shared: Fig,
    /// Private anonymous plus charged shared, as `shmwho procs` prints it.
    pub total: Fig,
    /// Objects it owns.
    pub owned: u32,
    /// PSS from smaps, when smaps was read (charge policy `touched`).
    pub pss: Option<u64>,
    /// Part of `shared` comes from an object that could only be estimated (a lower bound).
    pub shared_estimate: bool,
    /// Not in the previous refresh.
    pub new: bool,
    search: String,
}

impl LiveProc {
    /// How the row moved since the previous refresh.
    pub fn trend(&self) -> Trend {
        trend(
            self.new,
            &[self.rss, self.shmem, self.swap, self.shared, self.total],
        )
    }

    /// Whether the filter (lower case) matches the row.
    pub fn matches(&self, needle_lower: &str) -> bool {
        self.search.contains(needle_lower)
    }
}

#[derive(Clone, Debug)]
/// Everything one refresh of the live view shows.
pub struct Model {
    /// Number of the scan, from 1.
    pub seq: u64,
    /// How long the scan took.
    pub scan: Duration,
    /// The policy the charges were made under.
    pub policy: Policy,
    /// smaps was read (PSS available).
    pub with_smaps: bool,
    /// Every object.
    pub objects: Vec<LiveObject>,
    /// Every process.
    pub procs: Vec<LiveProc>,
    /// `Shmem` from /proc/meminfo.
    pub shmem: Fig,
    /// Resident bytes of the listed objects (hugetlb segments excluded, as in the reconciliation).
    pub objects_bytes: u64,
    /// Some object could only be estimated: `objects_bytes` is a lower bound.
    pub objects_estimate: bool,
    /// Files on tmpfs mounts nobody holds: statfs less the listed files.
    pub unheld_files: u64,
    /// `Shmem` less what the objects and unheld files explain.
    pub unexplained: i64,
    /// Resident bytes of objects nobody is charged for.
    pub unowned: u64,
    /// Swap in use on the host.
    pub swap_used: u64,
    /// What the scan could not see.
    pub notes: ScanNotes,
    /// Objects and processes of the previous refresh that are gone.
    pub objects_gone: usize,
    /// Processes of the previous refresh that are gone.
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
        // What a person knows a process by: its title, else its command.
        let known_as = |pid: Pid| {
            snap.process(pid)
                .map(|p| escape(p.label()))
                .unwrap_or_default()
        };

        let prev_objs: HashMap<ObjectId, &LiveObject> = prev
            .map(|m| m.objects.iter().map(|o| (o.key, o)).collect())
            .unwrap_or_default();
        let objects: Vec<LiveObject> = snap
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
                let owner = acc.owners[i].map(|pid| (pid, known_as(pid)));
                let id = object_id(o);
                // The label first: "PHP opcache · (anonymous)".
                let name = match &acc.labels[i] {
                    Some(l) => escape(&format!("{l} · {}", object_name(o))),
                    None => escape(&object_name(o)),
                };
                let mut search = format!("{} {id} {name}", o.kind().as_str());
                if let Some((pid, c)) = &owner {
                    search.push_str(&format!(" {pid} {c}"));
                }
                for h in &holders {
                    search.push_str(&format!(" {} {}", h.pid, h.comm));
                }
                LiveObject {
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
                    hidden_attaches: o.hidden_attaches(),
                    holders,
                    owner,
                    charges: acc.charges[i].clone(),
                    new,
                    search: search.to_lowercase(),
                }
            })
            .collect();

        let owned = report::owned_counts(acc);
        let mut estimated: std::collections::HashSet<Pid> = Default::default();
        for (o, ch) in snap.objects.iter().zip(&acc.charges) {
            if !o.is_exact() {
                estimated.extend(ch.iter().map(|c| c.0));
            }
        }
        // A pid with another start time is another process: compare only with the same one.
        let prev_procs: HashMap<(Pid, u64), &LiveProc> = prev
            .map(|m| {
                m.procs
                    .iter()
                    .map(|p| ((p.pid, p.start_ticks), p))
                    .collect()
            })
            .unwrap_or_default();
        let same_policy = prev.is_some_and(|m| m.policy == acc.policy);
        let procs: Vec<LiveProc> = snap
            .processes
            .iter()
            .map(|p| {
                let before = prev_procs.get(&(p.pid, p.start_ticks));
                let new = prev.is_some() && before.is_none();
                let b = |f: fn(&LiveProc) -> Fig| before.map(|r| f(r).now);
                let charged = |f: fn(&LiveProc) -> Fig| b(f).filter(|_| same_policy);
                // The figures are the procs view's row; the live view adds their changes.
                let r = report::ProcRow::from_process(acc, p, &owned);
                let comm = escape(r.title.as_deref().unwrap_or(&r.comm));
                let user = escape(&r.user);
                LiveProc {
                    pid: r.pid,
                    ppid: r.ppid,
                    start_ticks: p.start_ticks,
                    search: format!("{} {comm} {user}", r.pid).to_lowercase(),
                    comm,
                    user,
                    rss: Fig::new(r.rss, b(|l| l.rss)),
                    anon: Fig::new(r.anon, b(|l| l.anon)),
                    file: Fig::new(r.file, b(|l| l.file)),
                    shmem: Fig::new(r.shmem, b(|l| l.shmem)),
                    swap: Fig::new(r.swap, b(|l| l.swap)),
                    shared: Fig::new(r.shared, charged(|l| l.shared)),
                    total: Fig::new(r.total(), charged(|l| l.total)),
                    owned: r.owned_objects,
                    pss: r.pss,
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

    /// The object with this identity.
    pub fn object(&self, key: &ObjectId) -> Option<&LiveObject> {
        self.objects.iter().find(|o| o.key == *key)
    }

    /// The process with this pid.
    pub fn proc(&self, pid: Pid) -> Option<&LiveProc> {
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
