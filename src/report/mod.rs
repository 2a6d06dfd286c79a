//! The report layer between [`crate::account`] and the renderers (`render`, `top`): what a view
//! shows, as plain rows and columns, with no formatting and no terminal.
//!
//! A query value ([`ObjectQuery`], [`ProcQuery`]) says what to show; [`select_objects`] and
//! [`proc_rows`] filter, group, sort and cut; the column enums ([`ObjectColumn`], [`ProcColumn`])
//! are the one place where a column's header, JSON key, sort order, alignment and width priority
//! are defined. Table, JSON, metrics and top read them; the CLI turns its flags into these values
//! before anything runs.

mod columns;
mod rows;

pub use columns::{
    Align, Cell, CgroupColumn, Column, ObjectColumn, PodColumn, ProcColumn, SortKey, KEEP,
};
pub use rows::{owned_counts, proc_rows, select_objects, total_bytes, ProcRow};

use crate::model::{Object, ObjectDetail, ObjectId, ObjectKind, Pid, Via};

/// The column `shmwho objects` sorts by (descending; ties by identity).
pub type ObjectSort = ObjectColumn;

/// The column `shmwho procs` sorts by (PID and COMMAND ascending, figures descending).
pub type ProcSort = ProcColumn;

/// How `shmwho procs --by` groups processes into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per command name.
    Command,
    /// One row per user.
    User,
    /// One row per memory cgroup (systemd unit, container).
    Cgroup,
    /// A process and its descendants that run the same command, under the topmost one's pid.
    Tree,
    /// One row per Kubernetes pod (from the cgroup path), with a per-pod reconciliation.
    Pod,
    /// One row per container (from the cgroup path).
    Container,
    /// One row per systemd unit (the innermost `.service` or `.scope` of the cgroup path).
    Unit,
}

/// Which objects to show, in which order.
#[derive(Clone, Debug)]
pub struct ObjectQuery {
    /// Only these kinds (all when empty).
    pub kinds: Vec<ObjectKind>,
    /// Only objects held or owned by one of these processes (all when empty).
    pub pids: Vec<Pid>,
    /// Sort column.
    pub sort: ObjectSort,
    /// Reverse the sort order.
    pub reverse: bool,
    /// At most this many rows (the footer still counts all).
    pub top: Option<usize>,
}

impl Default for ObjectQuery {
    fn default() -> Self {
        ObjectQuery {
            kinds: Vec::new(),
            pids: Vec::new(),
            sort: ObjectColumn::Resident,
            reverse: false,
            top: None,
        }
    }
}

/// Which processes to show, grouped how, in which order.
#[derive(Clone, Debug)]
pub struct ProcQuery {
    /// Only these processes (all when empty).
    pub pids: Vec<Pid>,
    /// Only processes of these users (names or uids; all when empty).
    pub users: Vec<String>,
    /// Only processes whose command contains this text.
    pub comm: Option<String>,
    /// One row per group instead of per process.
    pub by: Option<GroupBy>,
    /// Sort column.
    pub sort: ProcSort,
    /// Reverse the sort order.
    pub reverse: bool,
    /// At most this many rows.
    pub top: Option<usize>,
    /// PSS/USS columns are present.
    pub pss: bool,
    /// `--exact`: physical pages of every process, for UNIQUE and FREED-IF-GONE.
    pub exact: Option<std::sync::Arc<crate::collect::pagemap::PhysScan>>,
}

impl ProcQuery {
    /// Every process, by pid, with PSS when `pss`: what `record` stores.
    pub fn all(pss: bool) -> ProcQuery {
        ProcQuery {
            pids: Vec::new(),
            users: Vec::new(),
            comm: None,
            by: None,
            sort: ProcColumn::Pid,
            reverse: false,
            top: None,
            pss,
            exact: None,
        }
    }

    /// The columns of the procs table for this query, in order.
    pub fn columns(&self) -> Vec<ProcColumn> {
        use ProcColumn::*;
        let mut cols = match self.by {
            Some(GroupBy::Cgroup) => vec![Procs, Cgroup],
            Some(GroupBy::Tree) => vec![Pid, Procs, User, Command],
            // A group of one command spans users and vice versa: no empty column.
            Some(GroupBy::Command) => vec![Procs, Command],
            Some(GroupBy::User) => vec![Procs, User],
            Some(GroupBy::Pod) => vec![Procs, Pod],
            Some(GroupBy::Container) => vec![Procs, Pod, Container],
            Some(GroupBy::Unit) => vec![Procs, Unit],
            None => vec![Pid, Ppid, User, Command],
        };
        cols.extend([Rss, Anon, File, Shmem, Swap, Shared, Total]);
        if self.pss {
            cols.extend([Pss, Uss]);
        }
        if self.exact.is_some() {
            cols.extend([Unique, FreedIfGone]);
        }
        // Last: the longest text, and only a process or a tree has one.
        if matches!(self.by, None | Some(GroupBy::Tree)) {
            cols.push(Title);
        }
        cols
    }
}

/// What `shmwho show` accepts for this object, and what the table prints as its id.
pub fn object_id(o: &Object) -> String {
    match o.id {
        ObjectId::Sysv { shmid, .. } => format!("sysv:{shmid}"),
        ObjectId::Inode { ino, .. } => ino.to_string(),
    }
}

/// A device number as people and `/proc/PID/mountinfo` write it: `major:minor`, in decimal.
pub fn dev_text(dev: u64) -> String {
    format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev))
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
        ObjectDetail::PosixShm(f) | ObjectDetail::Tmpfs(f) | ObjectDetail::Hugetlbfs(f) => {
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

/// An address as `/proc/PID/maps` writes it: lower-case hex, no prefix.
pub fn address_text(addr: u64) -> String {
    format!("{addr:x}")
}

/// How a process holds an object, in the words every view uses: `map START-END` or `fd N`.
pub fn holder_text(via: &Via) -> String {
    match *via {
        // Start 0 is no real mapping (mmap_min_addr): a restricted install hid the address.
        Via::Map { start: 0, .. } => "map (address hidden)".to_string(),
        Via::Map { start, end, .. } => {
            format!("map {}-{}", address_text(start), address_text(end))
        }
        Via::Fd { fd } => format!("fd {fd}"),
    }
}
