//! SysV segments of every IPC namespace: ours from its table, the others' from inside them.

use super::context::Context;
use super::parse::sysv;
use crate::model::{self, Pid, Process, ScanNotes};
use std::path::Path;

/// SysV segments with their IPC namespace: `own` (our table, already read) and those of the
/// other namespaces the processes are in. A namespace that cannot be entered is counted in
/// `notes`.
pub(crate) fn segments(
    ctx: &Context,
    own: Vec<model::SysvSegment>,
    processes: &[Process],
    notes: &mut ScanNotes,
) -> Vec<(u64, model::SysvSegment)> {
    let own_ipc = ctx.own_ipc_ns.unwrap_or(0);
    let mut segments: Vec<(u64, model::SysvSegment)> =
        own.into_iter().map(|s| (own_ipc, s)).collect();
    // SysV segments of other IPC namespaces (containers): read their table from inside the
    // namespace, in a thread of our own so the rest of the scan stays in ours.
    let mut foreign: Vec<(u64, Pid)> = processes
        .iter()
        .filter_map(|p| {
            p.ipc_ns
                .filter(|&ns| Some(ns) != ctx.own_ipc_ns)
                .map(|ns| (ns, p.pid))
        })
        .collect();
    foreign.sort_unstable();
    foreign.dedup_by_key(|f| f.0);
    for (ns, pid) in foreign {
        match sysv_in_namespace(&ctx.pid_path(pid, "ns/ipc"), &ctx.paths.sysvipc_shm()) {
            Some(segs) => segments.extend(segs.into_iter().map(|s| (ns, s))),
            None => notes.foreign_ipc_ns += 1,
        }
    }
    segments
}

/// `/proc/sysvipc/shm` (at `table`) as seen from the IPC namespace behind `ns_link`; None
/// without CAP_SYS_ADMIN or when the namespace is gone.
fn sysv_in_namespace(ns_link: &Path, table: &Path) -> Option<Vec<model::SysvSegment>> {
    let ns = std::fs::File::open(ns_link).ok()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::InterProcessCommunication),
            )
            .ok()?;
            // procfs resolves the namespace when the file is opened, by the opening thread.
            std::fs::read(table).ok().map(|t| sysv::parse(&t))
        })
        .join()
        .ok()
        .flatten()
    })
}
