//! Runs of the real binary and readers of its JSON.

#[allow(unused_imports)]
use super::*;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shmwho")
}

pub fn cmd() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("shmwho").expect("shmwho binary");
    c.timeout(Duration::from_secs(120));
    c
}

/// Runs the binary under [`lock`].
pub fn run(args: &[&str]) -> Output {
    let _g = lock();
    run_unlocked(args)
}

pub fn run_unlocked(args: &[&str]) -> Output {
    cmd().args(args).output().expect("run shmwho")
}

/// Runs with `args` (which should include `--json`), asserts success and parses stdout.
pub fn json(args: &[&str]) -> Value {
    parse_ok(args, &run(args))
}

pub fn parse_ok(args: &[&str], out: &Output) -> Value {
    assert!(
        out.status.success(),
        "shmwho {args:?} failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shmwho {args:?} printed invalid JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The objects view of the whole host.
pub fn objects_doc() -> Value {
    json(&["--json"])
}

pub fn objects(doc: &Value) -> &Vec<Value> {
    doc["objects"].as_array().expect("objects array")
}

/// The object with this (dev, inode), if listed.
pub fn find_inode<'a>(doc: &'a Value, id: &(String, u64)) -> Option<&'a Value> {
    objects(doc)
        .iter()
        .find(|o| o["kind"] != "sysv" && o["dev"] == id.0.as_str() && o["inode"] == id.1)
}

pub fn find_shmid(doc: &Value, shmid: i32) -> Option<&Value> {
    objects(doc)
        .iter()
        .find(|o| o["kind"] == "sysv" && o["shmid"] == shmid)
}

pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned integer, got {v}"))
}

/// (pid, via) of each holder, sorted.
pub fn holders(obj: &Value) -> Vec<(i64, String)> {
    let mut h: Vec<(i64, String)> = obj["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| {
            (
                h["pid"].as_i64().unwrap(),
                h["via"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    h.sort();
    h
}

pub fn owner_pid(obj: &Value) -> Option<i64> {
    (!obj["owner"].is_null()).then(|| obj["owner"]["pid"].as_i64().unwrap())
}

/// (pid, bytes) of each charge, sorted, zero charges left out.
pub fn charges(obj: &Value) -> Vec<(i64, u64)> {
    let mut c: Vec<(i64, u64)> = obj["charges"]
        .as_array()
        .expect("charges")
        .iter()
        .map(|c| (c["pid"].as_i64().unwrap(), u(&c["bytes"])))
        .filter(|c| c.1 > 0)
        .collect();
    c.sort();
    c
}

/// A process row of a procs document.
pub fn process(doc: &Value, pid: i64) -> Option<&Value> {
    doc["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == pid)
}

pub fn sorted(mut v: Vec<(i64, String)>) -> Vec<(i64, String)> {
    v.sort();
    v
}

pub fn map(pid: i64) -> (i64, String) {
    (pid, "map".to_string())
}

pub fn fd(pid: i64) -> (i64, String) {
    (pid, "fd".to_string())
}
