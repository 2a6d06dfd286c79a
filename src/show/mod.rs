//! `shmwho show`: one object page by page, or one process with everything it maps, holds, owns
//! and is charged.
//!
//! The pipeline of the other views, with a drill-down: the scan is the objects view's (no
//! smaps); then only what the answer needs is read (`collect::drill`: the object's residency
//! from the object itself, each holder's pagemap over its mapping of the object); the PSS and
//! orphaned pages are worked out and the snapshot accounted (`account::show`); rendering last:
//! text in `text.rs` with the picture from `picture.rs`, JSON in `json.rs`. The argument is
//! parsed and resolved in `target.rs`.

pub mod group;
pub mod json;
pub mod picture;
pub mod target;
pub mod text;
pub mod words;

#[cfg(test)]
mod tests;

use crate::account::show::{self as drill_view, ObjectView};
use crate::account::{self, Policy};
use crate::collect::{self, drill, measure, Options};
use crate::model::{
    Accuracy, EstimateReason, FileDetail, Object, ObjectDetail, ObjectId, Snapshot,
};
use crate::privilege;
use crate::redact::{self, CallerView};
use anyhow::{anyhow, bail};
use std::path::Path;

/// What `shmwho show` was asked for.
#[derive(Clone, Debug)]
pub struct ShowOptions {
    /// The object or process, as the user spelled it (see [`target::parse`]).
    pub target: String,
    /// Columns for the picture; None: the terminal's width.
    pub width: Option<usize>,
    /// Charging policy for the object's charges.
    pub charge: Policy,
    /// JSON instead of text.
    pub json: bool,
    /// Exact byte counts instead of human units.
    pub bytes: bool,
    /// Where procfs and the host's files are.
    pub paths: crate::collect::HostPaths,
}

