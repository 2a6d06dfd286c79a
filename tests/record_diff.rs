//! `shmwho record` and `shmwho diff` on real objects: record, grow an object, record again, and
//! the diff shows the growth to the byte, with what appeared and disappeared between the two.

mod common;

use common::*;
use serde_json::Value;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Writes pages of a memfd that only `pid` holds (as fd `fd`), through a short-lived reopen of
/// `/proc/PID/fd/FD`: the test process holds nothing when the scans run.
fn write_pages_of(pid: i64, fd: i32, first: u64, n: u64) {
    let path = std::ffi::CString::new(format!("/proc/{pid}/fd/{fd}")).unwrap();
    // SAFETY: plain syscall with a valid C string.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(
        raw >= 0,
        "reopen {path:?}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the fd was just opened and is ours.
    let f = unsafe { OwnedFd::from_raw_fd(raw) };
    pwrite_pages(f.as_raw_fd(), first, n);
}

/// A memfd of `pages` pages held only by a paused child (the test process closes its own fd).
fn memfd_in_child(name: &str, pages: u64) -> (Child, i32, (String, u64)) {
    let m = Memfd::new(name, pages * page());
    let id = m.identity();
    let fd = m.raw();
    let c = fork_child(&[], &[fd], After::Pause, || 0);
    drop(m);
    (c, fd, id)
}

fn find<'a>(list: &'a Value, dev: &str, ino: u64) -> Option<&'a Value> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|o| o["dev"] == dev && o["id"].as_str() == Some(ino.to_string().as_str()))
}

