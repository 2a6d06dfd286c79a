//! The kernel as the oracle: random scenarios of shared-memory objects in a few processes,
//! checked against the real binary's JSON (rules: docs/oracle.md).
//!
//! `cargo test --test oracle` runs a few hundred scenarios (root only; skipped with a reason
//! otherwise, failed under CI=true). Environment:
//! - `SHMWHO_ORACLE_SEED=N`: run only scenario N, printing its operations
//!   (`SHMWHO_ORACLE_VARIANT=big|swap|huge|ns` for the mixes of the THP, swap, hugetlb and
//!   namespace phases);
//! - `SHMWHO_ORACLE_BASE=N`: first seed of the run (default: from the clock, printed);
//! - `SHMWHO_ORACLE_SCENARIOS=N`: scenarios of the plain mix (default 200; the THP, swap and
//!   hugetlb phases run an eighth of that each, the namespace phase a quarter);
//! - `SHMWHO_ORACLE_JOBS=N`: scenarios at a time (default 6).
//!
//! A failing scenario is shrunk (operations removed while it still fails) and printed.

mod actor;
mod check;
mod gen;
mod host;
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
    let started = Instant::now();
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
                         shrunk to {} actors (in namespaces of their own: mask {}), ops {:#?}\n\
                         which fails with:\n{again}",
                        variant_hint(v),
                        small.actors,
                        small.ns,
                        small.ops
                    ));
                }
                RUNNING.lock().unwrap().remove(&seed);
            });
        }
    });
    println!(
        "oracle: phase {name}: {count} scenarios in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    failures.into_inner().unwrap()
}

/// How to rerun a scenario of variant `v`.
fn variant_hint(v: Variant) -> &'static str {
    match v {
        Variant { swap: true, .. } => " SHMWHO_ORACLE_VARIANT=swap, with a swap file on",
        Variant { big: true, .. } => " SHMWHO_ORACLE_VARIANT=big, with shmem_enabled set",
        Variant { huge: true, .. } => " SHMWHO_ORACLE_VARIANT=huge",
        Variant { ns: true, .. } => " SHMWHO_ORACLE_VARIANT=ns",
        _ => "",
    }
}

/// Pages added to the 2 MiB pool for the hugetlb phase: [`gen::MAX_HUGE_OBJECTS`] objects of
/// up to 2 pages per scenario running at once, for 6 at a time.
const POOL_PAGES: u64 = 36;

