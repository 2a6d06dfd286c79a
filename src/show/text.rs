//! `shmwho show` for a terminal.

use super::{group, picture, words};
use crate::account;
use crate::account::show::{ObjectView, ProcessView};
use crate::collect::pagemap::{PageRanges, Unread};
use crate::model::{Object, Snapshot, Via};
use crate::render::fit;
use crate::render::table::{finish_lines, plain_table};
use crate::render::units::{escape, Units};
use crate::render::RenderOptions;
use crate::report::{dev_text, holder_text, object_id, object_name, Align, Column, KEEP};
use comfy_table::Table;
use std::fmt::Write as _;

/// A process title inside a line of text (owner, charges) is cut to this many characters: a
/// PHP-FPM or JVM command line would otherwise take the screen.
const TITLE_IN_LINE: usize = 48;

/// Columns of the holders table, fitted to the width as the listing tables are.
#[derive(Clone, Copy, PartialEq)]
enum HolderColumn {
    Pid,
    Command,
    Holds,
    InPageTables,
    Pss,
    Pages,
}

impl Column for HolderColumn {
    const ALL: &'static [Self] = &[
        HolderColumn::Pid,
        HolderColumn::Command,
        HolderColumn::Holds,
        HolderColumn::InPageTables,
        HolderColumn::Pss,
        HolderColumn::Pages,
    ];
    fn header(self) -> &'static str {
        match self {
            HolderColumn::Pid => "PID",
            HolderColumn::Command => "COMMAND",
            HolderColumn::Holds => "HOLDS",
            HolderColumn::InPageTables => "IN PAGE TABLES",
            HolderColumn::Pss => "PSS",
            HolderColumn::Pages => "PAGES IN PAGE TABLES (object page numbers)",
        }
    }
    fn key(self) -> Option<&'static str> {
        None
    }
    fn align(self) -> Align {
        match self {
            HolderColumn::Pid | HolderColumn::InPageTables | HolderColumn::Pss => Align::Right,
            _ => Align::Left,
        }
    }
    fn priority(self) -> u8 {
        match self {
            HolderColumn::Pid | HolderColumn::InPageTables => KEEP,
            HolderColumn::Command => 150,
            HolderColumn::Pss => 120,
            HolderColumn::Holds => 100,
            HolderColumn::Pages => 90,
        }
    }
    fn elidable(self) -> bool {
        matches!(
            self,
            HolderColumn::Command | HolderColumn::Holds | HolderColumn::Pages
        )
    }
}

fn table(header: &[&str], right: &[usize]) -> Table {
    plain_table(header, |i| right.contains(&i))
}

fn finish(t: &Table) -> String {
    finish_lines(t)
}

fn comm(snap: &Snapshot, pid: i32) -> String {
    snap.process(pid)
        .map_or_else(String::new, |p| escape(p.label()))
}

/// `0-16383, 20000 (+3 more runs)`; `-` when empty.
pub fn ranges_text(r: &PageRanges, max: usize) -> String {
    if r.is_empty() {
        return "-".to_string();
    }
    let mut parts: Vec<String> = r
        .runs()
        .iter()
        .take(max)
        .map(|&(first, count)| {
            if count == 1 {
                first.to_string()
            } else {
                format!("{first}-{}", first + count - 1)
            }
        })
        .collect();
    if r.runs().len() > max {
        parts.push(format!("(+{} more runs)", r.runs().len() - max));
    }
    parts.join(", ")
}

fn holds(via: &Via) -> String {
    match *via {
        Via::Map { offset, .. } => format!("{} offset {offset}", holder_text(via)),
        Via::Fd { .. } => holder_text(via),
    }
}

fn unread_text(u: Unread) -> &'static str {
    match u {
        Unread::Vanished => "exited",
        Unread::Denied => "pagemap: permission denied",
        Unread::Stuck => "pagemap did not answer: its memory map is locked",
    }
}

