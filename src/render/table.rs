//! Plain aligned tables for a terminal, with a footer that reconciles with the kernel.

use super::units::{bytes, escape, signed_bytes};
use super::{
    object_id, object_name, proc_rows, select_objects, ObjectFilter, ProcFilter, RenderOptions,
};
use crate::account::Accounted;
use crate::model::EstimateReason;
use comfy_table::{presets::NOTHING, CellAlignment, Table};
use std::fmt::Write as _;

/// A plain, borderless table as every view prints them; `right(i)` right-aligns column i.
pub(crate) fn plain_table(header: &[&str], right: impl Fn(usize) -> bool) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(header.to_vec());
    for i in 0..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_padding((0, 2));
            if right(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    t
}

fn table(header: &[&str], right_from: usize) -> Table {
    plain_table(header, |i| i >= right_from)
}

/// The table's lines without the trailing padding comfy-table leaves (noise in a pipe).
pub(crate) fn finish_lines(t: &Table) -> String {
    t.to_string()
        .lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

fn finish(t: &Table) -> String {
    let mut s = finish_lines(t);
    if s.is_empty() {
        s.push('\n');
    }
    s
}

pub fn objects(acc: &Accounted, f: &ObjectFilter, ro: &RenderOptions) -> String {
    let snap = acc.snapshot;
    let mut t = table(
        &[
            "KIND", "ID", "NAME", "SIZE", "RESIDENT", "SWAP", "HOLDERS", "OWNER",
        ],
        3,
    );
    for c in [7] {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Left);
        }
    }
    let shown = select_objects(acc, f);
    for &i in &shown {
        let o = &snap.objects[i];
        let mark = if o.is_exact() { "" } else { "~" };
        let owner = acc.owners[i]
            .map(|pid| {
                let comm = snap.process(pid).map_or("", |p| p.comm.as_str());
                format!("{pid} {}", escape(comm))
            })
            .unwrap_or_else(|| "-".to_string());
        t.add_row(vec![
            o.kind().as_str().to_string(),
            object_id(o),
            escape(&object_name(o)),
            format!("{mark}{}", bytes(o.size_bytes, ro.bytes)),
            format!("{mark}{}", bytes(o.resident_bytes, ro.bytes)),
            format!("{mark}{}", bytes(o.swap_bytes, ro.bytes)),
            o.holder_pids().len().to_string(),
            owner,
        ]);
    }
    let mut out = if shown.is_empty() {
        "no shared-memory objects match\n".to_string()
    } else {
        finish(&t)
    };
    out.push('\n');
    out.push_str(&footer(acc, ro));
    out
}

/// The reconciliation with `Shmem` and what the scan could not see.
fn footer(acc: &Accounted, ro: &RenderOptions) -> String {
    let r = &acc.reconciliation;
    let snap = acc.snapshot;
    let b = |v| bytes(v, ro.bytes);
    let mut t = table(&["", "", ""], 1);
    if let Some(c) = t.column_mut(2) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    t.add_row(vec![
        "Shmem (/proc/meminfo)".to_string(),
        b(r.shmem_bytes),
        String::new(),
    ]);
    t.add_row(vec![
        format!("  objects ({})", snap.objects.len()),
        b(r.objects_bytes),
        format!(
            "{} of it owned by nobody (no holder, no living SysV creator)",
            b(acc.unheld_bytes)
        ),
    ]);
    for m in &r.mounts {
        if let Some(u) = m.unheld_files_bytes {
            if u > 0 {
                t.add_row(vec![
                    format!(
                        "  unheld files on {}",
                        escape(&m.mount_point.to_string_lossy())
                    ),
                    b(u),
                    "statfs of the mount less the files listed above".to_string(),
                ]);
            }
        }
    }
    t.add_row(vec![
        "  unexplained".to_string(),
        signed_bytes(r.unexplained_bytes, ro.bytes),
        "per-CPU counter drift, memfds in flight in sockets, GPU buffers, other namespaces"
            .to_string(),
    ]);
    // The empty header row comfy-table prints first is dropped.
    let text = finish(&t);
    let mut out: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    out.push_str(&notes(acc, ro));
    out
}

pub(crate) fn notes(acc: &Accounted, ro: &RenderOptions) -> String {
    let n = &acc.snapshot.notes;
    let mut out = String::new();
    for &(reason, count) in &n.estimates {
        let _ = writeln!(out, "~ {count} object(s) estimated: {}.", reason.explain());
    }
    if n.estimates
        .iter()
        .any(|e| e.0 == EstimateReason::MapFilesDenied)
    {
        let _ = writeln!(
            out,
            "  For exact figures run as root, or: sudo setcap cap_checkpoint_restore,cap_sys_ptrace,cap_dac_read_search+ep $(command -v shmwho)"
        );
    }
    if n.unreadable > 0 {
        let why = if ro.euid == 0 {
            "permission denied even to root: another user namespace, or a security module"
        } else {
            "other users' processes need root or CAP_SYS_PTRACE"
        };
        let _ = writeln!(
            out,
            "note: {} process(es) could not be read ({why}); objects only they hold are not listed.",
            n.unreadable
        );
    }
    if n.hidepid {
        let _ = writeln!(
            out,
            "note: /proc is mounted with hidepid: other users' processes are invisible."
        );
    }
    if n.absurd_processes > 0 {
        let _ = writeln!(
            out,
            "note: {} process(es) reported more memory than the host has; capped at MemTotal + SwapTotal.",
            n.absurd_processes
        );
    }
    if n.hidden > 0 {
        let _ = writeln!(
            out,
            "note: {} process(es) you cannot see in /proc are left out (hidepid); their objects count in the totals.",
            n.hidden
        );
    }
    if n.vanished > 0 {
        let _ = writeln!(
            out,
            "note: {} process(es) exited during the scan and were skipped.",
            n.vanished
        );
    }
    if n.foreign_ipc_ns > 0 {
        let _ = writeln!(
            out,
            "note: {} other IPC namespace(s) could not be entered (needs CAP_SYS_ADMIN): their SysV segments are listed only while attached.",
            n.foreign_ipc_ns
        );
    }
    out
}

