//! The detail view (Enter): one object or one process, from the current model, with exact byte
//! counts next to the rounded ones.

use super::app::Target;
use super::model::{Fig, Model, ObjRow, ProcRow};
use super::ui::change;
use crate::model::{Pid, Via};
use crate::render::units::bytes;
use ratatui::text::Line;

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
    let mut s = bytes(f.now, false);
    if f.now >= 1024 {
        s.push_str(&format!(" ({} bytes)", f.now));
    }
    match f.change {
        Some(0) => s.push_str(", unchanged"),
        Some(c) => s.push_str(&format!(", {} since the last refresh", change(c))),
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
            start,
            end,
            offset,
            pss_bytes,
            ..
        } => {
            // Start 0 is no real mapping (mmap_min_addr): a restricted install hid the address.
            let mut s = if *start == 0 {
                "map (address hidden)".to_string()
            } else {
                format!("map {start:x}-{end:x}")
            };
            if *offset > 0 {
                s.push_str(&format!(" at offset {offset}"));
            }
            if let Some(p) = pss_bytes {
                s.push_str(&format!(", PSS {}", bytes(*p, false)));
            }
            s
        }
        Via::Fd { fd } => format!("fd {fd}"),
    }
}

fn object(m: &Model, o: &ObjRow) -> Vec<String> {
    let mut v = vec![
        format!("{} {}  {}", o.kind.as_str(), o.id, o.name),
        match o.dev {
            Some(d) => format!(
                "device {}:{}  inode {}",
                rustix::fs::major(d),
                rustix::fs::minor(d),
                o.inode
            ),
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
    v.push(format!("charges under '{}':", m.policy.as_str()));
    if o.charges.is_empty() {
        v.push("  none: nobody owns it (it counts as owned by nobody)".into());
    }
    for &(pid, b) in &o.charges {
        v.push(format!(
            "  {:>7} {:<15} {}",
            pid,
            comm_of(m, pid),
            bytes(b, false)
        ));
    }
    v
}

fn process(m: &Model, p: &ProcRow) -> Vec<String> {
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
        v.push(format!("PSS        {}", bytes(pss, false)));
    }
    v.push(String::new());
    let related: Vec<&ObjRow> = m
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
            bytes(o.resident.now, false),
            bytes(charged, false)
        ));
        if !how.is_empty() {
            v.push(format!("      {}", how.join("; ")));
        }
    }
    v
}
