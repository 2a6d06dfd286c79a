//! End to end against real servers from Debian packages (.ci/run installs them): PHP-FPM with
//! opcache filled by FastCGI requests, Apache prefork. Each server runs from its own config in
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

/// Sets nr_hugepages and puts back the old value on drop.
struct HugePages {
    before: String,
}

/// The two PHP-FPM tests run one at a time: one reserves huge pages the other must not see.
static HUGE: std::sync::Mutex<()> = std::sync::Mutex::new(());

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

impl HugePages {
    fn reserve(n: u64) -> Option<HugePages> {
        let before = std::fs::read_to_string(NR_HUGEPAGES).ok()?;
        let have: u64 = before.trim().parse().ok()?;
        let g = HugePages { before };
        std::fs::write(NR_HUGEPAGES, (have + n).to_string()).ok()?;
        Some(g)
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(NR_HUGEPAGES, self.before.trim());
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
    let doc = json(&["--json"]);
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