/// Kind, identity and figures, with the estimate marked.
fn header(snap: &Snapshot, acc: &account::Accounted, i: usize, ro: &RenderOptions) -> String {
    let o: &Object = &snap.objects[i];
    let b = |v| ro.units.bytes(v);
    let mark = if o.is_exact() { "" } else { "~" };
    let mut s = String::new();
    let dev = o
        .dev
        .map(|d| format!(", dev {}", dev_text(d)))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "{} {}  {}{dev}{}",
        o.kind().as_str(),
        object_id(o),
        escape(&object_name(o)),
        acc.labels[i]
            .as_deref()
            .map(|l| format!("  [{}]", escape(l)))
            .unwrap_or_default()
    );
    let owner = acc.owners[i]
        .map(|pid| format!("{pid} {}", fit::elide(&comm(snap, pid), TITLE_IN_LINE)))
        .unwrap_or_else(|| "nobody (no holder, no living SysV creator)".to_string());
    let _ = writeln!(
        s,
        "size {mark}{}   resident {mark}{}   swapped {mark}{}   {}   owner {owner}",
        b(o.size_bytes),
        b(o.resident_bytes),
        b(o.swap_bytes),
        if o.is_exact() { "exact" } else { "estimate" },
    );
    if let Some(r) = o.accuracy.estimate() {
        let _ = writeln!(s, "~ estimate: {}.", r.explain());
    }
    fit::wrap(&s, ro.width)
}

/// The object page: figures, holders, the picture of its pages, orphaned pages. `acc` is the
/// snapshot with the view's PSS, accounted under the policy asked for.
pub fn object(
    acc: &account::Accounted,
    view: &ObjectView,
    width: usize,
    ro: &RenderOptions,
) -> String {
    let snap = acc.snapshot;
    let policy = acc.policy;
    let o = &snap.objects[view.index];
    let b = |v| ro.units.bytes(v);
    let page = view.page_size;
    let mut s = header(snap, acc, view.index, ro);
    let charges: Vec<String> = acc.charges[view.index]
        .iter()
        .map(|&(pid, v)| {
            format!(
                "{pid} {} {}",
                fit::elide(&comm(snap, pid), TITLE_IN_LINE),
                b(v)
            )
        })
        .collect();
    if !charges.is_empty() {
        let line = format!(
            "charged under '{}': {}\n",
            policy.as_str(),
            charges.join(", ")
        );
        s.push_str(&fit::wrap(&line, ro.width));
    }

    // Holders.
    s.push('\n');
    if o.holders.is_empty() {
        let _ = writeln!(s, "HOLDERS  {}", words::no_holders(snap, o));
    } else {
        let _ = writeln!(s, "HOLDERS");
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (h, hv) in o.holders.iter().zip(&view.holders) {
            let (mapped, pss, pages) = match (&h.via, &hv.mapped, hv.unread) {
                (Via::Fd { .. }, _, _) => {
                    ("-".into(), "-".into(), "an fd has no page tables".into())
                }
                (_, Some(r), _) => (
                    b(r.pages() * page),
                    hv.pss_bytes.map_or("-".into(), b),
                    ranges_text(r, 3),
                ),
                (_, None, u) => (
                    "?".into(),
                    "?".into(),
                    u.map_or("unread", unread_text).to_string(),
                ),
            };
            rows.push(vec![
                h.pid.to_string(),
                comm(snap, h.pid),
                holds(&h.via),
                mapped,
                pss,
                pages,
            ]);
        }
        s.push_str(&crate::render::table::fitted_table(
            HolderColumn::ALL,
            rows,
            ro,
            false,
            "--json",
        ));
        let hidden = o.hidden_attaches();
        if hidden > 0 {
            let _ = writeln!(
                s,
                "+ {hidden} more attach(es) counted by the kernel (nattch {}), not visible: {} process(es) could not be read",
                o.sysv().map_or(0, |g| g.nattch),
                snap.notes.unreadable
            );
        }
    }

    // The picture.
    s.push('\n');
    s.push_str(&picture_text(snap, view, width, ro));
    let _ = writeln!(
        s,
        "\nVERDICT\n{}",
        escape(&words::object_verdict(acc, view, ro.units))
    );
    s
}

