//! Property tests for every `/proc` parser: arbitrary bytes and mutated real captures
//! (`tests/fixtures/`) never panic and never hang, and text in the kernel's own format parses
//! back to exactly what was printed, however hostile the names in it.
//!
//! Case counts are small so the whole file runs in seconds in CI. Fuzz longer with, e.g.,
//! `PROPTEST_CASES=20000 cargo test --release --test proptest_parsers` (every property then
//! runs that many cases; `SHMWHO_BIN=path` picks the binary the fake-procfs property runs).
//!
//! A hang is caught by a watchdog: each parse runs on its own thread and must return within
//! [`WATCHDOG`], which is orders of magnitude above the microseconds it takes. It is a hang
//! detector, not a timing assertion.

pub(crate) use proptest::prelude::*;
pub(crate) use proptest::sample::Index;
pub(crate) use shmwho::collect::{
    cgroup, maps, meminfo, mountinfo, pagemap, smaps, stat, status, sysv,
};
pub(crate) use shmwho::model::{CgroupVersion, SysvSegment};
pub(crate) use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

mod captures;
mod cgroups;
mod fake_host;
mod fake_proc;
mod formats;
mod inputs;
mod robustness;
mod round_trips;

pub(crate) use formats::*;
pub(crate) use inputs::*;

pub(crate) const WATCHDOG: Duration = Duration::from_secs(30);

pub(crate) const MAPS: &[u8] = include_bytes!("../fixtures/maps_lab.txt");
pub(crate) const SMAPS: &[u8] = include_bytes!("../fixtures/smaps_lab.txt");
pub(crate) const STATUS: &[u8] = include_bytes!("../fixtures/status_lab.txt");
pub(crate) const STAT: &[u8] = include_bytes!("../fixtures/stat_lab.txt");
pub(crate) const SYSV: &[u8] = include_bytes!("../fixtures/sysvipc_shm.txt");
pub(crate) const MOUNTINFO: &[u8] = include_bytes!("../fixtures/mountinfo.txt");
pub(crate) const PASSWD: &[u8] =
    b"root:x:0:0:root:/root:/bin/bash\nfake-user:x:1000:1000::/home/f:/bin/sh\n";
pub(crate) const MEMINFO: &[u8] = include_bytes!("../fixtures/meminfo.txt");
pub(crate) const CGROUP_HYBRID: &[u8] = include_bytes!("../fixtures/cgroup_hybrid.txt");
pub(crate) const CGROUP_V2: &[u8] = include_bytes!("../fixtures/cgroup_v2.txt");
pub(crate) const CGROUP_MOUNTINFO: &[u8] =
    include_bytes!("../fixtures/mountinfo_cgroup_hybrid.txt");
pub(crate) const MEMORY_STAT_V1: &[u8] = include_bytes!("../fixtures/memory_stat_v1.txt");
pub(crate) const MEMORY_STAT_V2: &[u8] = include_bytes!("../fixtures/memory_stat_v2.txt");

/// `PROPTEST_CASES` overrides every property's case count.
pub(crate) fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Runs `f(input)` on a thread and fails if it does not return within [`WATCHDOG`]. A panic in
/// `f` is passed on, so proptest shrinks the input.
pub(crate) fn bounded<T: Send + 'static>(what: &str, input: &[u8], f: fn(&[u8]) -> T) -> T {
    let owned = input.to_vec();
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let r = f(&owned);
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "{what} did not return within {WATCHDOG:?} on {} input bytes: {:?}",
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(300)])
        ),
    }
}