/// What `--exact`'s columns mean, and the processes whose pages could not be read.
fn exact_footer(ex: &crate::collect::pagemap::PhysScan) -> String {
    let mut out = String::from(
        "UNIQUE = distinct physical pages the row's processes map (pages shared copy-on-write after fork count once; shared-memory objects left out) + SHARED.\n\
         FREED-IF-GONE = those pages no process outside the row maps + objects only the row holds that die with it (not SysV segments without IPC_RMID, not files still linked); file pages among them stay cached, reclaimable.\n",
    );
    if ex.vanished > 0 {
        let _ = writeln!(
            out,
            "note: {} process(es) exited before their pages were read.",
            ex.vanished
        );
    }
    if ex.denied > 0 {
        let _ = writeln!(
            out,
            "note: the pages of {} process(es) could not be read (permission denied).",
            ex.denied
        );
    }
    out
}

pub fn procs(acc: &Accounted, f: &ProcFilter, ro: &RenderOptions) -> String {
    let rows = proc_rows(acc, f);
    let grouped = f.by.is_some();
    let by_cgroup = f.by == Some(crate::cli::GroupBy::Cgroup);
    let by_tree = f.by == Some(crate::cli::GroupBy::Tree);
    let mut header: Vec<&str> = if by_cgroup {
        vec!["PROCS", "CGROUP"]
    } else if by_tree {
        vec!["PID", "PROCS", "USER", "COMMAND"]
    } else if grouped {
        vec!["PROCS", "USER", "COMMAND"]
    } else {
        vec!["PID", "PPID", "USER", "COMMAND"]
    };
    header.extend(["RSS", "ANON", "FILE", "SHMEM", "SWAP", "SHARED", "TOTAL"]);
    if f.pss {
        header.extend(["PSS", "USS"]);
    }
    if f.exact.is_some() {
        header.extend(["UNIQUE", "FREED-IF-GONE"]);
    }
    let mut t = table(&header, 0);
    let text_cols = if by_cgroup {
        1..2
    } else if by_tree {
        2..4
    } else if grouped {
        1..3
    } else {
        2..4
    };
    for c in text_cols {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Left);
        }
    }
    let b = |v| bytes(v, ro.bytes);
    for r in &rows {
        let mut cells: Vec<String> = if by_cgroup {
            vec![
                r.count.to_string(),
                escape(r.cgroup.as_deref().unwrap_or("- (unreadable)")),
            ]
        } else if by_tree {
            vec![
                r.pid.to_string(),
                r.count.to_string(),
                escape(&r.user),
                escape(&r.comm),
            ]
        } else if grouped {
            vec![r.count.to_string(), escape(&r.user), escape(&r.comm)]
        } else {
            vec![
                r.pid.to_string(),
                r.ppid.to_string(),
                escape(&r.user),
                escape(&r.comm),
            ]
        };
        cells.extend([
            b(r.rss),
            b(r.anon),
            b(r.file),
            b(r.shmem),
            b(r.swap),
            b(r.shared),
            b(r.total()),
        ]);
        if f.pss {
            cells.push(r.pss.map_or("-".into(), b));
            cells.push(r.uss.map_or("-".into(), b));
        }
        if f.exact.is_some() {
            cells.push(r.unique.map_or("-".into(), b));
            cells.push(r.freed_if_gone.map_or("-".into(), b));
        }
        t.add_row(cells);
    }
    let mut out = if rows.is_empty() {
        "no processes match\n".to_string()
    } else {
        finish(&t)
    };
    let charged = crate::size::sum_bytes(acc.per_process.values().copied());
    let _ = writeln!(
        out,
        "\nSHARED is charged under '{}': {} to processes + {} owned by nobody = {}, the resident size of all {} objects (shmwho objects).",
        acc.policy.as_str(),
        b(charged),
        b(acc.unheld_bytes),
        b(charged.saturating_add(acc.unheld_bytes)),
        acc.snapshot.objects.len()
    );
    let _ = writeln!(out, "TOTAL = ANON (private anonymous) + SHARED.");
    if let Some(ex) = &f.exact {
        out.push_str(&exact_footer(ex));
    }
    if by_cgroup {
        out.push_str(&super::cgroups::table_footer(acc, &rows, ro.bytes));
    }
    out.push_str(&notes(acc, ro));
    out
}
