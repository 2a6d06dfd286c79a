//! End to end against real servers from Debian packages (.ci/run installs them): PHP-FPM with
//! opcache filled by FastCGI requests, PostgreSQL 15 with huge_pages=on, Apache prefork. Each server runs from its own config in
//! a temp dir, on unix sockets or a free loopback port, in its own process group that a guard
//! kills even when the test panics. Outside CI a missing package skips with a reason; under
//! CI=true it fails.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True when every program exists; otherwise skips (prints why) or, under CI, fails.
fn have(programs: &[&str], why: &str) -> bool {
    let missing: Vec<&&str> = programs.iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{missing:?} missing ({why}): .ci/run installs them");
    common::skip_missing(&msg);
    false
}

/// A server in its own process group: SIGTERM, then SIGKILL, to the whole group on drop.
struct Server {
    pgid: i32,
    child: std::process::Child,
}

impl Server {
    fn start(cmd: &mut Command) -> Server {
        cmd.process_group(0).stdin(Stdio::null());
        let child = cmd.spawn().expect("start the server");
        Server {
            pgid: child.id() as i32,
            child,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created; no memory involved.
        unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; stragglers of the group (workers) go too.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pid_file(p: &Path) -> Option<i64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `stat -L` of the owner's mapping of the object in map_files: allocated bytes.
fn map_files_bytes(obj: &Value, pid: i64) -> u64 {
    let h = obj["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["pid"].as_i64() == Some(pid) && h["via"] == "map")
        .unwrap_or_else(|| panic!("{pid} does not map {obj}"));
    let path = format!(
        "/proc/{pid}/map_files/{}-{}",
        h["start"].as_str().unwrap(),
        h["end"].as_str().unwrap()
    );
    let st = rustix::fs::stat(path.as_str()).unwrap_or_else(|e| panic!("stat {path}: {e}"));
    st.st_blocks as u64 * 512
}

/// Objects owned by `pid` with this label.
fn labelled<'a>(doc: &'a Value, pid: i64, label: &str) -> Vec<&'a Value> {
    objects(doc)
        .iter()
        .filter(|o| owner_pid(o) == Some(pid) && o["label"] == label)
        .collect()
}

/// `n` more huge pages in the default pool while it lives: added to `nr_hugepages` and
/// subtracted again on drop (other test runs on this host reserve theirs at the same time:
/// writing back an absolute value would take theirs away).
struct HugePages(u64);

/// The two PHP-FPM tests and the PostgreSQL one run one at a time: one reserves huge pages
/// another must not see.
static HUGE: std::sync::Mutex<()> = std::sync::Mutex::new(());

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

fn nr_hugepages() -> Option<u64> {
    std::fs::read_to_string(NR_HUGEPAGES)
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl HugePages {
    fn reserve(n: u64) -> Option<HugePages> {
        let have = nr_hugepages()?;
        std::fs::write(NR_HUGEPAGES, (have + n).to_string()).ok()?;
        // What the kernel managed to add is what the guard gives back.
        let added = nr_hugepages()?.saturating_sub(have).min(n);
        Some(HugePages(added))
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        if let Some(now) = nr_hugepages() {
            let _ = std::fs::write(NR_HUGEPAGES, now.saturating_sub(self.0).to_string());
        }
    }
}

fn free_huge_pages() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";
const CGI_FCGI: &str = "/usr/bin/cgi-fcgi";
const OPCACHE_SO: &str = "/usr/lib/php/20220829/opcache.so";

/// Starts php-fpm with 64 MiB of opcache, 2 workers recycled every 3 requests, and sends it
/// 12 requests for 3 scripts; returns the server, the master's pid and the temp dir.
fn php_fpm(dir: &Path) -> (Server, i64) {
    let d = dir.display();
    std::fs::write(
        dir.join("php.ini"),
        format!(
            "zend_extension={OPCACHE_SO}\nopcache.enable=1\nopcache.memory_consumption=64\nopcache.huge_code_pages=0\nopcache.validate_timestamps=0\nerror_log={d}/php.log\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("fpm.conf"),
        format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n\n[pool]\nuser = nobody\ngroup = nogroup\nlisten = {d}/fpm.sock\npm = static\npm.max_children = 2\npm.max_requests = 3\n"
        ),
    )
    .unwrap();
    for i in 0..3 {
        std::fs::write(
            dir.join(format!("s{i}.php")),
            format!("<?php $a = []; for ($i = 0; $i < 100; $i++) {{ $a[] = 'x{i}' . $i; }} echo count($a), \"\\n\";"),
        )
        .unwrap();
    }
    let server = Server::start(
        Command::new(PHP_FPM)
            .args(["-F", "-R", "-c"])
            .arg(dir.join("php.ini"))
            .arg("-y")
            .arg(dir.join("fpm.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for("php-fpm's socket", || dir.join("fpm.sock").exists());
    let master = {
        let mut pid = None;
        wait_for("php-fpm's pid file", || {
            pid = pid_file(&dir.join("fpm.pid"));
            pid.is_some()
        });
        pid.unwrap()
    };
    for n in 0..12 {
        let script = dir.join(format!("s{}.php", n % 3));
        let out = Command::new(CGI_FCGI)
            .args(["-bind", "-connect"])
            .arg(dir.join("fpm.sock"))
            .env_clear()
            .env("SCRIPT_FILENAME", &script)
            .env("REQUEST_METHOD", "GET")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .output()
            .expect("cgi-fcgi");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("100"), "request {n}: {text}");
    }
    (server, master)
}

/// Opcache found, exact against map_files, owned by the master, labelled; the master's title.
fn check_opcache(master: i64, huge: bool) {
    // pm.max_requests recycles the workers after the requests: wait until the master has
    // forked their successors, which map the opcache as well (checked below).
    let worker_holds = |doc: &Value| {
        labelled(doc, master, "PHP opcache").iter().any(|o| {
            o["holders"].as_array().unwrap().iter().any(|h| {
                h["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("php-fpm: pool pool"))
            })
        })
    };
    let mut doc = json(&["--json"]);
    for _ in 0..50 {
        if worker_holds(&doc) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        doc = json(&["--json"]);
    }
    let found = labelled(&doc, master, "PHP opcache");
    assert_eq!(found.len(), 1, "one opcache owned by {master}: {doc}");
    let o = found[0];
    assert_eq!(u(&o["size_bytes"]), 64 << 20, "{o}");
    assert_eq!(o["kind"], "anon_shared", "{o}");
    assert_eq!(
        u(&o["resident_bytes"]),
        map_files_bytes(o, master),
        "resident == stat -L of the master's map_files: {o}"
    );
    assert!(u(&o["resident_bytes"]) > 0, "requests filled it: {o}");
    let page = u(&o["page_size_bytes"]);
    if huge {
        assert_eq!(page, 2 << 20, "opcache in huge pages: {o}");
    } else {
        assert_eq!(page, 4096, "{o}");
    }
    let title = o["owner"]["title"].as_str().unwrap_or_default();
    assert!(title.starts_with("php-fpm: master process"), "{o}");
    // A worker holds it too, under its own title.
    assert!(
        o["holders"].as_array().unwrap().iter().any(|h| h["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("php-fpm: pool pool"))),
        "{o}"
    );
    // The scoreboard beside it.
    assert_eq!(
        labelled(&doc, master, "PHP-FPM scoreboard").len(),
        1,
        "{doc}"
    );
    // People see the label and the title in the table.
    let table = String::from_utf8(run(&["objects", "--pid", &master.to_string()]).stdout).unwrap();
    assert!(table.contains("PHP opcache"), "{table}");
    assert!(
        table.contains(&format!("{master} php-fpm: master process")),
        "{table}"
    );
    // `show pid:` of the master: its opcache is a cache it keeps, never a leak.
    let page = json(&["show", &format!("pid:{master}"), "--json"]);
    let verdict = page["verdict"].as_str().unwrap_or_default();
    assert!(verdict.starts_with("php-fpm: master process"), "{verdict}");
    assert!(verdict.contains(" owns "), "{verdict}");
    if verdict.contains("page tables") {
        assert!(
            verdict.contains("PHP opcache") && verdict.contains("not a leak"),
            "{verdict}"
        );
    }
    let procs = json(&["procs", "--json", "--comm", "master process"]);
    assert!(
        procs["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"].as_i64() == Some(master)),
        "--comm matches titles: {procs}"
    );
}

#[test]
fn php_fpm_opcache_is_found_exact_owned_and_labelled() {
    if !require_root("map_files and php-fpm -R")
        || !have(
            &[PHP_FPM, CGI_FCGI, OPCACHE_SO],
            "php8.2-fpm, php8.2-opcache, libfcgi-bin",
        )
    {
        return;
    }
    let _one = HUGE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // No huge pages free: opcache falls back to 4 KiB pages. Another test may have reserved
    // some; then the huge page variant below covers this server.
    if free_huge_pages() >= 32 {
        common::skip("huge pages are free on this host; opcache would land in them");
        return;
    }
    let (_server, master) = php_fpm(dir.path());
    check_opcache(master, false);
}

#[test]
fn php_fpm_opcache_in_huge_pages() {
    if !require_root("nr_hugepages and map_files")
        || !have(
            &[PHP_FPM, CGI_FCGI, OPCACHE_SO],
            "php8.2-fpm, php8.2-opcache, libfcgi-bin",
        )
    {
        return;
    }
    let _one = HUGE.lock().unwrap_or_else(|e| e.into_inner());
    // 64 MiB of opcache is 32 huge pages; reserve a few more for concurrent tests.
    let Some(_pages) = HugePages::reserve(40) else {
        common::skip("could not reserve huge pages");
        return;
    };
    if free_huge_pages() < 32 {
        common::skip("the kernel could not reserve 32 huge pages");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, master) = php_fpm(dir.path());
    check_opcache(master, true);
}

const APACHE: &str = "/usr/sbin/apache2";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn apache_prefork_scoreboard_is_found_owned_and_labelled() {
    if !require_root("map_files")
        || !have(
            &[APACHE, "/usr/lib/apache2/modules/mod_mpm_prefork.so"],
            "apache2",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    std::fs::write(
        dir.path().join("httpd.conf"),
        format!(
            "ServerRoot /etc/apache2\nLoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so\nLoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nMutex file:{d} default\nDefaultRuntimeDir {d}\nListen 127.0.0.1:{port}\nServerName localhost\nUser nobody\nGroup nogroup\nDocumentRoot {d}\nStartServers 2\nMinSpareServers 1\nMaxSpareServers 3\n"
        ),
    )
    .unwrap();
    let _server = Server::start(
        Command::new(APACHE)
            .args(["-DFOREGROUND", "-f"])
            .arg(dir.path().join("httpd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let mut parent = None;
    wait_for("apache's pid file", || {
        parent = pid_file(&dir.path().join("httpd.pid"));
        parent.is_some()
    });
    let parent = parent.unwrap();
    wait_for("apache's children", || {
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .is_ok_and(|c| c.split_whitespace().count() >= 2)
    });
    let doc = json(&["--json"]);
    let found = labelled(&doc, parent, "Apache scoreboard");
    assert_eq!(found.len(), 1, "one scoreboard owned by {parent}: {doc}");
    let o = found[0];
    assert_eq!(o["kind"], "anon_shared", "{o}");
    assert_eq!(u(&o["resident_bytes"]), map_files_bytes(o, parent), "{o}");
    assert!(
        holders(o).len() >= 3,
        "the parent and its children map it: {o}"
    );
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// uid and gid of the `postgres` user (the package makes it; the server refuses to run as root).
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// A command run as the postgres user.
fn as_postgres(program: &str, (uid, gid): (u32, u32)) -> Command {
    let mut c = Command::new(format!("{PG_BIN}/{program}"));
    c.uid(uid).gid(gid).current_dir("/").env_clear();
    c
}

/// Removes the SysV segments a postmaster made if it had to be killed (a clean stop removes
/// them itself); runs after the server's guard.
struct SysvOf(std::cell::Cell<i64>);

impl Drop for SysvOf {
    fn drop(&mut self) {
        let cpid = self.0.get();
        let Ok(text) = std::fs::read_to_string("/proc/sysvipc/shm") else {
            return;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 4 && f[4].parse::<i64>().ok() == Some(cpid) {
                if let Ok(id) = f[1].parse::<i32>() {
                    // SAFETY: shmctl(IPC_RMID) on a segment id; no memory passed.
                    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
                }
            }
        }
    }
}

#[test]
fn postgresql_main_segment_in_huge_pages_is_found_exact_owned_and_labelled() {
    if !require_root("nr_hugepages, map_files and running as postgres")
        || !have(
            &[&format!("{PG_BIN}/postgres"), &format!("{PG_BIN}/initdb")],
            "postgresql-15",
        )
    {
        return;
    }
    let Some(ids) = postgres_ids() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no postgres user: postgresql-15 makes it"
        );
        eprintln!("skipped: no postgres user");
        return;
    };
    let _one = HUGE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in [dir.path(), data.as_path()] {
        std::os::unix::fs::chown(p, Some(ids.0), Some(ids.1)).unwrap();
    }
    let init = as_postgres("initdb", ids)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .output()
        .expect("initdb");
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    // The exact number of huge pages this configuration needs.
    let settings = ["-c", "shared_buffers=24MB", "-c", "max_connections=20"];
    let pages: i64 = {
        let out = as_postgres("postgres", ids)
            .arg("-D")
            .arg(&data)
            .args(settings)
            .args(["-C", "shared_memory_size_in_huge_pages"])
            .output()
            .expect("postgres -C");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("postgres -C: {e}: {out:?}"))
    };
    // -1: the kernel has no huge pages to offer (no hugetlb support).
    let Ok(pages) = u64::try_from(pages) else {
        eprintln!(
            "skipped: no huge pages on this kernel (shared_memory_size_in_huge_pages {pages})"
        );
        return;
    };
    let Some(_pages) = HugePages::reserve(pages + 4) else {
        eprintln!("skipped: could not reserve huge pages");
        return;
    };
    if free_huge_pages() < pages {
        eprintln!("skipped: the kernel could not reserve {pages} huge pages");
        return;
    }
    let port = free_port().to_string();
    let sockets = format!("unix_socket_directories={}", dir.path().display());
    let postmaster_cell = SysvOf(std::cell::Cell::new(0));
    let _server = Server::start(
        as_postgres("postgres", ids)
            .arg("-D")
            .arg(&data)
            .args(settings)
            .args(["-c", "huge_pages=on", "-c", "listen_addresses=", "-c"])
            .arg(&sockets)
            .args(["-c", "fsync=off", "-p", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // postmaster.pid's 8th line turns "ready" once the server accepts connections.
    let pid_file = data.join("postmaster.pid");
    wait_for("postgres ready", || {
        std::fs::read_to_string(&pid_file)
            .is_ok_and(|t| t.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
    });
    let postmaster = pid_file_first(&pid_file);
    postmaster_cell.0.set(postmaster);
    wait_for("the checkpointer", || {
        std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children"))
            .is_ok_and(|c| c.split_whitespace().count() >= 3)
    });

    let doc = json(&["--json"]);
    let found = labelled(&doc, postmaster, "PostgreSQL main shared memory");
    assert_eq!(
        found.len(),
        1,
        "one main segment owned by {postmaster}: {doc}"
    );
    let o = found[0];
    assert_eq!(o["kind"], "anon_shared", "{o}");
    assert_eq!(u(&o["page_size_bytes"]), 2 << 20, "huge_pages=on: {o}");
    assert_eq!(u(&o["size_bytes"]), pages * (2 << 20), "{o}");
    assert_eq!(
        u(&o["resident_bytes"]),
        map_files_bytes(o, postmaster),
        "{o}"
    );
    assert!(u(&o["resident_bytes"]) > 0, "{o}");
    assert!(
        o["owner"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("{PG_BIN}/postgres -D "))),
        "the postmaster's title: {o}"
    );
    let titles: Vec<&str> = o["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["title"].as_str())
        .collect();
    assert!(titles.contains(&"postgres: checkpointer"), "{titles:?}");
    // The SysV interlock beside it, owned by the postmaster too.
    assert_eq!(
        labelled(&doc, postmaster, "PostgreSQL SysV interlock").len(),
        1,
        "{doc}"
    );
    let hugetlb = &doc["hugetlb"];
    assert!(
        u(&hugetlb["explained_bytes"]) >= u(&o["resident_bytes"]),
        "{hugetlb}"
    );
    // People see the label and the titles.
    let table =
        String::from_utf8(run(&["objects", "--pid", &postmaster.to_string()]).stdout).unwrap();
    assert!(table.contains("PostgreSQL main shared memory"), "{table}");
    let procs = json(&["procs", "--json", "--comm", "postgres: checkpointer"]);
    let list = procs["processes"].as_array().unwrap();
    assert!(
        list.iter().any(|p| p["title"] == "postgres: checkpointer"),
        "--comm matches titles: {procs}"
    );
    // A clean stop: SIGINT is PostgreSQL's fast shutdown (the guard's SIGTERM waits for clients).
    // SAFETY: kill(2) on the postmaster this test started.
    unsafe { libc::kill(postmaster as i32, libc::SIGINT) };
}

fn pid_file_first(p: &Path) -> i64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {}", p.display()))
}
