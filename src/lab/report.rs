//! The ground truth as a table for people (JSON is the truth types serialized).

use super::*;

/// `1536` → "1.5 KiB", `268435456` → "256 MiB".
pub(super) fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut scale = 1u64;
    while unit + 1 < UNITS.len() && bytes >= scale * 1024 {
        scale *= 1024;
        unit += 1;
    }
    if bytes % scale == 0 {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", bytes as f64 / scale as f64, UNITS[unit])
    }
}

/// Left-aligned columns separated by two spaces.
pub(super) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(super) fn holders_text(holders: &[HolderTruth]) -> String {
    if holders.is_empty() {
        return "none".to_string();
    }
    holders
        .iter()
        .map(|h| format!("{} {}", h.pid, h.via))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn hold_text(hold_for: Option<Duration>) -> String {
    match hold_for {
        Some(d) => format!(
            "Holding for {} s (or until Ctrl-C/SIGTERM); everything is removed on exit.",
            d.as_secs_f64()
        ),
        None => "Holding until Ctrl-C or SIGTERM; everything is removed on exit.".to_string(),
    }
}

/// The human rendering of the experiment's truth.
pub(super) fn human(truth: &Truth, hold_for: Option<Duration>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shmwho lab: master pid {}, page size {} bytes",
        truth.master_pid, truth.page_size
    );
    for (i, c) in truth.children.iter().enumerate() {
        let parts: Vec<String> = c
            .wrote
            .iter()
            .map(|w| format!("{} of {}", fmt_bytes(w.bytes), w.kind))
            .collect();
        let _ = writeln!(
            out,
            "  child {}: pid {}, wrote {}, {}",
            i + 1,
            c.pid,
            parts.join(" + "),
            if c.alive { "alive" } else { "exited" }
        );
    }
    out.push('\n');
    let mut rows = vec![vec![
        "KIND".to_string(),
        "OBJECT".to_string(),
        "SIZE".to_string(),
        "RESIDENT".to_string(),
        "OWNER".to_string(),
        "HOLDERS".to_string(),
    ]];
    for o in &truth.objects {
        let id = match (o.kind, o.shmid, o.inode) {
            ("sysv", Some(shmid), _) => format!("shmid {shmid}, key {}", o.key.unwrap_or(0)),
            ("memfd", _, Some(ino)) => format!("inode {ino}, memfd:{}", o.name.unwrap_or("")),
            (_, _, Some(ino)) => match &o.path {
                Some(p) => format!("inode {ino}, {p}"),
                None => format!("inode {ino}"),
            },
            _ => String::new(),
        };
        rows.push(vec![
            o.kind.to_string(),
            id,
            fmt_bytes(o.size_bytes),
            fmt_bytes(o.resident_bytes),
            o.owner_pid.map_or("-".to_string(), |p| p.to_string()),
            holders_text(&o.holders),
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    let resident = truth.objects.first().map_or(0, |o| o.resident_bytes);
    let _ = writeln!(
        out,
        "ps will show the master's RSS as ~0 while the object holds {} ({resident} bytes).",
        fmt_bytes(resident)
    );
    let anon_wrote: Vec<u64> = truth
        .children
        .iter()
        .map(|c| c.wrote.first().map_or(0, |w| w.bytes))
        .collect();
    if truth.children.iter().all(|c| c.alive) {
        let _ = writeln!(
            out,
            "The children's RSS include {} and {} of it: summing RSS counts {} for {}.",
            fmt_bytes(anon_wrote[0]),
            fmt_bytes(anon_wrote[1]),
            fmt_bytes(anon_wrote.iter().sum()),
            fmt_bytes(resident)
        );
    } else {
        let _ = writeln!(
            out,
            "The children have exited: no process's RSS includes these pages, yet `free` counts them as shared."
        );
    }
    out.push_str(&hold_text(hold_for));
    out.push('\n');
    out
}

pub(super) fn human_pool(truth: &PoolTruth, hold_for: Option<Duration>) -> String {
    let pids = match (truth.worker_pids.first(), truth.worker_pids.last()) {
        (Some(a), Some(b)) if a != b => format!("pids {a} … {b}"),
        (Some(a), _) => format!("pid {a}"),
        _ => String::new(),
    };
    format!(
        "shmwho lab pool: master pid {} and {} worker{} ({pids}) share a {} region (inode {}, dev {}).\n\
         Every worker has touched every page: each shows ~{} of RSS, the region holds {} once.\n{}\n",
        truth.master_pid,
        truth.workers,
        if truth.workers == 1 { "" } else { "s" },
        fmt_bytes(truth.size_bytes),
        truth.inode,
        truth.dev,
        fmt_bytes(truth.size_bytes),
        fmt_bytes(truth.resident_bytes),
        hold_text(hold_for)
    )
}
