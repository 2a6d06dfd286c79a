//! The per-cgroup reconciliation below `procs --by cgroup`: shmwho's charges under every policy
//! next to the kernel's own `memory.stat` `shmem` of each cgroup.

use crate::account::cgroup::{by_cgroup, CgroupRow, NOTE};
use crate::account::Accounted;
use crate::model::CgroupVersion;
use crate::report::{CgroupColumn, ProcRow};
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

/// Footer of the table, fitted to `ro`'s width as the tables above it.
pub fn table_footer(acc: &Accounted, rows: &[ProcRow], ro: &super::RenderOptions) -> String {
    let cgs = shown(acc, rows);
    let cols = CgroupColumn::table(acc.snapshot.with_smaps);
    let cells = cgs
        .iter()
        .map(|c| {
            cols.iter()
                .map(|col| super::table::cell_text(&col.cell(c), ro.units))
                .collect()
        })
        .collect();
    let mut heading = String::new();
    let _ = writeln!(
        heading,
        "\nShared memory per memory cgroup: shmwho's charges against the kernel's memory.stat shmem ({}):",
        version_name(&cgs)
    );
    let mut out = super::fit::wrap(&heading, ro.width);
    // -o chooses the columns of the procs table above; --json has every column of this one.
    out.push_str(&super::table::fitted_table(
        &cols, cells, ro, false, "--json",
    ));
    out.push_str(&super::fit::wrap(
        &format!("{NOTE}\n"),
        Some(ro.width.unwrap_or(100).clamp(20, 100)),
    ));
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
