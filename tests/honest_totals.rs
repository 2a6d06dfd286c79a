//! Honest totals: a scan that cannot read a process says so, with what its status shows,
//! instead of blaming its shared memory on counter drift or calling it "no shared memory".
//!
//! Runs as root: a child of root maps shared memory, and the scan runs as uid 65534 with
//! `setpriv`, for which root's child is another user's process.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn as_nobody(args: &[&str]) -> Value {
    let out = {
        let _g = lock();
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .args(args)
            .current_dir("/")
            .output()
    };
    let out = match out {
        Ok(o) => o,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("setpriv: {e}"),
        Err(e) => {
            common::skip(&format!("setpriv: {e}"));
            return Value::Null;
        }
    };
    parse_ok(args, &out)
}

#[test]
fn unreadable_process_is_listed_with_its_rss_shmem() {
    if !require_root("switches to uid 65534 with setpriv") {
        return;
    }
    let pg = page();
    let region = SharedRegion::new(8);
    let addr = region.addr();
    let c = fork_child(&[&region], &[], After::Pause, move || {
        child::touch(addr, 0, 5, pg);
        0
    });
    let pid = c.pid();

    let doc = as_nobody(&["--json"]);
    if doc.is_null() {
        return;
    }
    assert_eq!(doc["complete"], false, "{}", doc["unreadable"]);
    let list = doc["unreadable"].as_array().expect("unreadable array");
    let me = list
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("child {pid} not in unreadable: {list:?}"));
    assert_eq!(me["reason"], "other_user", "{me}");
    assert_eq!(me["user"], "root", "{me}");
    // It maps the 5 pages it wrote (and this test's other MADV_DOFORK mappings: none).
    assert!(u(&me["rss_shmem_bytes"]) >= 5 * pg, "{me}");
    let sum: u64 = list.iter().map(|p| u(&p["rss_shmem_bytes"])).sum();
    assert_eq!(u(&doc["unreadable_rss_shmem_bytes"]), sum);
    assert!(me.get("title").is_some(), "{me}");

    // `show pid:N` of it says it could not be read, and what its status shows.
    let page = as_nobody(&["show", &format!("pid:{pid}"), "--json"]);
    let verdict = page["verdict"].as_str().unwrap_or_default();
    assert!(verdict.contains("could not be read"), "{verdict}");
    assert!(!verdict.contains("has no shared memory"), "{verdict}");
    c.kill();
}
