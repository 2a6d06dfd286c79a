//! Snapshot tests of every renderer on one fixed accounted host: they guard the output while the
//! code under it changes. Accept a deliberate change with `INSTA_UPDATE=always cargo test`.

use super::units::Units;
use super::{json, metrics, table, RenderOptions};
use crate::account::tests::{object, process, snapshot};
use crate::account::{account, Policy};
use crate::model::{
    Accuracy, CgroupMem, CgroupVersion, EstimateReason, FileDetail, Meminfo, ObjectDetail,
    ObjectId, ObjectKind, Pid, SmapsTotals, Snapshot, SysvKey, SysvSegment, TmpfsMount, Via,
};
use crate::report::{GroupBy, ObjectColumn, ProcColumn};
use crate::report::{ObjectQuery, ProcQuery};

const MIB: u64 = 1 << 20;

/// A PHP-FPM master (100) and two workers sharing an anonymous region, a postgres (200) with a
/// removed SysV segment, a memfd held by fd with a hostile name, a POSIX shm file nobody holds,
/// an estimated tmpfs file, and a segment of another IPC namespace.
fn host() -> Snapshot {
    let mut procs = Vec::new();
    for (pid, ppid, comm, user, anon, cg) in [
        (
            100,
            1,
            "php-fpm",
            "root",
            MIB,
            "/system.slice/php-fpm.service",
        ),
        (
            101,
            100,
            "php-fpm",
            "www-data",
            8 * MIB,
            "/system.slice/php-fpm.service",
        ),
        (
            102,
            100,
            "php-fpm",
            "www-data",
            6 * MIB,
            "/system.slice/php-fpm.service",
        ),
        (
            200,
            1,
            "postgres",
            "postgres",
            20 * MIB,
            "/system.slice/postgresql.service",
        ),
        (
            300,
            1,
            "evil\x1b[31m\nname",
            "nobody",
            2 * MIB,
            "/user.slice",
        ),
    ] {
        let mut p = process(pid, pid as u64);
        p.ppid = ppid;
        p.comm = comm.into();
        p.user = user.into();
        p.uid = if user == "root" { 0 } else { 1000 + pid as u32 };
        p.rss_anon_bytes = anon;
        p.rss_file_bytes = 3 * MIB;
        p.rss_shmem_bytes = 4 * MIB;
        p.rss_bytes = anon + 7 * MIB;
        p.swap_bytes = if pid == 200 { MIB } else { 0 };
        p.smaps = Some(SmapsTotals {
            pss_bytes: anon + 2 * MIB,
            uss_bytes: anon,
        });
        p.cgroup = (pid != 300).then(|| cg.to_string());
        procs.push(p);
    }

    let region = object(4242, 48 * MIB, &[100, 101, 102]);

    let mut seg = object(32769, 24 * MIB, &[200]);
    seg.id = ObjectId::Sysv {
        ipc_ns: 1,
        shmid: 32769,
    };
    seg.dev = Some(1);
    seg.detail = ObjectDetail::sysv(SysvSegment {
        key: SysvKey(0x0052_e2c1),
        shmid: 32769,
        perms: 0o1600,
        size_bytes: 32 * MIB,
        cpid: 200,
        lpid: 200,
        nattch: 1,
        uid: 1200,
        cuid: 1200,
        ctime: 1_700_000_000,
        rss_bytes: Some(24 * MIB),
        swap_bytes: Some(2 * MIB),
    });
    seg.swap_bytes = 2 * MIB;

    let mut memfd = object(5151, 16 * MIB, &[300]);
    memfd.detail = ObjectDetail::Memfd {
        name: "buf\ttab\x07".into(),
    };
    memfd.holders[0].via = Via::Fd { fd: 9 };

    let mut posix = object(77, 8 * MIB, &[]);
    posix.dev = Some(27);
    posix.detail = ObjectDetail::PosixShm(FileDetail {
        path: "/dev/shm/sem.lock".into(),
        deleted: false,
        mount_point: Some("/dev/shm".into()),
    });

    let mut tmpfs = object(88, 4 * MIB, &[101]);
    tmpfs.detail = ObjectDetail::Tmpfs(FileDetail {
        path: "/run/cache.bin".into(),
        deleted: true,
        mount_point: Some("/run".into()),
    });
    tmpfs.accuracy = Accuracy::Estimate(EstimateReason::MapFilesDenied);
    if let Via::Map {
        pss_bytes,
        rss_bytes,
        ..
    } = &mut tmpfs.holders[0].via
    {
        *pss_bytes = Some(MIB);
        *rss_bytes = Some(4 * MIB);
    }

    let mut foreign = object(0, MIB, &[102]);
    foreign.id = ObjectId::Sysv {
        ipc_ns: 4026532000,
        shmid: 0,
    };
    foreign.detail = ObjectDetail::Sysv {
        key: Some(SysvKey(0xabcd)),
        segment: None,
        hugetlb: false,
    };
    foreign.foreign_ns = Some(4026532000);

    let mut snap = snapshot(procs, vec![region, seg, memfd, posix, tmpfs, foreign]);
    snap.meminfo = Meminfo {
        mem_total_bytes: 4096 * MIB,
        shmem_bytes: 110 * MIB,
        swap_total_bytes: 1024 * MIB,
        swap_free_bytes: 1000 * MIB,
        hugepage_bytes: 2 * MIB,
    };
    snap.mounts = vec![
        TmpfsMount {
            mount_point: "/dev/shm".into(),
            dev: 27,
            foreign_ns: None,
            used_bytes: Some(10 * MIB),
            size_bytes: Some(64 * MIB),
            hidden: false,
            container: None,
        },
        TmpfsMount {
            mount_point: "/run".into(),
            dev: 25,
            foreign_ns: None,
            used_bytes: None,
            size_bytes: None,
            hidden: true,
            container: None,
        },
    ];
    snap.notes.vanished = 2;
    snap.notes.unreadable = 1;
    snap.notes.unreadable_processes = vec![crate::model::UnreadableProcess {
        pid: 1,
        comm: "process_api".into(),
        user: "root".into(),
        rss_shmem_bytes: 6 * MIB + 400 * 1024,
        reason: crate::model::UnreadableReason::DeniedToRoot,
    }];
    snap.notes.foreign_ipc_ns = 1;
    snap.notes.estimates = vec![(EstimateReason::MapFilesDenied, 1)];
    snap.with_smaps = true;
    snap.cgroups = vec![
        CgroupMem {
            path: "/system.slice/php-fpm.service".into(),
            version: CgroupVersion::V2,
            shmem_bytes: Some(50 * MIB),
        },
        CgroupMem {
            path: "/system.slice/postgresql.service".into(),
            version: CgroupVersion::V2,
            shmem_bytes: None,
        },
    ];
    snap
}

