//! Snapshot tests of `show`'s text and JSON on fixed, hand-built snapshots and views: they
//! guard the renderers while the drill-down moves into the pipeline.

use super::{json, text};
use crate::account::show::{fill_pss, object_view, process_objects, process_view, ObjectView};
use crate::account::tests::{object, process, snapshot};
use crate::account::{account, Policy};
use crate::collect::drill::{Drill, HolderPages};
use crate::collect::pagemap::{PageRanges, Unread};
use crate::collect::residency::{Method, Residency};
use crate::model::{Holder, ObjectDetail, Snapshot, Via};
use crate::render::RenderOptions;

const PAGE: u64 = 4096;

fn r(runs: &[(u64, u64)]) -> PageRanges {
    PageRanges::from_runs(runs.iter().copied())
}

/// A 16-page anonymous shared object (inode 7) mapped by 10 (the first quarter in its page
/// tables) and 11 (the first half), held by 12 as an fd, and one process 13 whose pagemap was
/// denied; 12 resident pages, 4 of them orphaned.
fn fixture() -> (Snapshot, ObjectView) {
    let mut o = object(7, 12 * PAGE, &[10, 11]);
    o.size_bytes = 16 * PAGE;
    o.detail = ObjectDetail::Memfd {
        name: "pool".into(),
    };
    for (i, h) in o.holders.iter_mut().enumerate() {
        h.via = Via::Map {
            start: 0x7f00_0000_0000 + (i as u64) * 0x10_0000,
            end: 0x7f00_0000_0000 + (i as u64) * 0x10_0000 + 16 * PAGE,
            offset: 0,
            shared: true,
            pss_bytes: None,
            rss_bytes: None,
        };
    }
    o.holders.push(Holder {
        pid: 12,
        via: Via::Fd { fd: 5 },
    });
    o.holders.push(Holder {
        pid: 13,
        via: Via::Map {
            start: 0x7f10_0000_0000,
            end: 0x7f10_0000_0000 + 16 * PAGE,
            offset: 0,
            shared: true,
            pss_bytes: None,
            rss_bytes: None,
        },
    });
    let mut procs = vec![
        process(10, 1),
        process(11, 2),
        process(12, 3),
        process(13, 4),
    ];
    for p in &mut procs {
        p.user = "alice".into();
        p.rss_bytes = 64 * PAGE;
        p.rss_shmem_bytes = 8 * PAGE;
    }
    let snap = snapshot(procs, vec![o, object(8, 2 * PAGE, &[11])]);
    // What the drill-down read: child 10 has the first quarter in its page tables, 11 the
    // first half, 12 holds an fd, 13's pagemap was denied.
    let drill = Drill {
        index: 0,
        residency: Ok(Residency {
            size_bytes: 16 * PAGE,
            resident: r(&[(0, 12)]),
            swapped: r(&[]),
            method: Method::Mincore,
        }),
        holders: vec![
            HolderPages::Mapped(r(&[(0, 4)])),
            HolderPages::Mapped(r(&[(0, 8)])),
            HolderPages::Fd,
            HolderPages::Unread(Unread::Denied),
        ],
    };
    let view = object_view(&snap, drill);
    assert_eq!(
        view.orphaned,
        Some(r(&[(8, 4)])),
        "resident pages nobody maps"
    );
    (snap, view)
}

fn ro(bytes: bool) -> RenderOptions {
    RenderOptions {
        units: crate::render::units::Units::raw_if(bytes),
        euid: 0,
        ..Default::default()
    }
}

