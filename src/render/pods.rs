//! The per-pod table below `procs --by pod`: shmwho's charges next to the kernel's
//! `memory.stat` shmem of each pod's cgroup, and each pod's `/dev/shm` used against its size
//! limit.

use crate::account::pods::{by_pod, PodRow};
use crate::account::Accounted;
use crate::report::{Column, PodColumn, ProcRow};
use crate::schema::{PodDoc, PodVolumeDoc};
use std::fmt::Write as _;

/// What the table explains once, below it.
pub const NOTE: &str = "KERNEL is memory.stat shmem of the pod's cgroup and its containers' (the kernel charges a shmem page to the cgroup that first touched it). SHM-USED and SHM-LIMIT are statfs of the tmpfs the containers mount at /dev/shm (an emptyDir with medium Memory, or the runtime's): a write or ftruncate past SHM-FREE fails (PostgreSQL: \"could not resize shared memory segment\"). The JSON lists every memory-backed volume.";

/// Pods of the rows shown (all their processes count: the kernel's figure is the whole pod's).
fn shown(acc: &Accounted, rows: &[ProcRow]) -> Vec<PodRow> {
    by_pod(acc)
        .into_iter()
        .filter(|p| {
            rows.iter()
                .any(|r| r.workload.pod_uid.as_deref() == Some(p.pod_uid.as_str()))
        })
        .collect()
}

/// Footer of the table, fitted to `ro`'s width as the tables above it.
pub fn table_footer(acc: &Accounted, rows: &[ProcRow], ro: &super::RenderOptions) -> String {
    let pods = shown(acc, rows);
    let mut out = String::new();
    if pods.is_empty() {
        out.push_str("\nNo listed process runs in a Kubernetes pod (no kubepods cgroup).\n");
        return out;
    }
    let cols = PodColumn::ALL;
    let cells = pods
        .iter()
        .map(|p| {
            cols.iter()
                .map(|col| super::table::cell_text(&col.cell(p), ro.units))
                .collect()
        })
        .collect();
    let _ = writeln!(
        out,
        "\nShared memory per pod: shmwho's charges against the kernel's memory.stat shmem, and /dev/shm used against its limit:"
    );
    // -o chooses the columns of the procs table above; --json has every column of this one.
    out.push_str(&super::table::fitted_table(
        cols, cells, ro, false, "--json",
    ));
    out.push_str(&super::fit::wrap(
        &format!("{NOTE}\n"),
        Some(ro.width.unwrap_or(100).clamp(20, 100)),
    ));
    out
}

/// The `pods` list of `procs --by pod --json`.
pub(crate) fn json_docs(acc: &Accounted, rows: &[ProcRow]) -> Vec<PodDoc> {
    shown(acc, rows)
        .into_iter()
        .map(|p| {
            let shm = p.dev_shm();
            PodDoc {
                kernel_minus_owner_bytes: p.kernel_minus_owner(),
                dev_shm_used_bytes: shm.and_then(|v| v.used_bytes),
                dev_shm_size_bytes: shm.and_then(|v| v.size_bytes),
                dev_shm_free_bytes: shm.and_then(|v| v.free_bytes()),
                volumes: p
                    .volumes
                    .iter()
                    .map(|v| PodVolumeDoc {
                        mount_point: v.mount_point.to_string_lossy().into_owned(),
                        dev: crate::report::dev_text(v.dev),
                        empty_dir: v.empty_dir.clone(),
                        used_bytes: v.used_bytes,
                        size_bytes: v.size_bytes,
                        free_bytes: v.free_bytes(),
                    })
                    .collect(),
                pod_uid: p.pod_uid,
                cgroup: p.cgroup,
                processes: p.processes,
                shared_charged_bytes: p.charged_bytes,
                owner_bytes: p.owner_bytes,
                kernel_shmem_bytes: p.kernel_shmem_bytes,
            }
        })
        .collect()
}