/// The hugetlb phase's setting: pages added to the pool and a hugetlbfs mount, or why not.
fn hugetlb_setting() -> Result<(host::HugePool, host::HugetlbfsMount), String> {
    let pool = host::HugePool::grow(POOL_PAGES)?;
    let mount = host::HugetlbfsMount::new()?;
    Ok((pool, mount))
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
    let mut env = run::Env {
        tmpfs: tmpfs.path.clone(),
        tmpfs_huge: huge.path.clone(),
        hugetlbfs: None,
    };
    let plain = Variant::default();
    if let Some(seed) = env_num("SHMWHO_ORACLE_SEED") {
        // Seeds of the variants' phases are offset by 1,000,000 (THP) and 2,000,000 (swap);
        // rerunning one re-creates its mix, not the host setting (set it by hand).
        let v = match std::env::var("SHMWHO_ORACLE_VARIANT").as_deref() {
            Ok("big") => Variant { big: true, ..plain },
            Ok("swap") => Variant {
                swap: true,
                ..plain
            },
            Ok("huge") => Variant {
                huge: true,
                ..plain
            },
            Ok("ns") => Variant { ns: true, ..plain },
            _ => plain,
        };
        // The hugetlb mix needs its pool and mount (given back before exit).
        let setting = match v.huge.then(hugetlb_setting).transpose() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipped: hugetlb phase: {e}");
                return;
            }
        };
        env.hugetlbfs = setting.as_ref().map(|s| s.1.path.clone());
        let sc = gen::generate(seed, v);
        println!(
            "oracle: seed {seed}: {} actors (namespace mask {}), ops {:#?}",
            sc.actors, sc.ns, sc.ops
        );
        let res = run_one(&sc, &env, &format!("{}-{seed}", std::process::id()), None);
        drop((setting, huge, tmpfs)); // exit runs no destructors
        match res {
            Ok(()) => println!("oracle: seed {seed} passed"),
            Err(e) => {
                eprintln!("oracle: seed {seed} failed:\n{e}");
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
    let big = Variant { big: true, ..plain };
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
                ..plain
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
            // MADV_PAGEOUT is one operation in five and the kernel may keep a page it was
            // asked to push out: a batch of scenarios can end with nothing in swap (seen once in
            // a run of 25). More batches, with other seeds, before calling the phase unexercised.
            let mut extra = 0;
            while count >= 80 && check::SWAPPED.load(Ordering::Relaxed) == 0 && extra < 3 {
                extra += 1;
                println!("oracle: nothing swapped out yet: another swap batch");
                failures.extend(phase(
                    "swap",
                    base + 2_000_000 + extra * 100_000,
                    count / 8,
                    v,
                    &env,
                    jobs,
                    &totals,
                ));
            }
            if count >= 80 && check::SWAPPED.load(Ordering::Relaxed) == 0 {
                failures.push("swap phase: no object had a page swapped out".into());
            }
        }
        Err(e) if ci => failures.push(format!("swap variant: {e}")),
        Err(e) => eprintln!("skipped the swap variant: {e}"),
    }
    // Hugetlb objects in a pool grown for them, on a hugetlbfs mount of the test's.
    match hugetlb_setting() {
        Ok((pool, mount)) => {
            println!(
                "oracle: hugetlb: {} huge pages added to the pool, hugetlbfs at {}",
                pool.added,
                mount.path.display()
            );
            env.hugetlbfs = Some(mount.path.clone());
            for (name, sc) in regress::huge_scenarios() {
                let tag = format!("{}-h", std::process::id());
                match run_one(&sc, &env, &tag, Some(&totals)) {
                    Ok(()) => println!("oracle: regression scenario passed: {name}"),
                    Err(e) => failures.push(format!("regression scenario {name:?} failed:\n{e}")),
                }
            }
            // Each scenario running at once may reserve 6 pages.
            let at_once = jobs.min((pool.added / 6) as usize).max(1);
            failures.extend(phase(
                "hugetlb",
                base + 3_000_000,
                count / 8,
                Variant {
                    huge: true,
                    ..plain
                },
                &env,
                at_once,
                &totals,
            ));
            env.hugetlbfs = None;
            drop((mount, pool));
            // Huge pages others take from the pool make creations skip, not fail: the phase
            // must still have faulted some in.
            if count >= 80 && check::HUGETLB.load(Ordering::Relaxed) == 0 {
                failures.push("hugetlb phase: no hugetlb object had a huge page faulted in".into());
            }
        }
        Err(e) if ci && !std::path::Path::new(host::HUGEPAGES).exists() => {
            failures.push(format!("hugetlb phase: {e}"))
        }
        Err(e) => eprintln!("skipped the hugetlb phase: {e}"),
    }
    // Actors in IPC and mount namespaces of their own.
    failures.extend(phase(
        "namespaces",
        base + 4_000_000,
        count / 4,
        Variant { ns: true, ..plain },
        &env,
        jobs,
        &totals,
    ));
    if count >= 80 && check::SHMID0.load(Ordering::Relaxed) == 0 {
        failures.push("namespace phase: no segment of another IPC namespace was shmid 0".into());
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
        "oracle: hugetlb objects with huge pages faulted in: {}, objects in another namespace: {} \
         (shmid 0 there: {})",
        check::HUGETLB.load(Ordering::Relaxed),
        check::FOREIGN.load(Ordering::Relaxed),
        check::SHMID0.load(Ordering::Relaxed)
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