fn picture_text(snap: &Snapshot, view: &ObjectView, width: usize, ro: &RenderOptions) -> String {
    let o = &snap.objects[view.index];
    let b = |v| ro.units.bytes(v);
    let page = view.page_size;
    let pages = view.pages;
    let mut s = String::new();
    if pages == 0 {
        let _ = writeln!(s, "PICTURE  none: the object is empty (size 0)");
        return s;
    }
    let mut rows: Vec<(String, Result<PageRanges, String>)> = Vec::new();
    match &view.residency {
        Ok(r) => {
            rows.push(("resident".into(), Ok(r.resident.clone())));
            if view.swap_in_use || !r.swapped.is_empty() {
                rows.push(("swapped".into(), Ok(r.swapped.clone())));
            }
        }
        Err(why) => rows.push(("resident".into(), Err(format!("unknown: {why}")))),
    }
    for (h, hv) in o.holders.iter().zip(&view.holders) {
        let label = format!("{} {}", h.pid, comm(snap, h.pid));
        let strip = match (&h.via, &hv.mapped, hv.unread) {
            (Via::Fd { fd }, _, _) => Err(format!("(holds fd {fd}: no page tables)")),
            (_, Some(r), _) => Ok(r.clone()),
            (_, None, u) => Err(format!("({})", u.map_or("unread", unread_text))),
        };
        rows.push((label, strip));
    }
    if let Some(orph) = &view.orphaned {
        rows.push(("orphaned".into(), Ok(orph.clone())));
    }
    let label_w = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 20);
    let size_w = 11;
    let avail = width.saturating_sub(label_w + 2 + 2 + size_w).max(8);
    let cols = picture::columns(pages, avail);
    let per_col = pages as f64 / cols as f64;
    let col_text = if pages.is_multiple_of(cols as u64) {
        let n = pages / cols as u64;
        format!("{n} page(s), {}", b(n.saturating_mul(page)))
    } else {
        format!("~{per_col:.1} pages")
    };
    let _ = writeln!(
        s,
        "PICTURE  {pages} pages of {}; one column = {col_text}",
        b(page)
    );
    let size = pages.saturating_mul(page);
    let (labels, line) = picture::ruler(cols, &|q| {
        if q == 0 {
            "0".to_string()
        } else {
            ro.units
                .bytes((u128::from(size) * u128::from(q) / 4) as u64)
        }
    });
    let pad = " ".repeat(label_w + 2);
    let _ = writeln!(s, "{pad}{labels}");
    let _ = writeln!(s, "{pad}{line}");
    for (label, strip) in &rows {
        let label: String = escape(label).chars().take(label_w).collect();
        match strip {
            Ok(r) => {
                let _ = writeln!(
                    s,
                    "{label:<label_w$}  {}  {:>size_w$}",
                    picture::strip(r, pages, cols),
                    b(r.pages() * page)
                );
            }
            Err(why) => {
                let _ = writeln!(s, "{label:<label_w$}  {why}");
            }
        }
    }
    let g = picture::GLYPHS;
    let _ = writeln!(
        s,
        "{} every page of the column  {} two thirds or more  {} a third or more  {} some  {} none",
        g[4], g[3], g[2], g[1], g[0]
    );
    if let Some(orph) = &view.orphaned {
        if !orph.is_empty() {
            let _ = writeln!(
                s,
                "\norphaned: {} resident in no live process's page tables (pages {}): what wrote them has exited or unmapped it, or wrote with write() rather than through a mapping.",
                b(orph.pages() * page),
                ranges_text(orph, 3)
            );
        }
    }
    if let (Err(_), Some(orph)) = (&view.residency, view.orphaned_bytes(o)) {
        let _ = writeln!(
            s,
            "\norphaned: all {}{} resident: no {}process maps it.",
            if o.is_exact() { "" } else { "~" },
            b(orph),
            if snap.complete() { "" } else { "visible " }
        );
    }
    if let Ok(r) = &view.residency {
        if !r.exact(view.swap_in_use) {
            let _ = writeln!(
                s,
                "~ resident and swapped pages are an estimate here (method {:?}): see docs/show.md.",
                r.method
            );
        }
    }
    s
}

