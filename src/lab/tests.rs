//! Unit tests of the lab's pure parts.

use super::*;

const MIB: u64 = 1 << 20;

fn opts(size: u64) -> LabOptions {
    LabOptions {
        size,
        exit_children: false,
        sysv: None,
        memfd: None,
        posix: None,
        tmpfs: None,
        for_secs: None,
        json: true,
        force: false,
    }
}

#[test]
fn rounds_up_to_pages() {
    assert_eq!(round_to_pages("x", 1, 4096), Ok(4096));
    assert_eq!(round_to_pages("x", 4096, 4096), Ok(4096));
    assert_eq!(round_to_pages("x", 4097, 4096), Ok(8192));
    assert_eq!(round_to_pages("x", 1000, 16384), Ok(16384));
}

#[test]
fn rejects_zero_and_huge_sizes() {
    let zero = round_to_pages("memfd", 0, 4096).unwrap_err();
    assert!(zero.contains("memfd must be at least 1 byte"), "{zero}");
    assert!(round_to_pages("x", u64::MAX, 4096).is_err());
    assert!(round_to_pages("x", u64::MAX - 4095, 4096).is_err());
    assert!(Plan::new(&opts(0), 4096).is_err());
    let mut o = opts(MIB);
    o.sysv = Some(0);
    let e = Plan::new(&o, 4096).unwrap_err().to_string();
    assert!(e.contains("SysV segment"), "{e}");
}

#[test]
fn written_pages_are_integer_fractions() {
    let plan = Plan::new(&opts(256 * MIB), 4096).unwrap();
    assert_eq!(plan.anon, 65536);
    assert_eq!(plan.child1_anon(), 16384);
    assert_eq!(plan.child2_anon(), 32768);
    assert_eq!(plan.bytes(plan.anon_resident()), 128 * MIB);

    // 7 pages: child 1 writes 1, child 2 writes 3; the union is 3.
    let plan = Plan::new(&opts(7 * 4096 - 100), 4096).unwrap();
    assert_eq!(plan.anon, 7);
    assert_eq!((plan.child1_anon(), plan.child2_anon()), (1, 3));
    assert_eq!(plan.anon_resident(), 3);
    assert_eq!(sysv_written(7), 3);
    assert_eq!(memfd_written(7), 1);
    assert_eq!(posix_written(7), 5);
    assert_eq!(tmpfs_written(7), 3);

    // One page: nothing from child 1 or child 2.
    let plan = Plan::new(&opts(1), 4096).unwrap();
    assert_eq!(plan.anon_resident(), 0);
}

fn fid(ino: u64) -> FileId {
    FileId {
        dev: "0:1".to_string(),
        ino,
    }
}

fn all_ids() -> (Plan, Ids) {
    let mut o = opts(256 * MIB);
    o.sysv = Some(64 * MIB);
    o.memfd = Some(32 * MIB);
    o.posix = Some(16 * MIB);
    o.tmpfs = Some((PathBuf::from("/run/x"), 8 * MIB));
    let plan = Plan::new(&o, 4096).unwrap();
    let ids = Ids {
        master: 100,
        children: [101, 102],
        anon: fid(7),
        sysv: Some(5),
        memfd: Some(fid(8)),
        posix: Some((
            FileId {
                dev: "0:27".to_string(),
                ino: 3,
            },
            "/dev/shm/shmwho-lab-100".to_string(),
        )),
        tmpfs: Some((
            FileId {
                dev: "0:30".to_string(),
                ino: 4,
            },
            "/run/x/shmwho-lab-100".to_string(),
        )),
    };
    (plan, ids)
}