/// The process page of 11, which maps the memfd and owns object 8 (its only holder), whose
/// residency could not be read.
fn process_page(mut snap: Snapshot, view: ObjectView) -> String {
    let wanted = process_objects(&account(&snap, Policy::Owner), 11);
    assert_eq!(wanted, vec![0, 1]);
    let other = object_view(
        &snap,
        Drill {
            index: 1,
            residency: Err(
                "no handle reaches the object from here (another mount namespace?)".into(),
            ),
            holders: vec![HolderPages::Mapped(r(&[(0, 2)]))],
        },
    );
    let views = vec![view, other];
    for v in &views {
        fill_pss(&mut snap, v);
    }
    let pv = process_view(&snap, 11, views);
    let acc = account(&snap, Policy::Owner);
    text::process(&acc, &pv, &ro(false)) + "\n" + &json::process(&acc, &pv)
}

/// Renders the object page under `policy`, the way `show` does: PSS into the snapshot, then
/// one accounting.
fn object_page(
    mut snap: Snapshot,
    view: &ObjectView,
    policy: Policy,
    json: bool,
    width: usize,
    bytes: bool,
) -> String {
    fill_pss(&mut snap, view);
    let acc = account(&snap, policy);
    if json {
        json::object(&acc, view)
    } else {
        text::object(&acc, view, width, &ro(bytes))
    }
}

#[test]
fn object_text() {
    let (snap, view) = fixture();
    insta::assert_snapshot!(
        "object_text",
        object_page(snap.clone(), &view, Policy::Owner, false, 72, false)
    );
    insta::assert_snapshot!(
        "object_text_bytes_split",
        object_page(snap, &view, Policy::Split, false, 40, true)
    );
}

#[test]
fn object_json() {
    let (snap, view) = fixture();
    insta::assert_snapshot!(
        "object_json",
        object_page(snap, &view, Policy::Touched, true, 0, false)
    );
}

#[test]
fn object_without_residency() {
    let (snap, mut view) = fixture();
    view.residency = Err(
        "opening the object needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (run as root)".into(),
    );
    view.orphaned = None;
    insta::assert_snapshot!(
        "object_text_no_residency",
        object_page(snap.clone(), &view, Policy::Owner, false, 60, false)
    );
    insta::assert_snapshot!(
        "object_json_no_residency",
        object_page(snap, &view, Policy::Owner, true, 0, false)
    );
}

#[test]
fn process_text_and_json() {
    let (snap, view) = fixture();
    insta::assert_snapshot!("process_page", process_page(snap, view));
}

/// A SysV segment (shmid 5, creator gone) with `nattch` attaches and no listed holder, and a
/// /dev/shm-like memfd (inode 6) nobody holds; `unreadable` processes could not be read.
fn unheld(nattch: u64, unreadable: u32) -> Snapshot {
    use crate::model::{SysvKey, SysvSegment};
    let mut seg = object(5, 3 * PAGE, &[]);
    seg.detail = ObjectDetail::sysv(SysvSegment {
        key: SysvKey(0x1234),
        shmid: 5,
        perms: 0o600,
        size_bytes: 4 * PAGE,
        cpid: 99,
        lpid: 99,
        nattch,
        uid: 0,
        cuid: 0,
        ctime: 0,
        rss_bytes: Some(3 * PAGE),
        swap_bytes: Some(0),
    });
    let mut file = object(6, 2 * PAGE, &[]);
    file.detail = ObjectDetail::Memfd { name: "x".into() };
    let mut snap = snapshot(vec![process(10, 1)], vec![seg, file]);
    snap.notes.unreadable = unreadable;
    snap
}

fn unheld_page(snap: &Snapshot, index: usize) -> String {
    let view = object_view(
        snap,
        Drill {
            index,
            residency: Err("no handle".into()),
            holders: vec![],
        },
    );
    text::object(&account(snap, Policy::Owner), &view, 72, &ro(false))
}

