//! Plain aligned tables for a terminal, with a footer that reconciles with the kernel.

use super::units::{escape, Units};
use super::RenderOptions;
use crate::account::Accounted;
use crate::model::EstimateReason;
use crate::report::{
    proc_rows, select_objects, Align, Cell, GroupBy, ObjectColumn, ObjectQuery, ProcColumn,
    ProcQuery,
};
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

/// The text of a cell: bytes in the chosen units, text escaped for the terminal.
pub(crate) fn cell_text(c: &Cell, units: Units) -> String {
    match c {
        Cell::Text(t) => escape(t),
        Cell::Number(n) => n.to_string(),
        Cell::Bytes(v) => units.bytes(*v),
        Cell::Estimate(v) => format!("~{}", units.bytes(*v)),
        Cell::Signed(v) => units.signed(*v),
        Cell::Missing => "-".to_string(),
    }
}

/// A table of `columns` with each column's header and alignment.
pub(crate) fn columns_table<C: Copy>(
    columns: &[C],
    header: impl Fn(C) -> &'static str,
    align: impl Fn(C) -> Align,
) -> Table {
    let names: Vec<&str> = columns.iter().map(|&c| header(c)).collect();
    plain_table(&names, |i| align(columns[i]) == Align::Right)
}

/// The objects table and its footer.
pub fn objects(acc: &Accounted, f: &ObjectQuery, ro: &RenderOptions) -> String {
    let cols = ObjectColumn::TABLE;
    let mut t = columns_table(&cols, ObjectColumn::header, ObjectColumn::align);
    let shown = select_objects(acc, f);
    for &i in &shown {
        t.add_row(
            cols.iter()
                .map(|c| cell_text(&c.cell(acc, i), ro.units))
                .collect::<Vec<_>>(),
        );
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
    let b = |v| ro.units.bytes(v);
    let mut t = plain_table(&["", "", ""], |i| i == 1);
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
        ro.units.signed(r.unexplained_bytes),
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

/// The procs table, what its columns mean, and the notes.
pub fn procs(acc: &Accounted, f: &ProcQuery, ro: &RenderOptions) -> String {
    let rows = proc_rows(acc, f);
    let by_cgroup = f.by == Some(GroupBy::Cgroup);
    let cols = f.columns();
    let mut t = columns_table(&cols, ProcColumn::header, ProcColumn::align);
    let b = |v| ro.units.bytes(v);
    for r in &rows {
        t.add_row(
            cols.iter()
                .map(|c| cell_text(&c.cell(r), ro.units))
                .collect::<Vec<_>>(),
        );
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
        out.push_str(&super::cgroups::table_footer(acc, &rows, ro.units));
    }
    out.push_str(&notes(acc, ro));
    out
}
