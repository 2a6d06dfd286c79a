//! One process: its memory by kind, every shared object it maps, holds or owns, what it is
//! charged under each policy, and a verdict for a ticket.

use super::object::{self, ObjectView};
use crate::account::{self, Policy};
use crate::model::{Pid, Snapshot, Via};
use std::path::Path;

/// An object the process maps, holds as an fd, or owns.
#[derive(Clone, Debug)]
pub struct ProcObject {
    pub view: ObjectView,
    /// Indices in `object.holders` that are this process's.
    pub held: Vec<usize>,
    /// Bytes of the object in this process's page tables (None: an fd only, or unreadable).
    pub mapped_bytes: Option<u64>,
    /// This process's PSS of the object.
    pub pss_bytes: Option<u64>,
    pub owned: bool,
}

#[derive(Clone, Debug)]
pub struct ProcessView {
    pub pid: Pid,
    pub objects: Vec<ProcObject>,
    /// Shared memory charged to the process under owner, split and touched.
    pub charged: Vec<(Policy, u64)>,
}

impl ProcessView {
    pub fn owned(&self) -> impl Iterator<Item = &ProcObject> {
        self.objects.iter().filter(|o| o.owned)
    }
}

pub fn analyse(snap: &Snapshot, proc_root: &Path, pid: Pid) -> ProcessView {
    let acc = account::account(snap, Policy::Owner);
    let mut objects = Vec::new();
    for (i, o) in snap.objects.iter().enumerate() {
        let held: Vec<usize> = (0..o.holders.len())
            .filter(|&h| o.holders[h].pid == pid)
            .collect();
        let owned = acc.owners[i] == Some(pid);
        if held.is_empty() && !owned {
            continue;
        }
        let view = object::analyse(snap, proc_root, i);
        let mine = |f: &dyn Fn(&object::HolderView) -> Option<u64>| -> Option<u64> {
            let v: Vec<u64> = held.iter().filter_map(|&h| f(&view.holders[h])).collect();
            (!v.is_empty()).then(|| v.iter().sum())
        };
        let mapped_bytes = mine(&|h| h.mapped.as_ref().map(|r| r.pages() * snap.page_size));
        let pss_bytes = mine(&|h| h.pss_bytes);
        objects.push(ProcObject {
            view,
            held,
            mapped_bytes,
            pss_bytes,
            owned,
        });
    }
    // Touched charges need every mapper's PSS of the objects involved; the views have it.
    let mut with_pss = snap.clone();
    for po in &objects {
        fill_pss(&mut with_pss, &po.view);
    }
    let charged = [Policy::Owner, Policy::Split, Policy::Touched]
        .into_iter()
        .map(|p| (p, account::account(&with_pss, p).charged(pid)))
        .collect();
    ProcessView {
        pid,
        objects,
        charged,
    }
}

/// Puts the PSS worked out in `view` into the snapshot's holders of that object.
pub fn fill_pss(snap: &mut Snapshot, view: &ObjectView) {
    let o = &mut snap.objects[view.index];
    for (h, hv) in o.holders.iter_mut().zip(&view.holders) {
        if let Via::Map { pss_bytes, .. } = &mut h.via {
            *pss_bytes = hv.pss_bytes;
        }
    }
}