/// The one line a sysadmin can paste into a ticket.
pub fn verdict(acc: &account::Accounted, view: &ProcessView, units: Units) -> String {
    let snap = acc.snapshot;
    let b = |v| units.bytes(v);
    let Some(p) = snap.process(view.pid) else {
        return format!("process {} exited", view.pid);
    };
    // Named as the owner and charge lines name it: the title a server gives itself
    // ("php-fpm: master process (...)"), cut as titles inside a line are.
    let who = format!("{} {}", fit::elide(p.label(), TITLE_IN_LINE), p.pid);
    let owned: u64 = view
        .owned()
        .map(|o| snap.objects[o.view.index].resident_bytes)
        .sum();
    let orphaned: u64 = view
        .owned()
        .filter_map(|o| o.view.orphaned_bytes(&snap.objects[o.view.index]))
        .sum();
    if owned > 0 {
        let mut v = format!(
            "{who} owns {} of shared memory that ps shows as {} RSS",
            b(owned),
            b(p.rss_bytes)
        );
        if orphaned > 0 {
            // Its owner is alive (this process): pages nobody maps now are what a cache or
            // pool keeps (an opcache filled by recycled workers), not a leak.
            let mut kept: Vec<&str> = view
                .owned()
                .filter(|o| {
                    o.view
                        .orphaned_bytes(&snap.objects[o.view.index])
                        .is_some_and(|v| v > 0)
                })
                .filter_map(|o| acc.labels[o.view.index].as_deref())
                .collect();
            kept.dedup();
            let what = if kept.is_empty() {
                "a cache or pool it keeps".to_string()
            } else {
                format!("the {} it keeps", kept.join(", "))
            };
            let _ = write!(
                v,
                "; {} of it is in no live process's page tables, which is normal for {what}: freed when it exits or resets it, not a leak",
                b(orphaned)
            );
        }
        if snap
            .notes
            .unreadable_processes
            .iter()
            .any(|u| u.pid == p.pid)
        {
            let _ = write!(
                v,
                "; it could not be read, so what else is in its {} RssShmem is hidden",
                b(p.rss_shmem_bytes)
            );
        }
        return v;
    }
    let held: Vec<_> = view.objects.iter().filter(|o| !o.held.is_empty()).collect();
    if !held.is_empty() {
        let mapped: u64 = held.iter().filter_map(|o| o.mapped_bytes).sum();
        let pss: u64 = held.iter().filter_map(|o| o.pss_bytes).sum();
        return format!(
            "{who} owns no shared memory; it maps {} of {} object(s) owned by others (its fair share, PSS: {}), counted in its {} RSS",
            b(mapped),
            held.len(),
            b(pss),
            b(p.rss_bytes)
        );
    }
    if let Some(u) = snap
        .notes
        .unreadable_processes
        .iter()
        .find(|u| u.pid == p.pid)
    {
        let why = match u.reason {
            crate::model::UnreadableReason::OtherUser => {
                "it is another user's process: reading its maps needs root or CAP_SYS_PTRACE"
            }
            crate::model::UnreadableReason::NotDumpable => {
                "it is not dumpable (setuid, or a service that switched users): only root may read its maps"
            }
            crate::model::UnreadableReason::DeniedToRoot => {
                "its maps are refused even to root (another user namespace, or a security module)"
            }
        };
        return format!(
            "{who} could not be read: its status shows {} of shared memory mapped (RssShmem) in its {} RSS, but which objects those are is hidden: {why}",
            b(p.rss_shmem_bytes),
            b(p.rss_bytes)
        );
    }
    format!(
        "{who} has no shared memory: its {} RSS is {} private anonymous and {} file-backed",
        b(p.rss_bytes),
        b(p.rss_anon_bytes),
        b(p.rss_file_bytes)
    )
}