/// `shmwho show OBJECT|pid:N`.
pub fn run(args: ShowOptions, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let spec = target::parse(&args.target).map_err(|e| anyhow!(e))?;
    let proc_root = args.paths.proc_root.clone();
    crate::privilege::check_paths(&args.paths)?;
    let mut snap = privilege::with_caps(|| {
        collect::collect(&Options {
            paths: args.paths.clone(),
            smaps: false,
            cgroups: false,
            // Capabilities gained at exec are not the caller's: no BPF with them.
            bpf: !privilege::elevated(),
            repeated: false,
            counters: true,
            titles: true,
            pss_totals_only: false,
        })
    })?;
    // The caller's path is looked up with the caller's rights (capabilities are effective only
    // inside with_caps).
    if let target::Spec::Path(p) = &spec {
        add_unheld_file(&mut snap, p);
    }
    let path_id = |p: &Path| measure::stat(p).ok().map(|st| (st.dev, st.ino));
    // An elevated run resolves the target in what the caller may see, and shows only what it
    // could open itself.
    let caller = privilege::elevated().then(|| CallerView::probe(&snap, &proc_root));
    let found = match &caller {
        None => target::resolve(&snap, &args.target, &spec, &path_id),
        Some(view) => {
            let seen = redact::redact(snap.clone(), view);
            target::resolve(&seen, &args.target, &spec, &path_id).map(|f| match f {
                target::Found::Object(i) => target::Found::Object(
                    snap.objects
                        .iter()
                        .position(|o| o.id == seen.objects[i].id)
                        .expect("redaction only removes objects"),
                ),
                p => p,
            })
        }
    }
    .map_err(|e| anyhow!(e))?;
    if let Some(view) = &caller {
        let allowed = match found {
            target::Found::Object(i) => view.openable.contains(&snap.objects[i].id),
            target::Found::Process(pid) => view.readable.contains(&pid),
        };
        if !allowed {
            bail!(
                "{}: you could not open it yourself, and shmwho with file capabilities shows no more than that (README: Restricted install)",
                args.target
            );
        }
    }
    let ro = crate::render::RenderOptions {
        units: crate::render::units::Units::raw_if(args.bytes),
        euid: rustix::process::geteuid().as_raw(),
        // Tables and lines fit the terminal (or --width, COLUMNS) as the listings do; a pipe
        // gets them whole.
        width: args.width.or_else(crate::render::fit::terminal_width),
        ..Default::default()
    };
    let text = match found {
        target::Found::Object(i) => {
            let drilled = privilege::with_caps(|| drill::object(&snap, &proc_root, i));
            privilege::drop_all()?;
            let mut view = drill_view::object_view(&snap, drilled);
            if let Some(c) = &caller {
                keep_visible_holders(&mut snap, &mut view, c);
                snap = redact::hide(snap, c);
            }
            drill_view::fill_pss(&mut snap, &view);
            let acc = account::account(&snap, args.charge);
            if args.json {
                json::object(&acc, &view)
            } else {
                let width = args.width.unwrap_or_else(terminal_width);
                text::object(&acc, &view, width, &ro)
            }
        }
        target::Found::Process(pid) => {
            let wanted = drill_view::process_objects(&account::account(&snap, Policy::Owner), pid);
            let drilled: Vec<drill::Drill> = privilege::with_caps(|| {
                wanted
                    .iter()
                    .map(|&i| drill::object(&snap, &proc_root, i))
                    .collect()
            });
            privilege::drop_all()?;
            let views: Vec<ObjectView> = drilled
                .into_iter()
                .map(|d| drill_view::object_view(&snap, d))
                .collect();
            for v in &views {
                drill_view::fill_pss(&mut snap, v);
            }
            let mut view = drill_view::process_view(&snap, pid, views);
            if let Some(c) = &caller {
                for o in &mut view.objects {
                    let moved = keep_visible_holders(&mut snap, &mut o.view, c);
                    o.held = o
                        .held
                        .iter()
                        .filter_map(|&i| moved.get(i).copied().flatten())
                        .collect();
                }
                snap = redact::hide(snap, c);
            }
            let acc = account::account(&snap, Policy::Owner);
            if args.json {
                json::process(&acc, &view)
            } else {
                text::process(&acc, &view, &ro)
            }
        }
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Removes the holders the caller cannot see from the object and its view together (they are
/// matched by position); returns each old holder index's new one.
fn keep_visible_holders(
    snap: &mut Snapshot,
    view: &mut ObjectView,
    c: &CallerView,
) -> Vec<Option<usize>> {
    let o = &mut snap.objects[view.index];
    let keep: Vec<bool> = o
        .holders
        .iter()
        .map(|h| c.visible.contains(&h.pid))
        .collect();
    let mut k = keep.iter();
    o.holders.retain(|_| *k.next().unwrap_or(&false));
    let mut k = keep.iter();
    view.holders.retain(|_| *k.next().unwrap_or(&false));
    let mut next = 0;
    keep.iter()
        .map(|&kept| {
            kept.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// A file on a tmpfs that no process holds is not in the objects view (except under /dev/shm),
/// but asked for by path it can still be shown.
fn add_unheld_file(snap: &mut Snapshot, path: &Path) {
    let Ok(st) = measure::stat(path) else {
        return;
    };
    let id = ObjectId::Inode {
        dev: st.dev,
        ino: st.ino,
    };
    if !st.regular || snap.objects.iter().any(|o| o.id == id) {
        return;
    }
    let Some(mount) = snap
        .mounts
        .iter()
        .find(|m| m.dev == st.dev && m.foreign_ns.is_none())
    else {
        return;
    };
    let swap_in_use = snap.meminfo.swap_used_bytes() > 0;
    let file = FileDetail {
        path: path.to_path_buf(),
        deleted: false,
        mount_point: Some(mount.mount_point.clone()),
    };
    let detail = if mount.mount_point == Path::new("/dev/shm") {
        ObjectDetail::PosixShm(file)
    } else {
        ObjectDetail::Tmpfs(file)
    };
    snap.objects.push(Object {
        id,
        detail,
        dev: Some(st.dev),
        inode: st.ino,
        size_bytes: st.size,
        page_size_bytes: snap.page_size,
        hugetlb: false,
        resident_bytes: st.allocated,
        swap_bytes: 0,
        // With swap in use st_blocks is resident + swapped; show's ranges split it.
        accuracy: if swap_in_use {
            Accuracy::Estimate(EstimateReason::SwapSplitUnavailable)
        } else {
            Accuracy::Exact
        },
        holders: Vec::new(),
        foreign_ns: None,
    });
}

/// Width of the terminal on stdout, else `$COLUMNS`, else 80.
fn terminal_width() -> usize {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into `ws`, which outlives the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        return usize::from(ws.ws_col);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &usize| c > 0)
        .unwrap_or(80)
}
