//! The kernel as the oracle: random scenarios of shared-memory objects in a few processes,
//! checked against the real binary's JSON (rules: docs/oracle.md).
//!
//! `cargo test --test oracle` runs a few hundred scenarios (root only; skipped with a reason
//! otherwise, failed under CI=true). Environment:
//! - `SHMWHO_ORACLE_SEED=N`: run only scenario N, printing its operations
//!   (`SHMWHO_ORACLE_VARIANT=big|swap` for the mixes of the THP and swap phases);
//! - `SHMWHO_ORACLE_BASE=N`: first seed of the run (default: from the clock, printed);
//! - `SHMWHO_ORACLE_SCENARIOS=N`: scenarios of the plain mix (default 200; the THP and swap phases run an eighth of that each);
//! - `SHMWHO_ORACLE_JOBS=N`: scenarios at a time (default 6).
//!
//! A failing scenario is shrunk (operations removed while it still fails) and printed.

mod actor;
mod check;
mod gen;
mod regress;
mod run;

#[path = "../common/mod.rs"]
mod common;

use gen::{Scenario, Variant};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seeds of the scenarios in progress, for the watchdog's message.
static RUNNING: Mutex<std::collections::BTreeSet<u64>> =
    Mutex::new(std::collections::BTreeSet::new());

/// Says which scenarios are still running when the whole run takes over `minutes`.
fn watchdog(minutes: u64) {
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(minutes * 60));
        eprintln!(
            "oracle: still running after {minutes} min: seeds {:?}",
            RUNNING.lock().unwrap()
        );
    });
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[derive(Default)]
struct Totals {
    scenarios: AtomicUsize,
    objects: AtomicUsize,
    ops: AtomicUsize,
    checks: AtomicUsize,
}

/// Runs one scenario; Err carries the failure text.
fn run_one(
    sc: &Scenario,
    env: &run::Env,
    tag: &str,
    totals: Option<&Totals>,
) -> Result<(), String> {
    let mut r = run::Running::start(sc, tag)?;
    for (i, op) in sc.ops.iter().enumerate() {
        r.step(op, env).map_err(|e| format!("op {i} {op:?}: {e}"))?;
    }
    let checks = check::check(&mut r)?;
    if let Some(t) = totals {
        t.scenarios.fetch_add(1, Ordering::Relaxed);
        t.objects.fetch_add(r.model.objs.len(), Ordering::Relaxed);
        t.ops.fetch_add(r.ops_run, Ordering::Relaxed);
        t.checks.fetch_add(checks, Ordering::Relaxed);
    }
    Ok(())
}

/// Wall time a failure may spend shrinking: a failure that needs the scans' retries or a
/// timeout to show (seconds per run) would otherwise keep the run going for many minutes.
const SHRINK_BUDGET: Duration = Duration::from_secs(90);

/// Delta reduction: drop chunks of operations while the scenario still fails, for at most 80
/// runs and [`SHRINK_BUDGET`].
fn shrink(sc: &Scenario, env: &run::Env, tag: &str) -> Scenario {
    let started = Instant::now();
    let more = |tries: usize| tries < 80 && started.elapsed() < SHRINK_BUDGET;
    let mut best = sc.clone();
    let mut chunk = best.ops.len().div_ceil(2).max(1);
    let mut tries = 0;
    while chunk >= 1 && more(tries) {
        let mut i = 0;
        let mut progress = false;
        while i < best.ops.len() && more(tries) {
            let mut cand = best.clone();
            cand.ops.drain(i..(i + chunk).min(cand.ops.len()));
            tries += 1;
            if run_one(&cand, env, &format!("{tag}s{tries}"), None).is_err() {
                best = cand;
                progress = true;
            } else {
                i += chunk;
            }
        }
        if !progress {
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
    }
    best
}

fn phase(
    name: &str,
    base: u64,
    count: u64,
    v: Variant,
    env: &run::Env,
    jobs: usize,
    totals: &Totals,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                if i >= count || failures.lock().unwrap().len() >= 3 {
                    break;
                }
                let seed = base + i;
                RUNNING.lock().unwrap().insert(seed);
                let sc = gen::generate(seed, v);
                let tag = format!("{}-{seed}", std::process::id());
                if let Err(e) = run_one(&sc, env, &tag, Some(totals)) {
                    let small = shrink(&sc, env, &tag);
                    let again = run_one(&small, env, &format!("{tag}m"), None)
                        .err()
                        .unwrap_or_default();
                    failures.lock().unwrap().push(format!(
                        "{name} seed {seed} (rerun: SHMWHO_ORACLE_SEED={seed}{}) failed:\n{e}\n\
                         shrunk to {} actors, ops {:#?}\nwhich fails with:\n{again}",
                        match (v.swap, v.big) {
                            (true, _) => " SHMWHO_ORACLE_VARIANT=swap, with a swap file on",
                            (_, true) => " SHMWHO_ORACLE_VARIANT=big, with shmem_enabled set",
                            _ => "",
                        },
                        small.actors,
                        small.ops
                    ));
                }
                RUNNING.lock().unwrap().remove(&seed);
            });
        }
    });
    failures.into_inner().unwrap()
}

