//! The reconciliation with `/proc/meminfo`'s Shmem: identities that hold whatever else is on
//! the host, and our own object's place in them.

mod common;

use common::*;
use serde_json::Value;

fn i(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an integer, got {v}"))
}

/// The identities every objects document must satisfy, whatever else runs on the host (other
/// test runs create and remove objects all the time, SHM_HUGETLB segments among them).
fn check_identities(doc: &Value) {
    assert_eq!(
        i(&doc["explained_bytes"]) + i(&doc["unexplained_bytes"]),
        i(&doc["meminfo_shmem_bytes"]),
        "explained + unexplained = Shmem"
    );
    // hugetlb segments are listed but are not Shmem: left out of the total.
    let objects_sum = shmem_objects_resident(doc);
    assert_eq!(u(&doc["objects_resident_bytes"]), objects_sum);
    let unheld_files: u64 = doc["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["unheld_files_bytes"].as_u64())
        .sum();
    assert_eq!(
        u(&doc["explained_bytes"]),
        objects_sum + unheld_files,
        "explained = objects + unheld tmpfs files"
    );
    for m in doc["mounts"].as_array().unwrap() {
        if let (Some(used), Some(unheld)) =
            (m["used_bytes"].as_u64(), m["unheld_files_bytes"].as_u64())
        {
            assert_eq!(unheld, used.saturating_sub(u(&m["listed_bytes"])), "{m}");
        }
    }
    // unheld_bytes: the objects nobody is charged for (no owner), hugetlb ones included.
    let mut unowned = 0;
    for o in objects(doc) {
        if o["owner"].is_null() {
            assert!(charges(o).is_empty(), "{o}");
            unowned += u(&o["resident_bytes"]);
        }
    }
    assert_eq!(
        u(&doc["unheld_bytes"]),
        unowned,
        "unheld = objects with no owner"
    );
}

/// An unheld POSIX shm object counts once: its resident bytes are in the objects total and in
/// unheld_bytes (the identities above, now with our object among the terms), and in the
/// `/dev/shm` mount's listed bytes, so not again as an unheld file. Checked on our object
/// only: a difference of two host-wide totals moves with every other run on the host.
#[test]
fn unheld_posix_shm_raises_the_object_total_by_its_size() {
    let pg = page();
    let k = 37u64;
    check_identities(&objects_doc());
    let mut shm = PosixShm::new("", k * pg);
    pwrite_pages(shm.raw(), 0, k);
    shm.close();
    let after = objects_doc();
    check_identities(&after);
    let o = find_inode(&after, &shm.identity()).expect("listed");
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    assert_eq!(u(&o["swap_bytes"]), 0, "{o}");
    assert!(o["owner"].is_null(), "{o}");
    assert!(charges(o).is_empty(), "{o}");
    assert!(!is_hugetlb(o));
    let dev_shm = after["mounts"]
        .as_array()
        .unwrap()
        .iter()
        // /dev/shm may be mounted over another (stacked, as on these machines): ours is the
        // one on top, not hidden.
        .find(|m| m["mount_point"] == "/dev/shm" && m["hidden"] != true && m["namespace"].is_null())
        .expect("/dev/shm in mounts");
    assert!(
        u(&dev_shm["listed_bytes"]) >= k * pg,
        "our file is listed on /dev/shm, not left as an unheld file: {dev_shm}"
    );
    assert!(u(&dev_shm["used_bytes"]) >= k * pg, "{dev_shm}");
}
