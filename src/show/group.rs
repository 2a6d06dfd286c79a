//! The process page of a process with many objects (a browser's hundred memfds, a pool
//! master's dynamic segments): one row per label, kind and owner with counts and sums, so the
//! page stays readable; `show --json` keeps every object.

use crate::account::show::{ProcObject, ProcessView};
use crate::account::Accounted;
use crate::model::{Pid, Via};
use crate::render::table::{finish_lines, plain_table};
use crate::render::units::escape;
use crate::render::RenderOptions;
use std::collections::BTreeMap;

/// Above this many objects the page groups them.
pub const GROUP_ABOVE: usize = 10;

/// Objects of one label, kind and owner.
#[derive(Default)]
struct Group {
    count: usize,
    maps: usize,
    fds: usize,
    mapped: Option<u64>,
    pss: Option<u64>,
    resident: u64,
    estimated: bool,
    orphaned: Option<u64>,
    orphaned_unknown: bool,
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// (label, kind, owner) → the group, in a stable order.
fn groups(
    acc: &Accounted,
    view: &ProcessView,
) -> BTreeMap<(String, &'static str, Option<Pid>), Group> {
    let snap = acc.snapshot;
    let mut out: BTreeMap<_, Group> = BTreeMap::new();
    for po in &view.objects {
        let i = po.view.index;
        let o = &snap.objects[i];
        let key = (
            acc.labels[i].clone().unwrap_or_default(),
            o.kind().as_str(),
            acc.owners[i],
        );
        let g = out.entry(key).or_default();
        g.count += 1;
        for &h in &po.held {
            match o.holders[h].via {
                Via::Map { .. } => g.maps += 1,
                Via::Fd { .. } => g.fds += 1,
            }
        }
        g.mapped = add(g.mapped, po.mapped_bytes);
        g.pss = add(g.pss, po.pss_bytes);
        g.resident = g.resident.saturating_add(o.resident_bytes);
        g.estimated |= !o.is_exact();
        match po.view.orphaned_bytes(o) {
            Some(v) => g.orphaned = add(g.orphaned, Some(v)),
            None => g.orphaned_unknown = true,
        }
    }
    out
}

/// The grouped table of the objects `view.pid` maps, holds or owns.
pub fn objects_table(acc: &Accounted, view: &ProcessView, ro: &RenderOptions) -> String {
    let snap = acc.snapshot;
    let b = |v| ro.units.bytes(v);
    let mut t = plain_table(
        &[
            "KIND",
            "LABEL",
            "OBJECTS",
            "HOLDS",
            "IN ITS PAGE TABLES",
            "ITS PSS",
            "OBJECT RESIDENT",
            "ORPHANED",
            "OWNER",
        ],
        |i| [2, 4, 5, 6, 7].contains(&i),
    );
    for ((label, kind, owner), g) in groups(acc, view) {
        let mut holds = Vec::new();
        if g.maps > 0 {
            holds.push(format!("{} map(s)", g.maps));
        }
        if g.fds > 0 {
            holds.push(format!("{} fd(s)", g.fds));
        }
        let orphaned = match (g.orphaned, g.orphaned_unknown) {
            (Some(v), false) => b(v),
            (Some(v), true) => format!("≥ {}", b(v)),
            (None, _) => "?".into(),
        };
        t.add_row(vec![
            kind.to_string(),
            if label.is_empty() {
                "-".into()
            } else {
                escape(&label)
            },
            g.count.to_string(),
            if holds.is_empty() {
                "- (owner only)".into()
            } else {
                holds.join(", ")
            },
            g.mapped.map_or("-".into(), b),
            g.pss.map_or("-".into(), b),
            format!("{}{}", if g.estimated { "~" } else { "" }, b(g.resident)),
            orphaned,
            owner.map_or("-".into(), |pid| {
                if pid == view.pid {
                    "this process".to_string()
                } else {
                    let name = snap.process(pid).map_or("", |p| p.label());
                    escape(&format!("{pid} {name}"))
                }
            }),
        ]);
    }
    let mut s = finish_lines(&t);
    s.push_str(&format!(
        "{} objects, grouped by label, kind and owner; every object: shmwho show pid:{} --json\n",
        view.objects.len(),
        view.pid
    ));
    s
}

/// The OWNS line's list for many objects: "PHP opcache: anon_shared ×1 (64.0 MiB resident)".
pub fn owned_summary(acc: &Accounted, owned: &[&ProcObject], ro: &RenderOptions) -> String {
    let snap = acc.snapshot;
    let mut by: BTreeMap<(String, &'static str), (usize, u64)> = BTreeMap::new();
    for po in owned {
        let i = po.view.index;
        let o = &snap.objects[i];
        let e = by
            .entry((acc.labels[i].clone().unwrap_or_default(), o.kind().as_str()))
            .or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(o.resident_bytes);
    }
    by.into_iter()
        .map(|((label, kind), (n, res))| {
            let head = if label.is_empty() {
                kind.to_string()
            } else {
                format!("{}: {kind}", escape(&label))
            };
            format!("{head} ×{n} ({} resident)", ro.units.bytes(res))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