#[test]
fn diff_shows_growth_to_the_byte() {
    let pg = page();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");

    // Names unique to this run: another run of this test may hold memfds of the same stem.
    let grows = format!("shmwho-diff-grows-{}", unique());
    let (grower, gfd, gid) = memfd_in_child(&grows, 64);
    write_pages_of(grower.pid(), gfd, 0, 5);
    let (leaver, lfd, lid) = memfd_in_child(&format!("shmwho-diff-leaves-{}", unique()), 8);
    write_pages_of(leaver.pid(), lfd, 0, 3);

    let out = run(&["record", a.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let rec: Value = serde_json::from_slice(&std::fs::read(&a).unwrap()).unwrap();
    assert_eq!(rec["schema"], 1);
    assert_eq!(rec["charge"], "owner");
    assert!(rec["recorded_at"].as_u64().unwrap() > 1_600_000_000);
    let o = find_inode(&rec["objects"], &gid).expect("the memfd in the record");
    assert_eq!(u(&o["resident_bytes"]), 5 * pg);
    let p = process(&rec["procs"], grower.pid()).expect("the child in the record");
    assert_eq!(u(&p["shared_charged_bytes"]), 5 * pg);

    // Between the records: the memfd grows by 7 pages, one object goes, one comes.
    write_pages_of(grower.pid(), gfd, 5, 7);
    let leaver_pid = leaver.pid();
    leaver.kill();
    let (comer, cfd, cid) = memfd_in_child(&format!("shmwho-diff-comes-{}", unique()), 4);
    write_pages_of(comer.pid(), cfd, 0, 2);

    let out = run(&["record", b.to_str().unwrap()]);
    assert!(out.status.success());

    let d = json(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert_eq!(d["schema"], 1);
    assert_eq!(d["charge"], "owner");
    let grew = find(&d["objects"], &gid.0, gid.1).expect("the grown memfd");
    assert_eq!(grew["change"], "grew");
    assert_eq!(grew["kind"], "memfd");
    assert_eq!(grew["name"], format!("memfd:{grows}"));
    assert_eq!(u(&grew["a"]["resident_bytes"]), 5 * pg);
    assert_eq!(u(&grew["b"]["resident_bytes"]), 12 * pg);
    assert_eq!(grew["resident_delta_bytes"], 7 * pg);
    assert_eq!(grew["size_delta_bytes"], 0);
    assert_eq!(grew["owner"]["pid"], grower.pid());

    let gone = find(&d["objects"], &lid.0, lid.1).expect("the memfd that went");
    assert_eq!(gone["change"], "disappeared");
    assert!(gone["b"].is_null());
    assert_eq!(gone["resident_delta_bytes"], -(3 * pg as i64));
    let came = find(&d["objects"], &cid.0, cid.1).expect("the memfd that came");
    assert_eq!(came["change"], "appeared");
    assert_eq!(came["resident_delta_bytes"], 2 * pg);

    let procs = d["processes"].as_array().unwrap();
    let by_pid = |pid: i64| procs.iter().find(|p| p["pid"] == pid);
    let g = by_pid(grower.pid()).expect("the grower's charge changed");
    assert_eq!(g["change"], "grew");
    assert_eq!(u(&g["a_bytes"]), 5 * pg);
    assert_eq!(u(&g["b_bytes"]), 12 * pg);
    assert_eq!(g["delta_bytes"], 7 * pg);
    let l = by_pid(leaver_pid).expect("the exited child");
    assert_eq!(l["change"], "disappeared");
    assert_eq!(l["delta_bytes"], -(3 * pg as i64));
    assert_eq!(by_pid(comer.pid()).unwrap()["change"], "appeared");

    // The table, in bytes.
    let out = run(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--bytes"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == format!("memfd:{grows}")))
        .unwrap_or_else(|| panic!("no line for the grown memfd:\n{text}"));
    assert!(line.starts_with("grew"), "{line}");
    for want in [
        (5 * pg).to_string(),
        (12 * pg).to_string(),
        format!("+{}", 7 * pg),
    ] {
        assert!(
            line.split_whitespace().any(|w| w == want),
            "{want} in {line}"
        );
    }
    assert!(text.contains("Processes whose charged shared memory changed (charge 'owner')"));

    // --min-change hides the smaller changes (2 and 3 pages), keeps the 7.
    let d = json(&[
        "diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
        "--min-change",
        &(4 * pg).to_string(),
    ]);
    assert!(find(&d["objects"], &gid.0, gid.1).is_some());
    assert!(find(&d["objects"], &cid.0, cid.1).is_none());
    assert!(find(&d["objects"], &lid.0, lid.1).is_none());
}

#[test]
fn record_writes_atomically_and_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("snap.json");
    std::fs::write(&f, "old").unwrap();
    let out = run(&["record", f.to_str().unwrap()]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).expect("replaced whole");
    assert!(v["objects"]["objects"].is_array());
    assert!(v["procs"]["processes"].is_array());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["snap.json"], "no temporary file left behind");

    let out = run(&["record", "-"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], 1);

    // A plain `shmwho --json` document diffs against a record (objects only).
    let plain = dir.path().join("plain.json");
    std::fs::write(&plain, run(&["--json"]).stdout).unwrap();
    let d = json(&[
        "diff",
        plain.to_str().unwrap(),
        f.to_str().unwrap(),
        "--json",
    ]);
    assert!(d["processes"].is_null());
}

#[test]
fn unreadable_or_malformed_files_fail_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    assert!(run(&["record", good.to_str().unwrap()]).status.success());
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"schema\": 1, \"objects\": ").unwrap();
    let not_record = dir.path().join("other.json");
    std::fs::write(&not_record, "{\"hello\": 1}").unwrap();
    let future = dir.path().join("future.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&good).unwrap()).unwrap();
    v["schema"] = 2.into();
    std::fs::write(&future, v.to_string()).unwrap();
    let missing = dir.path().join("missing.json");

    for (file, want) in [
        (&missing, "cannot read"),
        (&bad_json, "not JSON"),
        (&not_record, "neither a shmwho record"),
        (&future, "schema 2 is not supported"),
    ] {
        let out = run(&["diff", good.to_str().unwrap(), file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{file:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(file.to_str().unwrap()), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let out = run(&["record", "/nonexistent-dir/x.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write /nonexistent-dir/x.json"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
