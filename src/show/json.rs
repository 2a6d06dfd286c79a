//! `shmwho show --json` (docs/show.md). Page ranges are `[[first_page, page_count], ...]` in
//! object page offsets; sizes in bytes.

use crate::account::show::{ObjectView, ProcessView};
use crate::account::{Accounted, Policy};
use crate::collect::pagemap::{PageRanges, Unread};
use crate::collect::residency::Method;
use crate::model::{Pid, Snapshot, Via};
use crate::render::json::{object_doc, SCHEMA};
use crate::report::object_id;
use crate::schema::ObjectDoc;
use serde::Serialize;

#[derive(Serialize)]
struct ObjectShowDoc<'a> {
    schema: u32,
    page_size: u64,
    /// The object's size in pages.
    pages: u64,
    /// As in the objects view.
    object: ObjectDoc,
    /// How residency was read; null when it could not be.
    residency_method: Option<Method>,
    /// Why the ranges below are null.
    ranges_unavailable: Option<&'a str>,
    resident_ranges: Option<&'a PageRanges>,
    swapped_ranges: Option<&'a PageRanges>,
    /// Resident pages that no live process has in its page tables.
    orphaned_ranges: Option<&'a PageRanges>,
    resident_pages: Option<u64>,
    swapped_pages: Option<u64>,
    orphaned_pages: Option<u64>,
    holders: Vec<HolderShowDoc<'a>>,
    /// Whose memory this is and whether that is normal (the text page's VERDICT).
    verdict: String,
}

#[derive(Serialize)]
struct HolderShowDoc<'a> {
    pid: Pid,
    comm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    via: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    /// Pages of the object in this holder's page tables; empty for an fd, null if unread.
    mapped_ranges: Option<&'a PageRanges>,
    mapped_bytes: Option<u64>,
    pss_bytes: Option<u64>,
    /// `exited` or `denied` when the holder's pagemap could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    unread: Option<&'static str>,
}

static EMPTY: PageRanges = PageRanges::EMPTY;

fn holder_docs<'a>(snap: &'a Snapshot, view: &'a ObjectView) -> Vec<HolderShowDoc<'a>> {
    let o = &snap.objects[view.index];
    o.holders
        .iter()
        .zip(&view.holders)
        .map(|(h, hv)| {
            let mut d = HolderShowDoc {
                pid: h.pid,
                comm: snap.process(h.pid).map_or("", |p| p.comm.as_str()),
                title: snap.process(h.pid).and_then(|p| p.title.as_deref()),
                via: h.via.as_str(),
                start: None,
                end: None,
                offset: None,
                fd: None,
                mapped_ranges: hv.mapped.as_ref(),
                mapped_bytes: hv.mapped.as_ref().map(|r| r.pages() * view.page_size),
                pss_bytes: hv.pss_bytes,
                unread: hv.unread.map(|u| match u {
                    Unread::Vanished => "exited",
                    Unread::Denied => "denied",
                    Unread::Stuck => "stuck",
                }),
            };
            match h.via {
                Via::Map {
                    start, end, offset, ..
                } => {
                    if !snap.notes.addresses_hidden {
                        d.start = Some(crate::report::address_text(start));
                        d.end = Some(crate::report::address_text(end));
                    }
                    d.offset = Some(offset);
                }
                Via::Fd { fd } => {
                    d.fd = Some(fd);
                    d.mapped_ranges = Some(&EMPTY);
                    d.mapped_bytes = Some(0);
                }
            }
            d
        })
        .collect()
}

/// `show --json` of an object; `acc` as for [`super::text::object`].
pub fn object(acc: &Accounted, view: &ObjectView) -> String {
    let snap = acc.snapshot;
    let res = view.residency.as_ref().ok();
    let doc = ObjectShowDoc {
        schema: SCHEMA,
        page_size: view.page_size,
        pages: view.pages,
        object: object_doc(acc, view.index),
        residency_method: res.map(|r| r.method),
        ranges_unavailable: view.residency.as_ref().err().map(|s| s.as_str()),
        resident_ranges: res.map(|r| &r.resident),
        swapped_ranges: res.map(|r| &r.swapped),
        orphaned_ranges: view.orphaned.as_ref(),
        resident_pages: res.map(|r| r.resident.pages()),
        swapped_pages: res.map(|r| r.swapped.pages()),
        orphaned_pages: view
            .orphaned_bytes(&snap.objects[view.index])
            .map(|b| b / view.page_size),
        holders: holder_docs(snap, view),
        verdict: super::words::object_verdict(acc, view, crate::render::units::Units::Iec),
    };
    to_string(&doc)
}

