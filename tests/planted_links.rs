//! `record FILE` and `export --textfile DIR` run as root in a directory another user can write
//! (issue 8 section 2): symlinks planted at the final name and at every name a pid-based
//! temporary (`.NAME.PID.tmp`) would take for the next pids point at a root-only file, which
//! must stay untouched while the output lands as a regular file.

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

/// Pids planted ahead of the kernel's last one: more than the other tests running beside this
/// one start in the moment between planting and the run.
const WINDOW: i64 = 4096;

fn last_pid() -> i64 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Runs shmwho with `args` after planting links at `names(pid)` for the window of next pids
/// and at `target`; checks the victim is untouched and `target` is a regular file.
fn attack(args: &[&str], dir: &Path, target: &Path, tmp_name: &dyn Fn(i64) -> String) {
    let secret_dir = tempfile::Builder::new()
        .prefix("shmwho-victim-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(secret_dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = secret_dir.path().join("root-only");
    std::fs::write(&victim, "root's secret\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::metadata(&victim).unwrap();

    for attempt in 0..3 {
        let from = last_pid() + 1;
        for pid in from..from + WINDOW {
            let _ = std::os::unix::fs::symlink(&victim, dir.join(tmp_name(pid)));
        }
        let _ = std::fs::remove_file(target);
        std::os::unix::fs::symlink(&victim, target).unwrap();
        let (out, pid) = {
            let _g = lock();
            let child = Command::new(bin())
                .args(args)
                .current_dir("/")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let pid = i64::from(child.id());
            (child.wait_with_output().unwrap(), pid)
        };
        assert!(
            out.status.success(),
            "shmwho {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = std::fs::metadata(&victim).unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "root's secret\n",
            "the victim was written through a planted link"
        );
        assert_eq!(
            (after.len(), after.mode(), after.mtime(), after.mtime_nsec()),
            (
                before.len(),
                before.mode(),
                before.mtime(),
                before.mtime_nsec()
            )
        );
        let md = std::fs::symlink_metadata(target).unwrap();
        assert!(md.file_type().is_file(), "{}: {md:?}", target.display());
        assert!(md.len() > 0);
        // No temporary left behind: only the planted links and the output.
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.path() != target {
                assert!(
                    e.file_type().unwrap().is_symlink(),
                    "left behind: {}",
                    e.path().display()
                );
            }
        }
        if (from..from + WINDOW).contains(&pid) {
            return;
        }
        eprintln!("attempt {attempt}: pid {pid} outside the planted window, again");
    }
    panic!("the run's pid never fell in the planted window");
}

fn world_writable_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("shmwho-planted-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

#[test]
fn record_replaces_planted_links() {
    if !require_root("the attack is on files root writes") {
        return;
    }
    let dir = world_writable_dir();
    let target = dir.path().join("snap.json");
    attack(
        &["record", target.to_str().unwrap()],
        dir.path(),
        &target,
        &|pid| format!(".snap.json.{pid}.tmp"),
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(doc["schema"], 1);
}

#[test]
fn textfile_replaces_planted_links() {
    if !require_root("the attack is on files root writes") {
        return;
    }
    let dir = world_writable_dir();
    let target = dir.path().join("shmwho.prom");
    attack(
        &["export", "--textfile", dir.path().to_str().unwrap()],
        dir.path(),
        &target,
        &|pid| format!(".shmwho.prom.{pid}.tmp"),
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("shmwho_"), "{text}");
}