fn human() -> RenderOptions {
    RenderOptions {
        units: Units::Iec,
        euid: 1000,
        ..Default::default()
    }
}

fn raw() -> RenderOptions {
    RenderOptions {
        units: Units::Bytes,
        euid: 0,
        ..Default::default()
    }
}

fn procs_filter(by: Option<GroupBy>, sort: ProcColumn) -> ProcQuery {
    ProcQuery {
        pids: Vec::new(),
        users: Vec::new(),
        comm: None,
        by,
        sort,
        reverse: false,
        top: None,
        pss: true,
        exact: None,
    }
}

#[test]
fn objects_table() {
    let snap = host();
    let acc = account(&snap, Policy::Owner);
    insta::assert_snapshot!(
        "objects_table",
        table::objects(&acc, &ObjectQuery::default(), &human())
    );
    let f = ObjectQuery {
        kinds: vec![ObjectKind::Sysv, ObjectKind::Tmpfs],
        pids: Vec::new(),
        sort: ObjectColumn::Size,
        reverse: false,
        top: Some(2),
    };
    insta::assert_snapshot!(
        "objects_table_bytes_kinds",
        table::objects(&acc, &f, &raw())
    );
    let f = ObjectQuery {
        pids: vec![Pid::from(102)],
        sort: ObjectColumn::Holders,
        ..ObjectQuery::default()
    };
    insta::assert_snapshot!("objects_table_pid", table::objects(&acc, &f, &human()));
    let none = ObjectQuery {
        pids: vec![Pid::from(999)],
        ..ObjectQuery::default()
    };
    insta::assert_snapshot!("objects_table_empty", table::objects(&acc, &none, &human()));
}