/// The process page: its memory by kind, its shared objects, its charges, a verdict. `acc` is
/// the snapshot with the views' PSS, accounted under `owner`.
pub fn process(acc: &account::Accounted, view: &ProcessView, ro: &RenderOptions) -> String {
    let snap = acc.snapshot;
    let b = |v| ro.units.bytes(v);
    let Some(p) = snap.process(view.pid) else {
        return format!("process {} exited\n", view.pid);
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "PROCESS  {} {}  (user {}, parent {})",
        p.pid,
        escape(p.label()),
        escape(&p.user),
        p.ppid
    );
    let _ = writeln!(s, "\nMEMORY (/proc/{}/status)", p.pid);
    let mut t = table(&["", "", ""], &[1]);
    t.add_row(vec![
        "private anonymous".to_string(),
        b(p.rss_anon_bytes),
        "RssAnon".into(),
    ]);
    t.add_row(vec![
        "file-backed".to_string(),
        b(p.rss_file_bytes),
        "RssFile".into(),
    ]);
    t.add_row(vec![
        "shared memory in its page tables".to_string(),
        b(p.rss_shmem_bytes),
        "RssShmem: pages of the objects below that it has faulted in".into(),
    ]);
    t.add_row(vec![
        "swapped out".to_string(),
        b(p.swap_bytes),
        "VmSwap: private pages; swapped shared memory is counted with its object".into(),
    ]);
    let text = finish(&t);
    s.extend(text.lines().skip(1).map(|l| format!("{l}\n")));

    let _ = writeln!(s, "\nSHARED OBJECTS IT MAPS, HOLDS OR OWNS");
    if view.objects.is_empty() {
        let _ = writeln!(s, "none");
    } else if view.objects.len() > group::GROUP_ABOVE {
        s.push_str(&group::objects_table(acc, view, ro));
    } else {
        let mut t = table(
            &[
                "KIND",
                "ID",
                "NAME",
                "HOLDS",
                "IN ITS PAGE TABLES",
                "ITS PSS",
                "OBJECT RESIDENT",
                "ORPHANED",
                "OWNER",
            ],
            &[4, 5, 6, 7],
        );
        for po in &view.objects {
            let o = &snap.objects[po.view.index];
            let holds_text = if po.held.is_empty() {
                "- (owner only)".to_string()
            } else {
                po.held
                    .iter()
                    .map(|&h| holds(&o.holders[h].via))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let mark = if o.is_exact() { "" } else { "~" };
            t.add_row(vec![
                o.kind().as_str().to_string(),
                object_id(o),
                match &acc.labels[po.view.index] {
                    Some(l) => escape(&format!("{l}: {}", object_name(o))),
                    None => escape(&object_name(o)),
                },
                holds_text,
                po.mapped_bytes.map_or("-".into(), b),
                po.pss_bytes.map_or("-".into(), b),
                format!("{mark}{}", b(o.resident_bytes)),
                po.view.orphaned_bytes(o).map_or("?".into(), b),
                acc.owners[po.view.index].map_or("-".into(), |pid| {
                    if pid == p.pid {
                        "this process".to_string()
                    } else {
                        format!("{pid} {}", comm(snap, pid))
                    }
                }),
            ]);
        }
        s.push_str(&finish(&t));
    }

    let _ = writeln!(
        s,
        "\nCHARGED (its SHARED column in `shmwho procs` under each --charge)"
    );
    let charged: Vec<String> = view
        .charged
        .iter()
        .map(|&(pol, v)| format!("{} {}", pol.as_str(), b(v)))
        .collect();
    let _ = writeln!(s, "{}", charged.join("   "));
    let owned_objects: Vec<_> = view.owned().collect();
    let owned: Vec<String> = if owned_objects.len() > group::GROUP_ABOVE {
        vec![group::owned_summary(acc, &owned_objects, ro)]
    } else {
        owned_objects
            .iter()
            .map(|o| {
                let obj = &snap.objects[o.view.index];
                format!(
                    "{} {} ({} resident)",
                    obj.kind().as_str(),
                    object_id(obj),
                    b(obj.resident_bytes)
                )
            })
            .collect()
    };
    let _ = writeln!(
        s,
        "\nOWNS  {}",
        if owned.is_empty() {
            "nothing".to_string()
        } else {
            owned.join(", ")
        }
    );
    let _ = writeln!(s, "\nVERDICT\n{}", escape(&verdict(acc, view, ro.units)));
    // Broken between words to the width (the title, the explanations): never inside a figure.
    fit::wrap(&s, ro.width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_page_numbers() {
        let r = PageRanges::from_runs([(0, 16384), (20000, 1), (30000, 2), (40000, 5)]);
        assert_eq!(ranges_text(&r, 2), "0-16383, 20000, (+2 more runs)");
        assert_eq!(
            ranges_text(&r, 4),
            "0-16383, 20000, 30000-30001, 40000-40004"
        );
        assert_eq!(ranges_text(&PageRanges::new(), 3), "-");
    }
}