fn holders(v: &serde_json::Value) -> Vec<(i64, String)> {
    v["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["pid"].as_i64().unwrap(),
                h["via"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn h(list: &[(i64, &str)]) -> Vec<(i64, String)> {
    list.iter().map(|&(p, v)| (p, v.to_string())).collect()
}

#[test]
fn truth_with_live_children() {
    let (plan, ids) = all_ids();
    let t = serde_json::to_value(build_truth(&plan, &ids, true)).unwrap();
    assert_eq!(t["lab"], "experiment");
    assert_eq!(t["master_pid"], 100);
    assert_eq!(t["page_size"], 4096);
    let c = &t["children"];
    assert_eq!(c[0]["pid"], 101);
    assert_eq!(c[0]["wrote_bytes"], 64 * MIB + 32 * MIB);
    assert_eq!(c[0]["alive"], true);
    assert_eq!(c[1]["wrote_bytes"], 128 * MIB + 8 * MIB);
    assert_eq!(c[1]["wrote"][1]["kind"], "memfd");

    let o = t["objects"].as_array().unwrap();
    let kinds: Vec<&str> = o.iter().map(|x| x["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["anon_shared", "sysv", "memfd", "posix_shm", "tmpfs"]
    );

    assert_eq!(o[0]["inode"], 7);
    assert_eq!(o[0]["dev"], "0:1");
    assert_eq!(o[0]["size_bytes"], 256 * MIB);
    assert_eq!(o[0]["resident_bytes"], 128 * MIB);
    assert_eq!(
        holders(&o[0]),
        h(&[(100, "map"), (101, "map"), (102, "map")])
    );
    assert_eq!(o[0]["owner_pid"], 100);

    assert_eq!(o[1]["shmid"], 5);
    assert_eq!(o[1]["key"], 0);
    assert!(o[1].get("inode").is_none());
    assert_eq!(o[1]["resident_bytes"], 32 * MIB);
    assert_eq!(holders(&o[1]), h(&[(101, "map")]));
    assert_eq!(o[1]["owner_pid"], 100);

    assert_eq!(o[2]["name"], "shmwho-lab");
    assert_eq!(o[2]["resident_bytes"], 8 * MIB);
    assert_eq!(
        holders(&o[2]),
        h(&[(100, "fd"), (101, "fd"), (102, "map"), (102, "fd")])
    );

    assert_eq!(o[3]["path"], "/dev/shm/shmwho-lab-100");
    assert_eq!(o[3]["resident_bytes"], 12 * MIB);
    assert_eq!(holders(&o[3]), h(&[]));
    assert!(o[3]["owner_pid"].is_null());

    assert_eq!(o[4]["resident_bytes"], 4 * MIB);
    assert_eq!(holders(&o[4]), h(&[(100, "map")]));
    assert_eq!(o[4]["owner_pid"], 100);
}

#[test]
fn exited_children_hold_nothing() {
    let (plan, ids) = all_ids();
    let t = serde_json::to_value(build_truth(&plan, &ids, false)).unwrap();
    assert_eq!(t["children"][0]["alive"], false);
    let o = t["objects"].as_array().unwrap();
    assert_eq!(holders(&o[0]), h(&[(100, "map")]));
    assert_eq!(o[0]["resident_bytes"], 128 * MIB);
    assert_eq!(holders(&o[1]), h(&[]));
    assert_eq!(o[1]["owner_pid"], 100);
    assert_eq!(holders(&o[2]), h(&[(100, "fd")]));
    assert_eq!(holders(&o[4]), h(&[(100, "map")]));
}

#[test]
fn truth_without_extras_is_one_object() {
    let plan = Plan::new(&opts(MIB), 4096).unwrap();
    let ids = Ids {
        master: 1,
        children: [2, 3],
        anon: fid(9),
        sysv: None,
        memfd: None,
        posix: None,
        tmpfs: None,
    };
    let truth = build_truth(&plan, &ids, true);
    assert_eq!(truth.objects.len(), 1);
    let line = serde_json::to_string(&truth).unwrap();
    assert!(!line.contains('\n'));
    assert!(line.starts_with(r#"{"lab":"experiment","master_pid":1,"page_size":4096,"#));
    let text = human(&truth, None);
    assert!(
        text.contains(
            "ps will show the master's RSS as ~0 while the object holds 512.0 KiB (524288 bytes)"
        ),
        "{text}"
    );
    assert!(text.contains("Ctrl-C"));
}

#[test]
fn finds_the_mapping_in_maps() {
    let maps = "\
55c6fef76000-55c6fef77000 r--p 00000000 fe:00 18504   /usr/bin/x
7f95d41eb000-7f95d42eb000 rw-s 00000000 00:01 1027    /memfd:lab buf (deleted)
7f95d43eb000-7f95d44eb000 rw-s 00000000 00:1b 1025    /dev/zero (deleted)
7f95d4521000-7f95d4654000 rw-p 00000000 00:00 0
";
    assert_eq!(
        maps_entry(maps, 0x7f95d43eb000),
        Some(FileId {
            dev: "0:27".to_string(),
            ino: 1025
        })
    );
    assert_eq!(maps_entry(maps, 0x7f95d41eb000).unwrap().ino, 1027);
    assert_eq!(maps_entry(maps, 0x7f95d43ec000), None);
}

#[test]
fn reads_sysv_rss() {
    let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                0          5 600    268435456 100 101 1 0 0 0 0 1 0 1 134217728 4096\n\
                4660       6 1600   4096 100 101 0 0 0 0 0 1 0 1 0 0\n";
    assert_eq!(sysv_rss_swap(text, 5), Some(134217728 + 4096));
    assert_eq!(sysv_rss_swap(text, 6), Some(0));
    assert_eq!(sysv_rss_swap(text, 7), None);
}

#[test]
fn formats_bytes() {
    assert_eq!(fmt_bytes(0), "0 B");
    assert_eq!(fmt_bytes(1000), "1000 B");
    assert_eq!(fmt_bytes(1536), "1.5 KiB");
    assert_eq!(fmt_bytes(256 * MIB), "256.0 MiB");
    assert_eq!(fmt_bytes(3 * (1 << 30)), "3.0 GiB");
}

#[test]
fn describes_errors_without_os_error_suffix() {
    assert_eq!(
        describe(io::Error::from_raw_os_error(libc::EINVAL)),
        "Invalid argument"
    );
    assert_eq!(
        describe(rustix::io::Errno::NOSPC),
        "No space left on device"
    );
}

#[test]
fn validates_durations() {
    assert_eq!(hold_duration(None).unwrap(), None);
    assert_eq!(
        hold_duration(Some(1.5)).unwrap(),
        Some(Duration::from_millis(1500))
    );
    assert!(hold_duration(Some(-1.0)).is_err());
    assert!(hold_duration(Some(f64::NAN)).is_err());
}

#[test]
fn fork_failure_says_what_to_raise() {
    let m = fork_failed_message(1200, 10000, "Resource temporarily unavailable", Some(1234));
    assert!(m.contains("after starting 1200 of 10000 workers"), "{m}");
    assert!(m.contains("ulimit -u"), "{m}");
    assert!(m.contains("1234"), "{m}");
    assert!(m.contains("pid_max"), "{m}");
}

#[test]
fn table_aligns_columns() {
    let t = table(&[
        vec!["A".into(), "BB".into(), "C".into()],
        vec!["AAA".into(), "B".into(), "CC".into()],
    ]);
    assert_eq!(t, "A    BB  C\nAAA  B   CC\n");
}

#[test]
fn reads_mem_available_and_tasks() {
    let meminfo = "MemTotal:       16314044 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n";
    assert_eq!(mem_available(meminfo), Some(8_000_000 * 1024));
    assert_eq!(mem_available("MemFree: 1 kB\n"), None);
    assert_eq!(mem_available("MemAvailable: lots kB\n"), None);
    assert_eq!(
        mem_available("MemAvailable: 99999999999999999999 kB\n"),
        None
    );
}

#[test]
fn refuses_beyond_mem_available() {
    let limits = HostLimits {
        mem_available: Some(100 * MIB),
        ..HostLimits::default()
    };
    assert!(check_memory("x", 100 * MIB, &limits).is_ok());
    let e = check_memory("the lab's objects", 100 * MIB + 1, &limits).unwrap_err();
    assert!(e.contains("MemAvailable is 100.0 MiB"), "{e}");
    assert!(e.contains("--force"), "{e}");
    assert!(check_memory("x", u64::MAX, &HostLimits::default()).is_ok());
    // Every object counts, in whole pages.
    let mut o = opts(MIB);
    o.sysv = Some(MIB);
    o.tmpfs = Some((PathBuf::from("/x"), 1));
    assert_eq!(Plan::new(&o, 4096).unwrap().total_bytes(), 2 * MIB + 4096);
}

#[test]
fn refuses_more_workers_than_the_host_allows() {
    let limits = HostLimits {
        pid_max: Some(1000),
        threads_max: Some(5000),
        tasks: Some(400),
        nproc: None,
        mem_available: None,
    };
    assert!(check_workers(598, &limits).is_ok());
    let e = check_workers(599, &limits).unwrap_err();
    assert!(e.contains("room for 598 more"), "{e}");
    assert!(
        e.contains("kernel.pid_max is 1000 with 400 tasks running"),
        "{e}"
    );
    let e = check_workers(
        100,
        &HostLimits {
            nproc: Some(50),
            ..limits
        },
    )
    .unwrap_err();
    assert!(e.contains("ulimit -u is 50"), "{e}");
    assert!(check_workers(u32::MAX, &HostLimits::default()).is_ok());
}
