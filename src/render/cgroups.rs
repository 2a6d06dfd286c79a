//! The per-cgroup reconciliation below `procs --by cgroup`: shmwho's charges under every policy
//! next to the kernel's own `memory.stat` `shmem` of each cgroup.

use super::units::{escape, Units};
use crate::account::cgroup::{by_cgroup, CgroupRow, NOTE};
use crate::account::Accounted;
use crate::model::CgroupVersion;
use crate::report::ProcRow;
use comfy_table::{presets::NOTHING, CellAlignment, Table};
use std::fmt::Write as _;

/// Cgroups of the rows shown (all their processes count, not only the ones a filter kept: the
/// kernel's figure is for the whole cgroup).
fn shown(acc: &Accounted, rows: &[ProcRow]) -> Vec<CgroupRow> {
    by_cgroup(acc)
        .into_iter()
        .filter(|c| {
            rows.iter()
                .any(|r| r.cgroup.as_deref() == c.path.as_deref())
        })
        .collect()
}

fn version_name(rows: &[CgroupRow]) -> &'static str {
    match rows.iter().find_map(|r| r.version) {
        Some(CgroupVersion::V1) => "cgroup v1 memory controller",
        Some(CgroupVersion::V2) => "cgroup v2",
        None => "no memory cgroup hierarchy readable",
    }
}

/// Footer of the table.
pub fn table_footer(acc: &Accounted, rows: &[ProcRow], units: Units) -> String {
    let cgs = shown(acc, rows);
    let touched = acc.snapshot.with_smaps;
    let mut header = vec!["CGROUP", "PROCS", "OWNER", "SPLIT"];
    if touched {
        header.push("TOUCHED");
    }
    header.extend(["KERNEL", "KERNEL-OWNER"]);
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(header.clone());
    for i in 0..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_padding((0, 2));
            if i > 0 {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    let b = |v: u64| units.bytes(v);
    for c in &cgs {
        let mut cells = vec![
            escape(c.path.as_deref().unwrap_or("- (unreadable)")),
            c.processes.to_string(),
            b(c.owner_bytes),
            b(c.split_bytes),
        ];
        if touched {
            cells.push(c.touched_bytes.map_or("-".into(), b));
        }
        cells.push(c.kernel_shmem_bytes.map_or("-".into(), b));
        cells.push(
            c.kernel_minus_owner()
                .map_or("-".into(), |d| units.signed(d)),
        );
        t.add_row(cells);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nShared memory per memory cgroup: shmwho's charges against the kernel's memory.stat shmem ({}):",
        version_name(&cgs)
    );
    for l in t.to_string().lines() {
        let _ = writeln!(out, "{}", l.trim_end());
    }
    out.push_str(&wrap(NOTE, 100));
    out
}

/// Words of `text` on lines of at most `width` columns.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split(' ') {
        if line > 0 && line + 1 + word.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out.push('\n');
    out
}

pub(crate) use crate::schema::CgroupDoc;

pub(crate) fn json_docs(acc: &Accounted, rows: &[ProcRow]) -> Vec<CgroupDoc> {
    shown(acc, rows)
        .into_iter()
        .map(|c| CgroupDoc {
            kernel_minus_owner_bytes: c.kernel_minus_owner(),
            cgroup: c.path,
            version: c.version,
            processes: c.processes,
            shared_charged_bytes: c.charged_bytes,
            owner_bytes: c.owner_bytes,
            split_bytes: c.split_bytes,
            touched_bytes: c.touched_bytes,
            kernel_shmem_bytes: c.kernel_shmem_bytes,
        })
        .collect()
}