#[test]
fn procs_tables() {
    let snap = host();
    let acc = account(&snap, Policy::Split);
    let mut f = procs_filter(None, ProcColumn::Total);
    f.pss = false;
    insta::assert_snapshot!("procs_table", table::procs(&acc, &f, &human()));
    insta::assert_snapshot!(
        "procs_table_pss_bytes_by_pid",
        table::procs(&acc, &procs_filter(None, ProcColumn::Pid), &raw())
    );
    for (name, by) in [
        ("procs_table_by_command", GroupBy::Command),
        ("procs_table_by_user", GroupBy::User),
        ("procs_table_by_tree", GroupBy::Tree),
        ("procs_table_by_cgroup", GroupBy::Cgroup),
    ] {
        insta::assert_snapshot!(
            name,
            table::procs(&acc, &procs_filter(Some(by), ProcColumn::Command), &human())
        );
    }
    let mut f = procs_filter(None, ProcColumn::Shared);
    f.users = vec!["www-data".into()];
    f.comm = Some("php".into());
    f.top = Some(1);
    insta::assert_snapshot!("procs_table_filtered", table::procs(&acc, &f, &human()));
}

#[test]
fn json_documents() {
    let snap = host();
    let acc = account(&snap, Policy::Owner);
    insta::assert_snapshot!("objects_json", json::objects(&acc, &ObjectQuery::default()));
    insta::assert_snapshot!(
        "procs_json",
        json::procs(&acc, &procs_filter(None, ProcColumn::Pid))
    );
    insta::assert_snapshot!(
        "procs_json_by_cgroup",
        json::procs(
            &acc,
            &procs_filter(Some(GroupBy::Cgroup), ProcColumn::Total)
        )
    );
    let mut f = procs_filter(Some(GroupBy::Tree), ProcColumn::Total);
    f.top = Some(2);
    insta::assert_snapshot!("procs_json_by_tree_top", json::procs(&acc, &f));
}

#[test]
fn metrics_text() {
    let snap = host();
    let acc = account(&snap, Policy::Owner);
    let scan = metrics::ScanInfo {
        duration_seconds: 0.125,
        timestamp_seconds: 1_700_000_000.5,
    };
    let opts = metrics::MetricsOptions {
        top: 2,
        top_objects: 3,
    };
    insta::assert_snapshot!(
        "metrics_openmetrics",
        metrics::render(&acc, &opts, &scan, metrics::Format::OpenMetrics)
    );
    insta::assert_snapshot!(
        "metrics_prometheus",
        metrics::render(
            &acc,
            &metrics::MetricsOptions::default(),
            &scan,
            metrics::Format::Prometheus
        )
    );
}

#[test]
fn cgroups_footer() {
    let snap = host();
    let acc = account(&snap, Policy::Touched);
    let rows = crate::report::proc_rows(
        &acc,
        &procs_filter(Some(GroupBy::Cgroup), ProcColumn::Total),
    );
    insta::assert_snapshot!(
        "cgroups_footer",
        super::cgroups::table_footer(&acc, &rows, &human())
    );
    insta::assert_snapshot!(
        "cgroups_json",
        serde_json::to_string_pretty(&super::cgroups::json_docs(&acc, &rows)).unwrap()
    );
}

/// `--exact`: the pages of 100 and 101 overlap (copy-on-write after fork), 300's pages could
/// not be read: its row has no exact figure.
fn exact_scan() -> std::sync::Arc<crate::collect::pagemap::PhysScan> {
    use crate::collect::pagemap::{PhysPages, PhysScan};
    let pages = |anon: std::ops::Range<u64>| PhysPages {
        anon: anon.collect(),
        file: vec![9000, 9001],
    };
    std::sync::Arc::new(PhysScan {
        pages: [
            (100, pages(0..256)),
            (101, pages(128..2048)),
            (102, pages(4096..5632)),
            (200, pages(8192..13312)),
        ]
        .into_iter()
        .collect(),
        vanished: 0,
        denied: 1,
        unread: vec![300],
    })
}

#[test]
fn exact_columns() {
    let snap = host();
    let acc = account(&snap, Policy::Owner);
    let mut f = procs_filter(None, ProcColumn::FreedIfGone);
    f.exact = Some(exact_scan());
    insta::assert_snapshot!("procs_table_exact", table::procs(&acc, &f, &human()));
    f.by = Some(GroupBy::Tree);
    f.sort = ProcColumn::Unique;
    insta::assert_snapshot!("procs_table_exact_by_tree", table::procs(&acc, &f, &raw()));
    insta::assert_snapshot!("procs_json_exact_by_tree", json::procs(&acc, &f));
}