#[derive(Serialize)]
struct ProcessShowDoc<'a> {
    schema: u32,
    pid: Pid,
    ppid: Pid,
    comm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    user: &'a str,
    rss_bytes: u64,
    rss_anon_bytes: u64,
    rss_file_bytes: u64,
    rss_shmem_bytes: u64,
    swap_bytes: u64,
    objects: Vec<ProcObjectDoc<'a>>,
    /// Shared memory charged to the process under each policy.
    charged: Charged,
    /// Ids (as the objects view prints them) of the objects it owns.
    owned_objects: Vec<String>,
    owned_resident_bytes: u64,
    verdict: String,
}

#[derive(Serialize)]
struct Charged {
    owner: u64,
    split: u64,
    touched: u64,
}

#[derive(Serialize)]
struct ProcObjectDoc<'a> {
    object: ObjectDoc,
    /// This process's holders of the object (mappings and fds); empty when it only owns it.
    holds: Vec<HolderShowDoc<'a>>,
    /// Bytes of the object in this process's page tables.
    mapped_bytes: Option<u64>,
    /// This process's PSS of the object.
    pss_bytes: Option<u64>,
    owned: bool,
    /// Resident pages of the object no live process maps.
    orphaned_bytes: Option<u64>,
}

/// `show --json` of a process; `acc` as for [`super::text::process`].
pub fn process(acc: &Accounted, view: &ProcessView) -> String {
    let snap = acc.snapshot;
    let Some(p) = snap.process(view.pid) else {
        return format!(
            "{{\"schema\":{SCHEMA},\"pid\":{},\"exited\":true}}\n",
            view.pid
        );
    };
    let charged = |pol: Policy| view.charged.iter().find(|c| c.0 == pol).map_or(0, |c| c.1);
    let objects = view
        .objects
        .iter()
        .map(|po| {
            let all = holder_docs(snap, &po.view);
            let holds = all
                .into_iter()
                .enumerate()
                .filter(|(i, _)| po.held.contains(i))
                .map(|(_, d)| d)
                .collect();
            ProcObjectDoc {
                object: object_doc(acc, po.view.index),
                holds,
                mapped_bytes: po.mapped_bytes,
                pss_bytes: po.pss_bytes,
                owned: po.owned,
                orphaned_bytes: po.view.orphaned_bytes(&snap.objects[po.view.index]),
            }
        })
        .collect();
    let doc = ProcessShowDoc {
        schema: SCHEMA,
        pid: p.pid,
        ppid: p.ppid,
        comm: &p.comm,
        title: p.title.as_deref(),
        user: &p.user,
        rss_bytes: p.rss_bytes,
        rss_anon_bytes: p.rss_anon_bytes,
        rss_file_bytes: p.rss_file_bytes,
        rss_shmem_bytes: p.rss_shmem_bytes,
        swap_bytes: p.swap_bytes,
        objects,
        charged: Charged {
            owner: charged(Policy::Owner),
            split: charged(Policy::Split),
            touched: charged(Policy::Touched),
        },
        owned_objects: view
            .owned()
            .map(|o| object_id(&snap.objects[o.view.index]))
            .collect(),
        owned_resident_bytes: view
            .owned()
            .map(|o| snap.objects[o.view.index].resident_bytes)
            .sum(),
        verdict: super::text::verdict(acc, view, crate::render::units::Units::Iec),
    };
    to_string(&doc)
}

/// One line: range lists can run to hundreds of thousands of pairs.
fn to_string<T: Serialize>(doc: &T) -> String {
    let mut s = serde_json::to_string(doc).expect("JSON of plain data cannot fail");
    s.push('\n');
    s
}