fn main() {
    if let Ok(sock) = std::env::var(actor::ENV_SOCKET) {
        actor::run(&sock);
    }
    // `cargo test -- --list` and the like: one test named oracle.
    if std::env::args().any(|a| a == "--list") {
        println!("oracle: test");
        return;
    }
    if !common::is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            eprintln!("oracle: needs root (map_files, mounts, swap), and CI=true");
            std::process::exit(1);
        }
        eprintln!("skipped: needs root (map_files, tmpfs mounts, swap)");
        return;
    }
    let started = std::time::Instant::now();
    watchdog(5);
    let tmpfs = common::TmpfsMount::new("64m");
    let huge = common::TmpfsMount::new("64m,huge=always");
    let env = run::Env {
        tmpfs: tmpfs.path.clone(),
        tmpfs_huge: huge.path.clone(),
    };
    let plain = Variant {
        swap: false,
        big: false,
    };
    if let Some(seed) = env_num("SHMWHO_ORACLE_SEED") {
        // Seeds of the variants' phases are offset by 1,000,000 (THP) and 2,000,000 (swap);
        // rerunning one re-creates its mix, not the host setting (set it by hand).
        let v = match () {
            _ if std::env::var("SHMWHO_ORACLE_VARIANT").as_deref() == Ok("big") => Variant {
                swap: false,
                big: true,
            },
            _ if std::env::var("SHMWHO_ORACLE_VARIANT").as_deref() == Ok("swap") => Variant {
                swap: true,
                big: false,
            },
            _ => plain,
        };
        let sc = gen::generate(seed, v);
        println!(
            "oracle: seed {seed}: {} actors, ops {:#?}",
            sc.actors, sc.ops
        );
        match run_one(&sc, &env, &format!("{}-{seed}", std::process::id()), None) {
            Ok(()) => println!("oracle: seed {seed} passed"),
            Err(e) => {
                eprintln!("oracle: seed {seed} failed:\n{e}");
                drop((huge, tmpfs)); // exit runs no destructors
                std::process::exit(1);
            }
        }
        return;
    }
    let base = env_num("SHMWHO_ORACLE_BASE").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() * 1000)
    });
    let count = env_num("SHMWHO_ORACLE_SCENARIOS").unwrap_or(200);
    let jobs = env_num("SHMWHO_ORACLE_JOBS").unwrap_or(6) as usize;
    println!("oracle: base seed {base}, {count} scenarios, {jobs} at a time");
    let totals = Totals::default();
    let mut failures = Vec::new();
    for (name, sc) in regress::scenarios() {
        let tag = format!("{}-r{}", std::process::id(), failures.len());
        match run_one(&sc, &env, &tag, Some(&totals)) {
            Ok(()) => println!("oracle: regression scenario passed: {name}"),
            Err(e) => failures.push(format!("regression scenario {name:?} failed:\n{e}")),
        }
    }
    failures.extend(phase("plain", base, count, plain, &env, jobs, &totals));
    let ci = std::env::var("CI").as_deref() == Ok("true");
    // shmem THP on for every shmem object, then only where asked, with objects big enough
    // (2-4 MiB) for huge pages: st_blocks counts a huge page whole.
    let big = Variant {
        swap: false,
        big: true,
    };
    for mode in ["always", "advise"] {
        match common::ShmemThp::set(mode) {
            Some(_guard) => {
                println!("oracle: shmem_enabled={mode}");
                failures.extend(phase(
                    &format!("shmem_enabled={mode}"),
                    base + 1_000_000,
                    count / 8,
                    big,
                    &env,
                    jobs,
                    &totals,
                ));
            }
            None if ci => failures.push(format!("cannot set {} to {mode}", common::SHMEM_ENABLED)),
            None => eprintln!(
                "skipped shmem_enabled={mode}: cannot set {}",
                common::SHMEM_ENABLED
            ),
        }
    }
    // Pages pushed out to a swap file with MADV_PAGEOUT: resident + swap still st_blocks.
    match common::SwapFile::new(64) {
        Ok(_swap) => {
            println!("oracle: with a swap file");
            let v = Variant {
                swap: true,
                big: false,
            };
            failures.extend(phase(
                "swap",
                base + 2_000_000,
                count / 8,
                v,
                &env,
                jobs,
                &totals,
            ));
            if count >= 80 && check::SWAPPED.load(Ordering::Relaxed) == 0 {
                failures.push("swap phase: no object had a page swapped out".into());
            }
        }
        Err(e) if ci => failures.push(format!("swap variant: {e}")),
        Err(e) => eprintln!("skipped the swap variant: {e}"),
    }
    drop((huge, tmpfs));
    report(&totals, started);
    if !failures.is_empty() {
        for f in failures.drain(..) {
            eprintln!("{f}\n");
        }
        std::process::exit(1);
    }
}

fn report(t: &Totals, started: std::time::Instant) {
    println!(
        "oracle: objects seen with swapped pages: {}, resident in whole 2 MiB pages: {}",
        check::SWAPPED.load(Ordering::Relaxed),
        check::HUGE.load(Ordering::Relaxed)
    );
    println!(
        "oracle: {} scenarios, {} objects, {} operations, {} checks in {:.1} s",
        t.scenarios.load(Ordering::Relaxed),
        t.objects.load(Ordering::Relaxed),
        t.ops.load(Ordering::Relaxed),
        t.checks.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