/// Every column's JSON key names a field of the JSON rows: the table and JSON say the same.
#[test]
fn column_json_keys_are_in_the_documents() {
    let snap = host();
    let acc = account(&snap, Policy::Owner);
    let doc: serde_json::Value =
        serde_json::from_str(&json::objects(&acc, &ObjectQuery::default())).unwrap();
    for o in doc["objects"].as_array().unwrap() {
        for c in ObjectColumn::TABLE {
            if let Some(k) = c.json_key() {
                assert!(o.get(k).is_some(), "objects JSON has no {k}: {o}");
            }
        }
    }
    for by in [None, Some(GroupBy::Tree), Some(GroupBy::Cgroup)] {
        let mut q = procs_filter(by, ProcColumn::Pid);
        q.exact = Some(exact_scan());
        let doc: serde_json::Value = serde_json::from_str(&json::procs(&acc, &q)).unwrap();
        let rows = &doc[if by.is_some() { "groups" } else { "processes" }];
        // The first row has every figure (the unread process sorts elsewhere).
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r.get("unique_bytes").is_some())
            .unwrap();
        for c in q.columns().into_iter().chain([ProcColumn::Owned]) {
            assert!(
                row.get(c.json_key()).is_some(),
                "{by:?}: no {}: {row}",
                c.json_key()
            );
        }
    }
    let q = procs_filter(Some(GroupBy::Cgroup), ProcColumn::Total);
    let doc: serde_json::Value = serde_json::from_str(&json::procs(&acc, &q)).unwrap();
    for row in doc["cgroups"].as_array().unwrap() {
        for c in crate::report::CgroupColumn::table(true) {
            assert!(
                row.get(c.json_key()).is_some(),
                "cgroups JSON has no {}",
                c.json_key()
            );
        }
    }
}

/// `--sort` takes each sortable column by its name, and sorting by one orders by its values.
#[test]
fn sort_names_and_order() {
    let snap = host();
    let acc = account(&snap, Policy::Owner);
    let names: Vec<_> = ProcColumn::SORTABLE.iter().map(|c| c.sort_name()).collect();
    assert_eq!(
        names,
        [
            "total",
            "rss",
            "shared",
            "shmem",
            "swap",
            "pss",
            "uss",
            "pid",
            "command",
            "unique",
            "freed-if-gone"
        ]
    );
    for c in ProcColumn::SORTABLE {
        let rows = crate::report::proc_rows(&acc, &procs_filter(None, c));
        let keys: Vec<_> = rows.iter().map(|r| c.cell(r)).collect();
        let sorted = match c {
            ProcColumn::Command => rows.windows(2).all(|w| w[0].comm <= w[1].comm),
            ProcColumn::Pid => rows.windows(2).all(|w| w[0].pid < w[1].pid),
            _ => keys.windows(2).all(|w| w[0].figure() >= w[1].figure()),
        };
        assert!(sorted, "{c:?}: {keys:?}");
    }
    let objs = crate::report::select_objects(
        &acc,
        &ObjectQuery {
            sort: ObjectColumn::Holders,
            ..ObjectQuery::default()
        },
    );
    let holders: Vec<_> = objs
        .iter()
        .map(|&i| ObjectColumn::Holders.cell(&acc, i).figure())
        .collect();
    assert!(holders.windows(2).all(|w| w[0] >= w[1]), "{holders:?}");
}

fn at_width(w: usize) -> RenderOptions {
    RenderOptions {
        width: Some(w),
        ..human()
    }
}

/// Every figure of the full-width table's rows, as a word.
fn figures(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.starts_with(|c: char| c.is_ascii_digit()) && !w.contains('…'))
        .map(str::to_string)
        .collect()
}

/// The table part of a rendered view: its lines up to the first blank one.
fn table_lines(text: &str) -> Vec<&str> {
    text.lines().take_while(|l| !l.is_empty()).collect()
}

