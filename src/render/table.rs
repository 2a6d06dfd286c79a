//! Plain aligned tables for a terminal, with a footer that reconciles with the kernel.

use super::units::{escape, Units};
use super::{fit, RenderOptions};
use crate::account::Accounted;
use crate::model::EstimateReason;
use crate::report::{
    proc_rows, select_objects, Align, Cell, Column, GroupBy, ObjectColumn, ObjectQuery, ProcQuery,
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

/// `rows` of `columns` fitted to the width, as a table (header unless `--no-headings`),
/// followed by the line naming the columns left out and what shows them (`-o`, or `--json`
/// for a table whose columns `-o` does not choose).
pub(crate) fn fitted_table<C: Column>(
    columns: &[C],
    rows: Vec<Vec<String>>,
    ro: &RenderOptions,
    pinned: bool,
    shows_dropped: &str,
) -> String {
    let f = fit::fit(columns, rows, ro.width, pinned);
    let mut t = columns_table(&f.columns, |c: C| c.header(), |c: C| c.align());
    if ro.no_headings {
        // comfy-table has no header-less mode that keeps column styles: an empty header row
        // is dropped below.
        t.set_header(vec![""; f.columns.len()]);
    }
    for r in &f.rows {
        t.add_row(r.clone());
    }
    let mut out = finish_lines(&t);
    if ro.no_headings {
        out = out.lines().skip(1).map(|l| format!("{l}\n")).collect();
    }
    out.push_str(&f.dropped_line(ro.width, shows_dropped));
    out
}

/// The objects table and its footer.
pub fn objects(acc: &Accounted, f: &ObjectQuery, ro: &RenderOptions) -> String {
    let cols = ro
        .object_columns
        .clone()
        .unwrap_or_else(|| ObjectColumn::TABLE.to_vec());
    let shown = select_objects(acc, f);
    let rows = shown
        .iter()
        .map(|&i| {
            cols.iter()
                .map(|c| cell_text(&c.cell(acc, i), ro.units))
                .collect()
        })
        .collect();
    let mut out = if shown.is_empty() {
        "no shared-memory objects match\n".to_string()
    } else {
        fitted_table(&cols, rows, ro, ro.object_columns.is_some(), "-o")
    };
    out.push('\n');
    out.push_str(&footer(acc, ro));
    out
}

/// Columns of the footer's reconciliation: what, how much, why.
#[derive(Clone, Copy, PartialEq)]
enum FooterColumn {
    Label,
    Figure,
    Why,
}

impl Column for FooterColumn {
    const ALL: &'static [Self] = &[FooterColumn::Label, FooterColumn::Figure, FooterColumn::Why];
    fn header(self) -> &'static str {
        ""
    }
    fn key(self) -> Option<&'static str> {
        None
    }
    fn align(self) -> Align {
        if self == FooterColumn::Figure {
            Align::Right
        } else {
            Align::Left
        }
    }
    fn priority(self) -> u8 {
        if self == FooterColumn::Why {
            1
        } else {
            crate::report::KEEP
        }
    }
    fn elidable(self) -> bool {
        self == FooterColumn::Label
    }
}

