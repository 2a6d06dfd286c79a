//! The reconciliation with `/proc/meminfo`'s Shmem. In a binary of its own, so no other test of
//! this suite creates objects between its two scans.

mod common;

use common::*;
use serde_json::Value;

fn i(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an integer, got {v}"))
}

/// The identities every objects document must satisfy, whatever else runs on the host.
fn check_identities(doc: &Value) {
    assert_eq!(
        i(&doc["explained_bytes"]) + i(&doc["unexplained_bytes"]),
        i(&doc["meminfo_shmem_bytes"]),
        "explained + unexplained = Shmem"
    );
    let objects_sum: u64 = objects(doc).iter().map(|o| u(&o["resident_bytes"])).sum();
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
}

#[test]
fn unheld_posix_shm_raises_the_object_total_by_its_size() {
    let pg = page();
    let k = 37u64;
    let mut deltas = Vec::new();
    // The host is shared: retry until two scans bracket our object with nothing else changing.
    for _attempt in 0..8 {
        let before = objects_doc();
        check_identities(&before);
        let mut shm = PosixShm::new("", k * pg);
        pwrite_pages(shm.raw(), 0, k);
        shm.close();
        let after = objects_doc();
        check_identities(&after);
        let o = find_inode(&after, &shm.identity()).expect("listed");
        assert_eq!(u(&o["resident_bytes"]), k * pg);
        assert!(o["owner"].is_null());
        drop(shm);
        let d = i(&after["objects_resident_bytes"]) - i(&before["objects_resident_bytes"]);
        let e = i(&after["explained_bytes"]) - i(&before["explained_bytes"]);
        let h = i(&after["unheld_bytes"]) - i(&before["unheld_bytes"]);
        if d == (k * pg) as i64 && e == d && h == d {
            return;
        }
        deltas.push((d, e, h));
    }
    panic!(
        "objects/explained/unheld never rose by exactly {} bytes: {deltas:?}",
        k * pg
    );
}