#[test]
fn tables_fit_the_width() {
    let snap = host();
    let acc = account(&snap, Policy::Split);
    let procs = procs_filter(Some(GroupBy::Cgroup), ProcColumn::Total);
    for w in [80, 60, 40] {
        let objects = table::objects(&acc, &ObjectQuery::default(), &at_width(w));
        let procs_t = table::procs(&acc, &procs, &at_width(w));
        insta::assert_snapshot!(format!("objects_table_{w}"), objects);
        insta::assert_snapshot!(format!("procs_table_by_cgroup_{w}"), procs_t);
        for text in [&objects, &procs_t] {
            for l in table_lines(text) {
                assert!(l.chars().count() <= w, "{w}: {l:?}");
            }
        }
        // Numbers are never cut: each figure shown is one of the full table's.
        let full = figures(&table::objects(&acc, &ObjectQuery::default(), &human()));
        for f in figures(&table_lines(&objects).join("\n")) {
            assert!(full.contains(&f), "{w}: {f} is not a whole figure");
        }
    }
    // -o brings a dropped column back, and --no-headings leaves out the header.
    let narrow = table::objects(&acc, &ObjectQuery::default(), &at_width(40));
    assert!(narrow.contains("left out to fit"), "{narrow}");
    assert!(!table_lines(&narrow)[0].contains("HOLDERS"), "{narrow}");
    let ro = RenderOptions {
        object_columns: Some(vec![ObjectColumn::Id, ObjectColumn::Holders]),
        no_headings: true,
        ..at_width(40)
    };
    let picked = table::objects(&acc, &ObjectQuery::default(), &ro);
    assert!(!picked.contains("HOLDERS"), "{picked}");
    assert!(!picked.contains("left out"), "{picked}");
    assert_eq!(
        table_lines(&picked).len(),
        snap.objects.len(),
        "one line per object, no header: {picked}"
    );
}

/// The host with postgres (200) moved into a pod, as a cgroup v2 host with kubelet's systemd
/// driver and containerd names it (tests/fixtures/cgroup_k8s_v2.txt), its /dev/shm a 64 MiB
/// emptyDir with 60 MiB used.
fn host_with_pod() -> Snapshot {
    let mut snap = host();
    let text = include_bytes!("../../tests/fixtures/cgroup_k8s_v2.txt");
    let path = crate::collect::cgroup::parse_process(text, CgroupVersion::V2).unwrap();
    let pod_cg = crate::collect::container::pod_cgroup(&path)
        .unwrap()
        .to_string();
    let pg = snap.processes.iter_mut().find(|p| p.pid == 200).unwrap();
    pg.cgroup = Some(path);
    pg.mnt_ns = Some(4026532900);
    snap.pod_cgroups = vec![CgroupMem {
        path: pod_cg,
        version: CgroupVersion::V2,
        shmem_bytes: Some(88 * MIB),
    }];
    snap.mounts.push(TmpfsMount {
        mount_point: "/var/lib/kubelet/pods/8a1e3f7c-2b9d-4c61-9e0a-5d7f3b2c1a90/volumes/kubernetes.io~empty-dir/dshm".into(),
        dev: 0x2a,
        foreign_ns: None,
        used_bytes: Some(60 * MIB),
        size_bytes: Some(64 * MIB),
        hidden: false,
        container: None,
    });
    snap.ns_tmpfs = vec![
        crate::model::NsTmpfs {
            mnt_ns: None,
            mount_point: "/var/lib/kubelet/pods/8a1e3f7c-2b9d-4c61-9e0a-5d7f3b2c1a90/volumes/kubernetes.io~empty-dir/dshm".into(),
            dev: 0x2a,
        },
        crate::model::NsTmpfs {
            mnt_ns: Some(4026532900),
            mount_point: "/dev/shm".into(),
            dev: 0x2a,
        },
    ];
    snap
}

#[test]
fn pods_containers_units() {
    let snap = host_with_pod();
    let acc = account(&snap, Policy::Owner);
    for (name, by) in [
        ("procs_table_by_pod", GroupBy::Pod),
        ("procs_table_by_container", GroupBy::Container),
        ("procs_table_by_unit", GroupBy::Unit),
    ] {
        insta::assert_snapshot!(
            name,
            table::procs(&acc, &procs_filter(Some(by), ProcColumn::Total), &raw())
        );
    }
    insta::assert_snapshot!(
        "procs_json_by_pod",
        json::procs(&acc, &procs_filter(Some(GroupBy::Pod), ProcColumn::Total))
    );
    let scan = metrics::ScanInfo {
        duration_seconds: 0.125,
        timestamp_seconds: 1_700_000_000.5,
    };
    let text = metrics::render(
        &acc,
        &metrics::MetricsOptions::default(),
        &scan,
        metrics::Format::Prometheus,
    );
    let pod_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("pod_") && !l.starts_with('#'))
        .collect();
    insta::assert_snapshot!("metrics_pods", pod_lines.join("\n"));
}
