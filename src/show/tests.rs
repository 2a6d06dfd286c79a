//! Snapshot tests of `show`'s text and JSON on fixed, hand-built snapshots and views: they
//! guard the renderers while the drill-down moves into the pipeline.

use super::object::{HolderView, ObjectView};
use super::process::{ProcObject, ProcessView};
use super::{json, text};
use crate::account::tests::{object, process, snapshot};
use crate::account::Policy;
use crate::collect::pagemap::{PageRanges, Unread};
use crate::collect::residency::{Method, Residency};
use crate::model::{Holder, ObjectKind, Snapshot, Via};
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
    o.kind = ObjectKind::Memfd;
    o.name = Some("pool".into());
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
    let c1 = r(&[(0, 4)]);
    let c2 = r(&[(0, 8)]);
    let pss = super::object::pss_bytes(&[Some(&c1), Some(&c2)], PAGE);
    let view = ObjectView {
        index: 0,
        page_size: PAGE,
        pages: 16,
        swap_in_use: false,
        residency: Ok(Residency {
            size_bytes: 16 * PAGE,
            resident: r(&[(0, 12)]),
            swapped: r(&[]),
            method: Method::Mincore,
        }),
        holders: vec![
            HolderView {
                mapped: Some(c1),
                pss_bytes: pss[0],
                unread: None,
            },
            HolderView {
                mapped: Some(c2),
                pss_bytes: pss[1],
                unread: None,
            },
            HolderView {
                mapped: None,
                pss_bytes: None,
                unread: None,
            },
            HolderView {
                mapped: None,
                pss_bytes: None,
                unread: Some(Unread::Denied),
            },
        ],
        orphaned: Some(r(&[(8, 4)])),
    };
    (snap, view)
}

fn ro(bytes: bool) -> RenderOptions {
    RenderOptions { bytes, euid: 0 }
}

fn process_view(snap: &Snapshot, view: &ObjectView) -> ProcessView {
    let other = ObjectView {
        index: 1,
        page_size: PAGE,
        pages: 4,
        swap_in_use: false,
        residency: Err("no handle reaches the object from here (another mount namespace?)".into()),
        holders: vec![HolderView {
            mapped: Some(r(&[(0, 2)])),
            pss_bytes: Some(2 * PAGE),
            unread: None,
        }],
        orphaned: None,
    };
    let _ = snap;
    ProcessView {
        pid: 11,
        objects: vec![
            ProcObject {
                view: view.clone(),
                held: vec![1],
                mapped_bytes: Some(8 * PAGE),
                pss_bytes: view.holders[1].pss_bytes,
                owned: false,
            },
            ProcObject {
                view: other,
                held: vec![0],
                mapped_bytes: Some(2 * PAGE),
                pss_bytes: Some(2 * PAGE),
                owned: true,
            },
        ],
        charged: vec![
            (Policy::Owner, 2 * PAGE),
            (Policy::Split, 6 * PAGE),
            (Policy::Touched, 8 * PAGE),
        ],
    }
}

#[test]
fn object_text() {
    let (snap, view) = fixture();
    insta::assert_snapshot!(
        "object_text",
        text::object(&snap, &view, Policy::Owner, 72, &ro(false))
    );
    insta::assert_snapshot!(
        "object_text_bytes_split",
        text::object(&snap, &view, Policy::Split, 40, &ro(true))
    );
}

#[test]
fn object_json() {
    let (snap, view) = fixture();
    insta::assert_snapshot!("object_json", json::object(&snap, &view, Policy::Touched));
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
        text::object(&snap, &view, Policy::Owner, 60, &ro(false))
    );
    insta::assert_snapshot!(
        "object_json_no_residency",
        json::object(&snap, &view, Policy::Owner)
    );
}

#[test]
fn process_text_and_json() {
    let (snap, view) = fixture();
    let pv = process_view(&snap, &view);
    insta::assert_snapshot!("process_text", text::process(&snap, &pv, &ro(false)));
    insta::assert_snapshot!("process_json", json::process(&snap, &pv));
}
