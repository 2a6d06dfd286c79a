//! Numbers and limits (issue 8 section 7): absurd values from the kernel (a fake `/proc` tree
//! here, through the hidden `--proc-root`) are capped with a note, never wrapped, in every
//! view and in `diff`; running out of file descriptors is an error naming the fix, not
//! processes counted as exited.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};

const HUGE: u64 = 18_446_744_073_709_551_000;

/// A `/proc` with this host's meminfo and mounts, one process (pid 100) with absurd counters
/// attaching an absurd SysV segment, and a second absurd segment nobody attaches.
fn fake_proc() -> tempfile::TempDir {
    use std::os::unix::fs::symlink;
    let dir = tempfile::Builder::new()
        .prefix("shmwho-absurd-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    let write = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    write("meminfo", &std::fs::read("/proc/meminfo").unwrap());
    write("stat", &std::fs::read("/proc/stat").unwrap());
    let mountinfo = std::fs::read("/proc/self/mountinfo").unwrap();
    write("self/mountinfo", &mountinfo);
    std::fs::create_dir_all(root.join("self/ns")).unwrap();
    std::fs::create_dir_all(root.join("100/ns")).unwrap();
    symlink("ipc:[4026531839]", root.join("self/ns/ipc")).unwrap();
    symlink("mnt:[4026531841]", root.join("self/ns/mnt")).unwrap();
    write(
        "sysvipc/shm",
        format!(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
             \x20        5          7   600 {HUGE}   100   100      1     0     0     0     0          0          0          0 {HUGE} {HUGE}\n\
             \x20        6          8   600 {HUGE}     1     1      0     0     0     0     0          0          0          0 {HUGE}    0\n"
        )
        .as_bytes(),
    );
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    write("100/stat", format!("100 (absurd){rest}").as_bytes());
    let mut status = String::new();
    for l in std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
    {
        let key = l.split(':').next().unwrap();
        if ["VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap"].contains(&key) {
            status.push_str(&format!("{key}:\t18014398509481983 kB\n"));
        } else if key == "Name" {
            status.push_str("Name:\tabsurd\n");
        } else {
            status.push_str(l);
            status.push('\n');
        }
    }
    write("100/status", status.as_bytes());
    write("100/mountinfo", &mountinfo);
    let maps = "1000-ffffffffffff000 rw-s 00000000 00:01 7    /SYSV00000005 (deleted)\n";
    write("100/maps", maps.as_bytes());
    write(
        "100/smaps",
        format!("{maps}Rss: 18014398509481983 kB\nPss: 18014398509481983 kB\nPrivate_Dirty: 18014398509481983 kB\n").as_bytes(),
    );
    std::fs::create_dir_all(root.join("100/fd")).unwrap();
    std::fs::create_dir_all(root.join("100/map_files")).unwrap();
    symlink("ipc:[4026531839]", root.join("100/ns/ipc")).unwrap();
    symlink("mnt:[4026531841]", root.join("100/ns/mnt")).unwrap();
    dir
}

fn over(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .arg("--proc-root")
        .arg(root)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shmwho {args:?} (a debug build panics on overflow): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every number printed is at most memory plus swap (resident figures), never negative where
/// it cannot be, never i64::MAX.
#[test]
fn absurd_kernel_values_are_capped_and_noted() {
    let dir = fake_proc();
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |k: &str| -> u64 {
        let l = m.lines().find(|l| l.starts_with(k)).unwrap();
        l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    let ceiling = kb("MemTotal:") + kb("SwapTotal:");

    let doc: Value = serde_json::from_slice(&over(dir.path(), &["--json"]).stdout).unwrap();
    // Only the fake segments: /dev/shm is the real one, listed too.
    let segments: Vec<&Value> = objects(&doc)
        .iter()
        .filter(|o| o["kind"] == "sysv")
        .collect();
    assert_eq!(segments.len(), 2, "{doc}");
    for o in segments {
        let held = u(&o["resident_bytes"]) + u(&o["swap_bytes"]);
        assert!(held <= ceiling, "{o}");
        assert_eq!(o["exact"], false, "{o}");
        assert_eq!(o["estimate_reason"], "absurd_value", "{o}");
        assert_eq!(u(&o["size_bytes"]), HUGE, "a size is virtual and kept: {o}");
    }
    let reasons: Vec<&Value> = doc["notes"]["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["reason"])
        .collect();
    assert!(reasons.iter().any(|r| *r == "absurd_value"), "{reasons:?}");
    assert_eq!(doc["notes"]["absurd_processes"], 1);

    let procs: Value = serde_json::from_slice(
        &over(
            dir.path(),
            &["procs", "--json", "--pss", "--charge", "touched"],
        )
        .stdout,
    )
    .unwrap();
    let p = process(&procs, 100).expect("the process is listed");
    for k in ["rss_bytes", "rss_shmem_bytes", "swap_bytes", "pss_bytes"] {
        assert!(u(&p[k]) <= ceiling, "{k}: {p}");
    }

    for args in [&["export"][..], &["export", "--format", "prometheus"][..]] {
        let text = String::from_utf8(over(dir.path(), args).stdout).unwrap();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(!v.starts_with("9223372036854775807"), "{l}");
            if l.starts_with("shmwho_object_resident") || l.starts_with("shmwho_unheld") {
                assert!(v.parse::<u64>().unwrap() <= 2 * ceiling, "{l}");
            }
        }
    }
    let table = String::from_utf8(over(dir.path(), &[]).stdout).unwrap();
    assert!(table.contains("more memory than the host has"), "{table}");
    for target in ["sysv:7", "sysv:8", "pid:100"] {
        over(dir.path(), &["show", target]);
        over(dir.path(), &["show", target, "--json"]);
    }
}

/// `diff` of 0 → 16 EiB grows (capped, with a note); it does not shrink by a byte.
#[test]
fn diff_of_absurd_records_never_wraps() {
    let dir = fake_proc();
    let rec: Value = serde_json::from_slice(&over(dir.path(), &["record", "-"]).stdout).unwrap();
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, resident: u64| {
        let mut r = rec.clone();
        for o in r["objects"]["objects"].as_array_mut().unwrap() {
            o["resident_bytes"] = resident.into();
        }
        let p = files.path().join(name);
        std::fs::write(&p, serde_json::to_vec(&r).unwrap()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (a, b) = (write("a.json", 0), write("b.json", u64::MAX));
    let out = run(&["diff", &a, &b, "--json"]);
    assert!(out.status.success());
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    for o in d["objects"].as_array().unwrap() {
        assert_eq!(o["change"], "grew", "{o}");
        assert!(o["resident_delta_bytes"].as_i64().unwrap() > 0, "{o}");
    }
    let notes = d["notes"].to_string();
    assert!(notes.contains("beyond 8 PiB"), "{notes}");
    let text = String::from_utf8(run(&["diff", &a, &b]).stdout).unwrap();
    assert!(text.contains("grew") && !text.contains("shrank"), "{text}");
}

/// With one free descriptor the scan cannot read processes: it says so and how to fix it.
#[test]
fn out_of_descriptors_is_an_error_naming_the_fix() {
    let run_with = |limit: u64| -> Output {
        let mut c = Command::new(bin());
        c.args(["procs", "--json"]).env("RUST_BACKTRACE", "0");
        // SAFETY: setrlimit only, between fork and exec.
        unsafe {
            c.pre_exec(move || {
                let r = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let _g = lock();
        c.output().unwrap()
    };
    // With one free descriptor, two reader threads collide now and then: every run either
    // reads everything or fails naming the fix (before: 33 of 70 processes "exited", exit 0).
    let mut failed = 0;
    for _ in 0..20 {
        let out = run_with(4);
        if out.status.success() {
            let d: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                u(&d["vanished_processes"]) < 20,
                "{}",
                d["vanished_processes"]
            );
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert_eq!(
                err.trim(),
                "shmwho: too many open files: raise ulimit -n (the limit here is 4)"
            );
            assert!(out.stdout.is_empty());
            failed += 1;
        }
    }
    eprintln!("{failed} of 20 runs with 4 descriptors ran out");
    // A little more: either enough, or the same error; never processes silently dropped.
    for limit in 5..=8 {
        let out = run_with(limit);
        if out.status.success() {
            let d: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                u(&d["vanished_processes"]) < 20,
                "limit {limit}: {}",
                d["vanished_processes"]
            );
        } else {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("raise ulimit -n"),
                "limit {limit}"
            );
        }
    }
}
