//! `shmwho show`: one object page by page, or one process with everything it maps, holds, owns
//! and is charged.
//!
//! The scan is the objects view's (no smaps); then only what the answer needs is read: the
//! object's residency from the object itself, and each holder's pagemap over its mapping of
//! the object (`object.rs`). Text in `text.rs` with the picture from `picture.rs`, JSON in
//! `json.rs`, the process page in `process.rs`, the argument in `target.rs`.

pub mod json;
pub mod object;
pub mod picture;
pub mod process;
pub mod target;
pub mod text;

use crate::account::Policy;
use crate::collect::{self, measure, Options};
use crate::model::{
    Accuracy, EstimateReason, FileDetail, Object, ObjectDetail, ObjectId, Snapshot,
};
use crate::privilege;
use crate::redact::{self, CallerView};
use anyhow::{anyhow, bail};
use std::path::Path;

const HELP: &str = "\
OBJECT is spelled as the objects view prints it:
  2707               an inode (the ID column); inode:MAJ:MIN:2707 when two devices share it
  sysv:32769         a SysV segment by shmid; 0x0001e240 by key
  memfd:NAME         a memfd by name
  /dev/shm/NAME      a file on a tmpfs (POSIX shm, /run, ...), by path
  4242:7f94a0000000  the object process 4242 maps at that address (from maps or the holders list)
  pid:4242           a process (a bare number is a pid when no object has that inode; when it
                     is both, shmwho asks for pid:N or inode:N)

For an object it prints its figures, its holders (how each holds it, its pages in that holder's
page tables and its PSS), and a picture of the object's offsets: where it is resident, what each
holder maps, and what is orphaned (resident, but mapped by no live process). For a process: its
memory by kind, each shared object it maps or holds, what it is charged under each policy, what
it owns, and a one-line verdict.

Reads only the holders' /proc/PID/pagemap over their mappings of the object and the object's
own residency (mincore on a never-touched read-only mapping, cachestat, SEEK_DATA); never the
object's contents. Needs root (or CAP_CHECKPOINT_RESTORE) to open most objects.

Examples:
  sudo shmwho lab --size 256M &     then: sudo shmwho show <the inode it prints>
  shmwho show sysv:32769 --json | jq '.holders[].mapped_ranges'
  shmwho show pid:$(pgrep -o php-fpm)";

#[derive(clap::Args, Debug)]
#[command(after_help = HELP)]
pub struct ShowArgs {
    /// An object (inode, sysv:ID, 0xKEY, memfd:NAME, /path, PID:ADDRESS) or a process (pid:N)
    #[arg(value_name = "OBJECT|PID")]
    pub target: String,
    /// Columns for the picture (default: the terminal's width, else $COLUMNS, else 80)
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<usize>,
    /// Charging policy for the object's charges (the process page shows all three)
    #[arg(long, value_enum, default_value_t = Policy::Owner)]
    pub charge: Policy,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
}

pub fn run(args: ShowArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let spec = target::parse(&args.target).map_err(|e| anyhow!(e))?;
    let proc_root = args.output.proc_root.clone();
    crate::privilege::check_proc_root(&proc_root)?;
    let mut snap = privilege::with_caps(|| {
        collect::collect(&Options {
            paths: collect::HostPaths::with_proc_root(proc_root.clone()),
            smaps: false,
            cgroups: false,
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
        bytes: args.output.bytes,
        euid: rustix::process::geteuid().as_raw(),
    };
    let text = match found {
        target::Found::Object(i) => {
            let mut view = privilege::with_caps(|| object::analyse(&snap, &proc_root, i));
            privilege::drop_all()?;
            if let Some(c) = &caller {
                keep_visible_holders(&mut snap, &mut view, c);
                snap = redact::hide(snap, c);
            }
            if args.output.json {
                json::object(&snap, &view, args.charge)
            } else {
                let width = args.width.unwrap_or_else(terminal_width);
                text::object(&snap, &view, args.charge, width, &ro)
            }
        }
        target::Found::Process(pid) => {
            let mut view = privilege::with_caps(|| process::analyse(&snap, &proc_root, pid));
            privilege::drop_all()?;
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
            if args.output.json {
                json::process(&snap, &view)
            } else {
                text::process(&snap, &view, &ro)
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
    view: &mut object::ObjectView,
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