#[test]
fn hidden_attaches_and_unread_processes_are_never_no_process() {
    // Unprivileged: the segment's one attach is a process that could not be read.
    let page = unheld_page(&unheld(1, 3), 0);
    assert!(
        page.contains("HOLDERS  none visible: 1 attach, not visible"),
        "{page}"
    );
    assert!(!page.contains("no process"), "{page}");
    assert!(!page.contains("leak candidate"), "{page}");
    assert!(!page.contains("orphaned: all"), "{page}");
    // nattch 0, creator gone: owned by nobody, a leak candidate, with how to free it.
    let page = unheld_page(&unheld(0, 3), 0);
    assert!(page.contains("no process attaches it (nattch 0)"), "{page}");
    assert!(
        page.contains("leak candidate; `ipcrm -m 5` frees it"),
        "{page}"
    );
    // A file nobody visible holds: unheld only when every process was read.
    let page = unheld_page(&unheld(0, 3), 1);
    assert!(
        page.contains("none visible: 3 process(es) could not be read"),
        "{page}"
    );
    assert!(page.contains("no visible process maps it"), "{page}");
    assert!(!page.contains("leak candidate."), "{page}");
    let page = unheld_page(&unheld(0, 0), 1);
    assert!(
        page.contains("none: no process maps it or holds it open"),
        "{page}"
    );
    assert!(page.contains("is owned by nobody"), "{page}");
    assert!(page.contains("a leak candidate"), "{page}");
}

#[test]
fn a_process_owning_many_objects_gets_a_compact_page() {
    // A browser with 14 memfds and one anonymous region; one other process maps one memfd.
    let mut browser = process(20, 1);
    browser.comm = "chrome".into();
    browser.title = Some("/opt/chrome/chrome --no-sandbox".into());
    let mut objects: Vec<_> = (0..14)
        .map(|i| {
            let mut o = object(100 + i, PAGE, &[20]);
            o.detail = ObjectDetail::Memfd {
                name: "shared-memory-region".into(),
            };
            o
        })
        .collect();
    objects.push(object(200, 4 * PAGE, &[20]));
    let mut snap = snapshot(vec![browser, process(21, 2)], objects);
    let views: Vec<ObjectView> = process_objects(&account(&snap, Policy::Owner), 20)
        .into_iter()
        .map(|index| {
            object_view(
                &snap,
                Drill {
                    index,
                    residency: Err("no handle".into()),
                    holders: vec![HolderPages::Mapped(r(&[(0, 1)]))],
                },
            )
        })
        .collect();
    for v in &views {
        fill_pss(&mut snap, v);
    }
    let pv = process_view(&snap, 20, views);
    let acc = account(&snap, Policy::Owner);
    let page = text::process(&acc, &pv, &ro(false));
    assert!(
        page.contains("15 objects, grouped by label, kind and owner"),
        "{page}"
    );
    let row = page
        .lines()
        .find(|l| l.starts_with("memfd"))
        .unwrap_or_else(|| panic!("{page}"));
    assert!(row.contains("Chromium shared memory (browser)"), "{row}");
    assert!(row.contains(" 14 "), "{row}");
    assert!(row.contains("14 map(s)"), "{row}");
    assert!(row.contains("this process"), "{row}");
    assert!(page.lines().count() < 30, "compact: {page}");
    assert!(
        page.contains("Chromium shared memory (browser): memfd ×14 (56.0 KiB resident)"),
        "{page}"
    );
    // JSON keeps every object.
    let doc: serde_json::Value = serde_json::from_str(&json::process(&acc, &pv)).unwrap();
    assert_eq!(doc["objects"].as_array().unwrap().len(), 15);
}

#[test]
fn pages_nobody_maps_of_a_live_owners_object_are_a_cache_not_a_leak() {
    let (mut snap, view) = fixture();
    fill_pss(&mut snap, &view);
    let pv = process_view(&snap, 10, vec![view]);
    let acc = account(&snap, Policy::Owner);
    let v = text::verdict(&acc, &pv, crate::render::units::Units::Iec);
    assert_eq!(
        v,
        "p10 10 owns 48.0 KiB of shared memory that ps shows as 256.0 KiB RSS; 16.0 KiB of it is in no live process's page tables, which is normal for a cache or pool it keeps: freed when it exits or resets it, not a leak"
    );
}
