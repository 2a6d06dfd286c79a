//! The detail view (Enter): one object or one process, from the current model, with exact byte
//! counts next to the rounded ones.

use super::app::Target;
use super::rows::{Fig, LiveObject, LiveProc, Model};
use crate::model::{Pid, Via};
use crate::render::units::{short_change, Units};
use crate::report::{dev_text, holder_text};
use ratatui::text::Line;

/// The lines of the detail view of an object or a process.
pub fn lines(m: &Model, target: Target) -> Vec<Line<'static>> {
    let text = match target {
        Target::Object(key) => match m.object(&key) {
            Some(o) => object(m, o),
            None => vec!["This object is gone since the last refresh.".to_string()],
        },
        Target::Process(pid) => match m.proc(pid) {
            Some(p) => process(m, p),
            None => vec![format!("Process {pid} exited since the last refresh.")],
        },
    };
    text.into_iter().map(Line::from).collect()
}

/// `16.0 MiB (16777216 bytes), +4.0K since the last refresh`.
fn figure(f: &Fig) -> String {
    let mut s = Units::Iec.bytes(f.now);
    if f.now >= 1024 {
        s.push_str(&format!(" ({} bytes)", f.now));
    }
    match f.change {
        Some(0) => s.push_str(", unchanged"),
        Some(c) => s.push_str(&format!(", {} since the last refresh", short_change(c))),
        None => {}
    }
    s
}

fn comm_of(m: &Model, pid: Pid) -> String {
    m.proc(pid).map(|p| p.comm.clone()).unwrap_or_default()
}

fn via(v: &Via) -> String {
    match v {
        Via::Map {
            offset, pss_bytes, ..
        } => {
            let mut s = holder_text(v);
            if *offset > 0 {
                s.push_str(&format!(" at offset {offset}"));
            }
            if let Some(p) = pss_bytes {
                s.push_str(&format!(", PSS {}", Units::Iec.bytes(*p)));
            }
            s
        }
        Via::Fd { .. } => holder_text(v),
    }
}

fn object(m: &Model, o: &LiveObject) -> Vec<String> {
    let mut v = vec![
        format!("{} {}  {}", o.kind.as_str(), o.id, o.name),
        match o.dev {
            Some(d) => format!("device {}  inode {}", dev_text(d), o.inode),
            None => format!("inode {}", o.inode),
        },
        String::new(),
        format!("size      {}", figure(&o.size)),
        format!("resident  {}", figure(&o.resident)),
        format!("swap      {}", figure(&o.swap)),
    ];
    match o.estimate {
        None if o.exact => {
            v.push("measured exactly (st_blocks of the inode, or /proc/sysvipc/shm)".into())
        }
        Some(r) => v.push(format!("~ estimate: {}", r.explain())),
        None => v.push("~ estimate".into()),
    }
    if o.hugetlb {
        v.push("SHM_HUGETLB: hugetlb pool memory, not counted in Shmem".into());
    }
    v.push(String::new());
    v.push(match &o.owner {
        Some((pid, c)) => format!("owner     {pid} {c}"),
        None => "owner     nobody (no holder, no living SysV creator)".into(),
    });
    v.push(format!(
        "holders   {} process(es), {} handle(s)",
        o.holder_pids,
        o.holders.len()
    ));
    for h in &o.holders {
        v.push(format!("  {:>7} {:<15} {}", h.pid, h.comm, via(&h.via)));
    }
    if o.hidden_attaches > 0 {
        // The kernel's nattch counts attaches of processes this scan could not read.
        v.push(format!(
            "  + {} attach(es) not visible (nattch counts them; their processes could not be read)",
            o.hidden_attaches
        ));
    }
    v.push(format!("charges under '{}':", m.policy.as_str()));
    if o.charges.is_empty() {
        v.push("  none: nobody owns it (it counts as owned by nobody)".into());
    }
    for &(pid, b) in &o.charges {
        v.push(format!(
            "  {:>7} {:<15} {}",
            pid,
            comm_of(m, pid),
            Units::Iec.bytes(b)
        ));
    }
    v
}

fn process(m: &Model, p: &LiveProc) -> Vec<String> {
    let mut v = vec![
        format!("{} {}  (parent {}, user {})", p.pid, p.comm, p.ppid, p.user),
        String::new(),
        format!("RSS        {}", figure(&p.rss)),
        format!("  anon     {}", figure(&p.anon)),
        format!("  file     {}", figure(&p.file)),
        format!("  shmem    {}", figure(&p.shmem)),
        format!("swap       {}", figure(&p.swap)),
        format!(
            "shared     {}  (charged under '{}')",
            figure(&p.shared),
            m.policy.as_str()
        ),
        format!("total      {}  (anon + shared)", figure(&p.total)),
    ];
    if let Some(pss) = p.pss {
        v.push(format!("PSS        {}", Units::Iec.bytes(pss)));
    }
    v.push(String::new());
    let related: Vec<&LiveObject> = m
        .objects
        .iter()
        .filter(|o| {
            o.holders.iter().any(|h| h.pid == p.pid)
                || o.owner.as_ref().is_some_and(|w| w.0 == p.pid)
        })
        .collect();
    v.push(format!(
        "objects it holds or owns: {} (owns {})",
        related.len(),
        p.owned
    ));
    for o in related {
        let charged: u64 = o.charges.iter().filter(|c| c.0 == p.pid).map(|c| c.1).sum();
        let how: Vec<String> = o
            .holders
            .iter()
            .filter(|h| h.pid == p.pid)
            .map(|h| via(&h.via))
            .collect();
        let owner = if o.owner.as_ref().is_some_and(|w| w.0 == p.pid) {
            " owner"
        } else {
            ""
        };
        v.push(format!(
            "  {} {} {}  resident {}, charged {}{owner}",
            o.kind.as_str(),
            o.id,
            o.name,
            Units::Iec.bytes(o.resident.now),
            Units::Iec.bytes(charged)
        ));
        if !how.is_empty() {
            v.push(format!("      {}", how.join("; ")));
        }
    }
    v
}