/// The reconciliation with `Shmem` and what the scan could not see.
fn footer(acc: &Accounted, ro: &RenderOptions) -> String {
    let r = &acc.reconciliation;
    let snap = acc.snapshot;
    let b = |v| ro.units.bytes(v);
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.push(vec![
        "Shmem (/proc/meminfo)".to_string(),
        b(r.shmem_bytes),
        String::new(),
    ]);
    rows.push(vec![
        format!("  objects ({})", snap.objects.len()),
        b(r.objects_bytes),
        // "Nobody" only when every process was read: an unread one may hold it.
        if snap.complete() {
            format!(
                "{} of it owned by nobody (no holder, no living SysV creator)",
                b(acc.unheld_bytes)
            )
        } else {
            format!(
                "{} of it owned by no visible process (no holder seen, no living SysV creator)",
                b(acc.unheld_bytes)
            )
        },
    ]);
    for m in &r.mounts {
        if let Some(u) = m.unheld_files_bytes {
            if u > 0 {
                rows.push(vec![
                    format!(
                        "  {} on {}",
                        // Unheld only when every process was read.
                        if snap.complete() {
                            "unheld files"
                        } else {
                            "unlisted files"
                        },
                        escape(&m.mount_point.to_string_lossy())
                    ),
                    b(u),
                    format!(
                        "statfs of the {}mount{} less the files listed above{}",
                        if m.hidden { "hidden " } else { "" },
                        mount_where(m),
                        if snap.complete() {
                            ""
                        } else {
                            "; processes that could not be read may hold them"
                        }
                    ),
                ]);
            }
        }
    }
    // Processes that could not be read map shared memory the list may miss: their RssShmem
    // (from status) is a lower bound of it, said apart from the rest of the unexplained.
    let unread = &snap.notes.unreadable_processes;
    let unread_bytes = snap.unreadable_rss_shmem_bytes();
    let mut rest = r.unexplained_bytes;
    if unread_bytes > 0 && r.unexplained_bytes > 0 {
        let part = unread_bytes.min(r.unexplained_bytes as u64);
        rest -= part as i64;
        let largest = &unread[0];
        rows.push(vec![
            "  unexplained, unreadable".to_string(),
            format!("≥ {}", b(part)),
            format!(
                "mapped by {} process(es) that could not be read (largest: pid {} {} {})",
                unread.iter().filter(|p| p.rss_shmem_bytes > 0).count(),
                largest.pid,
                escape(&largest.comm),
                b(largest.rss_shmem_bytes)
            ),
        ]);
    }
    rows.push(vec![
        "  unexplained".to_string(),
        ro.units.signed(rest),
        unexplained_causes(&r.causes, rest, ro),
    ]);
    let h = &r.hugetlb;
    let huge_objects = snap.objects.iter().filter(|o| o.hugetlb()).count();
    // Huge pages are not in Shmem: their own reconciliation, when the host uses any.
    if h.used_bytes > 0 || h.reserved_bytes > 0 || huge_objects > 0 {
        rows.push(vec![
            "Huge pages in use (/sys/kernel/mm/hugepages)".to_string(),
            b(h.used_bytes),
            format!("{} more reserved, not faulted in yet", b(h.reserved_bytes)),
        ]);
        rows.push(vec![
            format!("  hugetlb objects ({huge_objects})"),
            b(h.explained_bytes),
            "MAP_HUGETLB, MFD_HUGETLB, SHM_HUGETLB, hugetlbfs files".to_string(),
        ]);
        rows.push(vec![
            "  unexplained".to_string(),
            ro.units.signed(h.unexplained_bytes),
            "private MAP_HUGETLB mappings, processes not read, other namespaces".to_string(),
        ]);
    }
    // The explanations go first when the width is short; the dropped-columns line would only
    // confuse here.
    let f = fit::fit(FooterColumn::ALL, rows, ro.width, false);
    let mut t = columns_table(
        &f.columns,
        |c: FooterColumn| c.header(),
        |c: FooterColumn| c.align(),
    );
    for r in f.rows {
        t.add_row(r);
    }
    // The empty header row comfy-table prints first is dropped.
    let text = finish(&t);
    let mut out: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    out.push_str(&fit::wrap(&notes(acc, ro), ro.width));
    out
}

/// ` in mount namespace N (container C)`, or nothing for our own.
fn mount_where(m: &crate::account::reconcile::MountRest) -> String {
    match (m.namespace, &m.container) {
        (None, _) => String::new(),
        (Some(ns), None) => format!(" in mount namespace {ns}"),
        (Some(ns), Some(c)) => format!(" in mount namespace {ns} (container {})", escape(c)),
    }
}

