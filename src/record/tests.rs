//! Unit and snapshot tests of record and diff.

use super::diff::{object_diffs, proc_diffs};
use super::*;
use crate::schema::{Change, ObjectDoc, ProcsDoc};
fn obj(kind: &str, ino: u64, resident: u64) -> ObjectDoc {
    serde_json::from_value(serde_json::json!({
        "kind": kind, "id": ino.to_string(), "inode": ino, "dev": "0:1",
        "size_bytes": 1 << 20, "resident_bytes": resident, "swap_bytes": 0, "name": "x",
    }))
    .unwrap()
}

fn doc(objects: Vec<ObjectDoc>) -> ObjectsDoc {
    serde_json::from_value(serde_json::json!({
        "schema": 1, "meminfo_shmem_bytes": 0, "objects": objects,
    }))
    .unwrap()
}

#[test]
fn objects_by_identity() {
    let a = doc(vec![
        obj("memfd", 1, 4096),
        obj("memfd", 2, 8192),
        obj("memfd", 3, 100),
    ]);
    let mut swapped = obj("memfd", 3, 50);
    swapped.swap_bytes = 50;
    let b = doc(vec![
        obj("memfd", 1, 3 * 4096),
        obj("memfd", 4, 4096),
        swapped,
        // Same inode number on another device: another object.
        ObjectDoc {
            dev: Some("0:2".into()),
            ..obj("memfd", 2, 8192)
        },
    ]);
    let d = object_diffs(&a, &b, 0);
    let by = |id: &str, dev: &str| {
        d.iter()
            .find(|o| o.id == id && o.dev.as_deref() == Some(dev))
            .unwrap()
    };
    assert_eq!(by("1", "0:1").change, Change::Grew);
    assert_eq!(by("1", "0:1").resident_delta_bytes, 8192);
    assert_eq!(by("2", "0:1").change, Change::Disappeared);
    assert_eq!(by("2", "0:1").resident_delta_bytes, -8192);
    assert_eq!(by("2", "0:2").change, Change::Appeared);
    assert_eq!(by("4", "0:1").change, Change::Appeared);
    assert_eq!(
        by("3", "0:1").change,
        Change::Changed,
        "swapped out, not shrunk"
    );
    assert_eq!(d.len(), 5);
    // Largest change first.
    assert_eq!(d[0].held_delta().unsigned_abs(), 8192);
    // --min-change hides the small ones.
    let d = object_diffs(&a, &b, 8192);
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|o| o.id != "3" && o.id != "4"));
}

#[test]
fn processes_by_pid_and_command() {
    let p = |pid: i32, comm: &str, b: u64| -> serde_json::Value {
        serde_json::json!({"pid": pid, "comm": comm, "user": "u", "shared_charged_bytes": b})
    };
    let procs = |ps: Vec<serde_json::Value>| -> ProcsDoc {
        serde_json::from_value(serde_json::json!({"schema": 1, "charge": "owner", "processes": ps}))
            .unwrap()
    };
    let a = procs(vec![
        p(1, "init", 0),
        p(10, "php-fpm", 100),
        p(11, "old", 5),
        p(12, "idle", 0),
    ]);
    let b = procs(vec![
        p(1, "init", 0),
        p(10, "php-fpm", 300),
        p(11, "new", 7),
    ]);
    let d = proc_diffs(&a, &b, 0);
    assert_eq!(d.len(), 3, "{d:?}");
    assert_eq!(
        (d[0].pid, d[0].change, d[0].delta_bytes),
        (10, Change::Grew, 200)
    );
    assert!(d
        .iter()
        .any(|x| x.comm == "old" && x.change == Change::Disappeared));
    assert!(d
        .iter()
        .any(|x| x.comm == "new" && x.change == Change::Appeared));
}

/// Two accounted scans an hour apart: a memfd grew, a segment appeared, an object went,
/// one swapped out, and one process's charge moved.
fn record_pair(dir: &Path) -> (PathBuf, PathBuf) {
    use crate::account::tests::{object, process, snapshot};
    use crate::model::{FileDetail, ObjectDetail, ObjectId};
    let procs = || {
        let mut ps = vec![process(10, 1), process(11, 2), process(12, 3)];
        for p in &mut ps {
            p.user = "alice".into();
        }
        ps
    };
    let memfd = |resident: u64| {
        let mut o = object(7, resident, &[10, 11]);
        o.detail = ObjectDetail::Memfd {
            name: "pool\x1b[31m".into(),
        };
        o
    };
    let mut gone = object(8, 4096, &[12]);
    gone.detail = ObjectDetail::PosixShm(FileDetail {
        path: "/dev/shm/old".into(),
        deleted: false,
        mount_point: None,
    });
    let mut a = snapshot(procs(), vec![memfd(16 << 10), gone, object(9, 8192, &[11])]);
    a.meminfo.shmem_bytes = 1 << 20;
    let mut seg = object(32769, 1 << 20, &[12]);
    seg.detail = ObjectDetail::Sysv {
        key: None,
        segment: None,
        hugetlb: false,
    };
    seg.id = ObjectId::Sysv {
        ipc_ns: 4026531839,
        shmid: 32769,
    };
    let mut swapped = object(9, 4096, &[11]);
    swapped.swap_bytes = 4096;
    let mut b = snapshot(procs(), vec![memfd(64 << 10), swapped, seg]);
    b.meminfo.shmem_bytes = 3 << 20;
    let write = |snap: &crate::model::Snapshot, at: u64, name: &str| {
        let acc = account::account(snap, Policy::Owner);
        let doc = record_doc(&acc, at, "lab");
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        path
    };
    (
        write(&a, 1_700_000_000, "a.json"),
        write(&b, 1_700_003_720, "b.json"),
    )
}

fn run_diff(a: &Path, b: &Path, json: bool, bytes: bool, min_change: u64) -> String {
    let mut out = Vec::new();
    diff(
        DiffOptions {
            a: a.to_path_buf(),
            b: b.to_path_buf(),
            min_change,
            json,
            units: crate::render::units::Units::raw_if(bytes),
        },
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn diff_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = record_pair(dir.path());
    // The temporary directory's name changes from run to run.
    let fixed = |s: String| s.replace(&dir.path().display().to_string(), "DIR");
    insta::assert_snapshot!("diff_table", fixed(run_diff(&a, &b, false, false, 0)));
    insta::assert_snapshot!(
        "diff_table_bytes_min",
        fixed(run_diff(&a, &b, false, true, 8192))
    );
    insta::assert_snapshot!("diff_json", fixed(run_diff(&a, &b, true, false, 0)));
    insta::assert_snapshot!("diff_same", fixed(run_diff(&a, &a, false, false, 0)));
}

#[test]
fn dates() {
    assert_eq!(text::utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(text::utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(text::utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    assert_eq!(text::span(3 * 3600 + 120), "3 h 2 min");
}