/// What the unexplained part comes from, by cause.
fn unexplained_causes(
    c: &crate::account::reconcile::Causes,
    unexplained: i64,
    ro: &RenderOptions,
) -> String {
    let drift = format!(
        "per-CPU counter drift (up to ±{})",
        ro.units.bytes(c.drift_bytes)
    );
    if c.drift_bytes > 0 && c.within_drift(unexplained) {
        return format!("within {drift}");
    }
    let mut causes = Vec::new();
    if c.unreadable_processes > 0 {
        causes.push(format!(
            "objects of {} unreadable process(es)",
            c.unreadable_processes
        ));
    }
    if c.ipc_namespaces_not_entered > 0 {
        causes.push(format!(
            "unattached SysV segments of {} IPC namespace(s) not entered",
            c.ipc_namespaces_not_entered
        ));
    }
    if c.mounts_not_measured > 0 {
        causes.push(format!(
            "files on {} tmpfs mount(s) not measured",
            c.mounts_not_measured
        ));
    }
    if causes.is_empty() {
        // Nothing the scan missed: what no /proc file names.
        causes.push("memfds in flight in sockets, GPU buffers".to_string());
    }
    if c.drift_bytes > 0 {
        causes.push(drift);
    }
    causes.join("; ")
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
            "  For exact figures run as root, or:\n    sudo setcap cap_checkpoint_restore,cap_sys_ptrace,cap_dac_read_search+ep $(command -v shmwho)"
        );
    }
    if n.unreadable > 0 {
        let own_undumpable = n
            .unreadable_processes
            .iter()
            .any(|p| p.reason == crate::model::UnreadableReason::NotDumpable);
        let why = if ro.euid == 0 {
            "permission denied even to root: another user namespace, or a security module"
        } else if own_undumpable {
            "some are your own user's but not dumpable (setuid, or a service that switched to your user, like php-fpm workers): only root may read them; other users' processes need root or CAP_SYS_PTRACE"
        } else {
            "other users' processes need root or CAP_SYS_PTRACE"
        };
        let _ = writeln!(
            out,
            "note: {} process(es) could not be read ({why}); objects only they hold are not listed.",
            n.unreadable
        );
    }
    for s in &n.stuck {
        let _ = writeln!(
            out,
            "note: pid {} ({}): /proc/{}/{} did not answer in {}: its memory map is locked{}.",
            s.pid,
            escape(&s.comm),
            s.pid,
            s.file,
            crate::render::duration(n.stuck_timeout),
            if s.file == "maps" || s.file == "smaps" {
                "; the process is left out, its objects measured through other holders"
            } else {
                ""
            }
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
    let cols = ro.proc_columns.clone().unwrap_or_else(|| f.columns());
    let b = |v| ro.units.bytes(v);
    let cells = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| cell_text(&c.cell(r), ro.units))
                .collect()
        })
        .collect();
    let mut out = if rows.is_empty() {
        "no processes match\n".to_string()
    } else {
        fitted_table(&cols, cells, ro, ro.proc_columns.is_some(), "-o")
    };
    let charged = crate::size::sum_bytes(acc.per_process.values().copied());
    // The prose below the table, broken between words to the width as the table is fitted.
    let mut prose = String::new();
    let _ = writeln!(
        prose,
        "\nSHARED is charged under '{}': {} to processes + {} owned by nobody = {}, the resident size of all {} objects (shmwho objects).",
        acc.policy.as_str(),
        b(charged),
        b(acc.unheld_bytes),
        b(charged.saturating_add(acc.unheld_bytes)),
        acc.snapshot.objects.len()
    );
    let _ = writeln!(prose, "TOTAL = ANON (private anonymous) + SHARED.");
    if let Some(ex) = &f.exact {
        prose.push_str(&exact_footer(ex));
    }
    out.push_str(&fit::wrap(&prose, ro.width));
    if by_cgroup {
        out.push_str(&super::cgroups::table_footer(acc, &rows, ro));
    }
    if f.by == Some(GroupBy::Pod) {
        out.push_str(&super::pods::table_footer(acc, &rows, ro));
    }
    out.push_str(&fit::wrap(&notes(acc, ro), ro.width));
    out
}
