//! `shmwho export` against real objects: a scrape over HTTP carries the lab's figures to the
//! byte, a slow or malformed client blocks no one, the server is read-only, and the textfile is
//! written whole.

mod common;

use common::*;
use std::io::Write as _;
use std::time::Duration;

/// The lab's memfd (held as an fd, so measured exactly without privileges) and, as root, its
/// anonymous shared region: `shmwho_object_resident_bytes` equals the lab's ground truth.
#[test]
fn scrape_carries_the_lab_objects_exactly() {
    let lab = Spawned::start(&[
        "lab", "--size", "4M", "--memfd", "3M", "--json", "--for", "300",
    ]);
    let truth = lab.json();
    let (_exporter, addr) = start_exporter(&["--min-interval", "0", "--top-objects", "100000"]);
    let (status, head, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"));
    let samples = parse_metrics(&body);
    let mut checked = 0;
    for o in truth["objects"].as_array().unwrap() {
        let kind = o["kind"].as_str().unwrap();
        if kind == "anon_shared" && !is_root() {
            eprintln!("skipped anon_shared: needs root (map_files)");
            continue;
        }
        let dev = o["dev"].as_str().unwrap();
        let id = o["inode"].to_string();
        let got = object_metric(&samples, "shmwho_object_resident_bytes", kind, dev, &id)
            .unwrap_or_else(|| panic!("no series for {kind} {dev} {id}:\n{body}"));
        assert_eq!(got, u(&o["resident_bytes"]), "{kind} resident");
        let size = object_metric(&samples, "shmwho_object_size_bytes", kind, dev, &id).unwrap();
        assert_eq!(size, u(&o["size_bytes"]), "{kind} size");
        let s = samples
            .iter()
            .find(|s| {
                s.name == "shmwho_object_resident_bytes"
                    && s.labels["id"] == id
                    && s.labels["dev"] == dev
            })
            .unwrap();
        assert_eq!(s.labels["exact"], "true");
        if kind == "memfd" {
            assert_eq!(s.labels["name"], "memfd:shmwho-lab");
            assert_eq!(s.labels["owner"], "shmwho");
        }
        checked += 1;
    }
    assert!(checked >= 1);
    // The lab master is charged (owner policy) what it owns.
    let master = truth["master_pid"].to_string();
    let owned: u64 = truth["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["owner_pid"] == truth["master_pid"])
        .map(|o| u(&o["resident_bytes"]))
        .sum();
    if is_root() {
        let charged = samples
            .iter()
            .find(|s| s.name == "shmwho_process_shared_charged_bytes" && s.labels["pid"] == master)
            .unwrap_or_else(|| panic!("master {master} not among the top processes:\n{body}"));
        assert_eq!(charged.value, owned.to_string());
        assert_eq!(charged.labels["charge"], "owner");
        assert!(
            charged.labels["cgroup"].starts_with('/'),
            "{:?}",
            charged.labels
        );
    }

    // A client that names only the classic text format gets it.
    let (status, head, body) = http_raw(
        &addr,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain;version=0.0.4\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!body.contains("# EOF"));
}

/// Clients that never finish their request, send garbage or too much hold no scrape up. The
/// request timeout is raised to 10 minutes so that a server serving one client at a time would
/// make the scrape below wait that long, and fail its 60 s read timeout.
#[test]
fn slow_and_malformed_clients_block_no_scrape() {
    let (exporter, addr) = start_exporter(&["--request-timeout", "600s", "--min-interval", "0"]);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /metr").unwrap();
        stalled.push(s);
    }
    for _ in 0..2 {
        stalled.push(std::net::TcpStream::connect(&addr).unwrap()); // says nothing at all
    }
    let (status, _, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("shmwho_meminfo_shmem_bytes "));

    let (status, _, _) = http_raw(&addr, b"\x00\x01\x02garbage\r\n\r\n");
    assert_eq!(status, 400);
    let (status, _, _) = http_raw(&addr, b"GET /metrics HTTP/1.1\r\nX: \xff\xfe\r\n\r\n");
    assert_eq!(status, 400, "not UTF-8");
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    let (status, _, _) = http_raw(&addr, &huge);
    assert_eq!(status, 431, "a head over 8 KiB");
    // A client that closes before the answer does not take the server down.
    {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    }
    drop(stalled);
    let (status, _, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.ends_with("# EOF\n"));
    let mut exporter = exporter;
    assert!(
        exporter.child.try_wait().unwrap().is_none(),
        "the exporter is still running"
    );
}

#[test]
fn read_only_get_and_head() {
    let (_exporter, addr) = start_exporter(&[]);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let (status, head, _) = http_raw(
            &addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status, 405, "{method}");
        assert!(head.contains("\r\nAllow: GET, HEAD\r\n"), "{head}");
    }
    for path in ["/metricsx", "/metrics/", "/../etc/passwd", "/index.html"] {
        let (status, _, _) = http_get(&addr, path);
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = http_get(&addr, "/metrics?name[]=x");
    assert_eq!(status, 200, "query strings are ignored");
    // A landing page links /metrics.
    let (status, head, body) = http_get(&addr, "/");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(body.contains("<a href=\"/metrics\">"), "{body}");
    // HEAD: the headers of the GET answer, no body.
    let (status, head, body) = http_raw(&addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty(), "{body}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert!(len > 1000, "the length of the metrics: {len}");
}

/// 64 connections that say nothing, trickle a request line or never read their answer, opened
/// again as fast as the server drops them, delay no scrape by more than a second. The request
/// deadlines are raised to 10 minutes, so only evicting idle connections can make room.
#[test]
fn sixty_four_idle_connections_delay_no_scrape() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (mut exporter, addr) = start_exporter(&[
        "--request-timeout",
        "600s",
        "--request-line-timeout",
        "600s",
        "--min-interval",
        "1h",
    ]);
    let mut held = Vec::new();
    for i in 0..64 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        match i % 4 {
            0 => {} // silent
            1 => s.write_all(b"GET /metr").unwrap(),
            2 => s
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap(),
            // A whole request whose answer it never reads.
            _ => s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap(),
        }
        held.push(s);
    }
    // An attacker keeps opening idle connections while the scrapes run.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flood = {
        let (stop, addr) = (stop.clone(), addr.clone());
        std::thread::spawn(move || {
            let mut more = Vec::new();
            while !stop.load(Ordering::Relaxed) && more.len() < 400 {
                if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                    let _ = s.write_all(b"G");
                    more.push(s);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            more.len()
        })
    };
    for i in 0..10 {
        let t = std::time::Instant::now();
        let (status, _, body) = http_get(&addr, "/metrics");
        let took = t.elapsed();
        assert_eq!(status, 200, "scrape {i}");
        assert!(body.ends_with("# EOF\n"));
        assert!(took < Duration::from_secs(1), "scrape {i} took {took:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(flood.join().unwrap() > 0);
    assert!(
        exporter.child.try_wait().unwrap().is_none(),
        "still running"
    );
}

/// The textfile holds every series once, in the 0.0.4 format, and is never seen half written.
#[test]
fn textfile_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let memfd = Memfd::new("shmwho-export-textfile", 16 * page());
    pwrite_pages(memfd.raw(), 0, 5);
    let (dev, ino) = memfd.identity();

    let out = run(&["export", "--textfile", d, "--top-objects", "100000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(dir.path().join("shmwho.prom")).unwrap();
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "0.0.4 format"
    );
    let samples = parse_metrics(&text);
    assert_eq!(
        object_metric(
            &samples,
            "shmwho_object_resident_bytes",
            "memfd",
            &dev,
            &ino.to_string()
        ),
        Some(5 * page())
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["shmwho.prom"], "no temporary file left behind");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("shmwho.prom"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o644, "readable by node_exporter");

    // --loop rewrites it every 50 ms; every read sees a whole file.
    let mut looping = Spawned {
        child: {
            let _g = lock();
            std::process::Command::new(bin())
                .args(["export", "--textfile", d, "--loop", "--interval", "50ms"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        },
        first_line: String::new(),
    };
    let path = dir.path().join("shmwho.prom");
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut rewritten = false;
    for _ in 0..300 {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with('\n')
                && text.contains(
                    "# TYPE shmwho_scan_timestamp_seconds gauge\nshmwho_scan_timestamp_seconds "
                ),
            "a partial file:\n{text}"
        );
        rewritten |= std::fs::metadata(&path).unwrap().modified().unwrap() != before;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(rewritten, "--loop rewrote the file");
    looping.stop();
    let status = looping.child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM ends the loop cleanly: {status:?}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left behind");
}

/// Names with quotes, backslashes and newlines reach the scraper intact, one sample per line.
#[test]
fn hostile_names_escaped() {
    let name = "q\"b\\s\nnl";
    let memfd = Memfd::new(name, 4 * page());
    pwrite_pages(memfd.raw(), 0, 3);
    let (dev, ino) = memfd.identity();
    let out = run(&["export", "--top-objects", "100000"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let samples = parse_metrics(&text);
    let s = samples
        .iter()
        .find(|s| {
            s.name == "shmwho_object_resident_bytes"
                && s.labels["dev"] == dev
                && s.labels["id"] == ino.to_string()
        })
        .expect("the memfd's series");
    assert_eq!(s.labels["name"], format!("memfd:{name}"));
    assert_eq!(s.value, (3 * page()).to_string());
    assert!(text.contains(r#"name="memfd:q\"b\\s\nnl""#));
}

#[test]
fn bad_flags_fail_with_one_line() {
    for (args, want) in [
        (
            &["export", "--listen", "256.0.0.1:1"][..],
            "cannot listen on 256.0.0.1:1",
        ),
        (
            &["export", "--textfile", "/nonexistent/dir"][..],
            "not a directory",
        ),
        (&["export", "--min-interval", "soon"][..], "not a duration"),
        (
            &["export", "--textfile", "/tmp", "--loop", "--interval", "0"][..],
            "--interval",
        ),
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        if out.status.code() == Some(1) {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }
}

/// Names that would drive a terminal (an escape sequence, a bell, a right-to-left override)
/// reach the scrape as visible escapes: the text holds none of those characters.
#[test]
fn terminal_controls_in_names_escaped() {
    let name = "t\x1b]0;owned\x07\u{202e}gpj";
    let memfd = Memfd::new(name, 4 * page());
    pwrite_pages(memfd.raw(), 0, 1);
    let (dev, ino) = memfd.identity();
    for format in ["openmetrics", "prometheus"] {
        let out = run(&["export", "--top-objects", "100000", "--format", format]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains(['\x1b', '\x07', '\u{202e}']),
            "raw terminal controls in the scrape"
        );
        let samples = parse_metrics(&text);
        let s = samples
            .iter()
            .find(|s| {
                s.name == "shmwho_object_resident_bytes"
                    && s.labels["dev"] == dev
                    && s.labels["id"] == ino.to_string()
            })
            .expect("the memfd's series");
        assert_eq!(s.labels["name"], "memfd:t\\x1b]0;owned\\x07\\u{202e}gpj");
    }
}

/// `:PORT` listens on every address (like node_exporter) and, without TLS and auth, warns.
#[test]
fn every_address_warns_without_tls_and_auth() {
    let mut s = Spawned::start(&["export", "--listen", ":0"]);
    let line = s.first_line.trim().to_string();
    let port = line
        .rsplit_once(':')
        .and_then(|(_, p)| p.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        line.starts_with("shmwho: serving http://[::]:")
            || line.starts_with("shmwho: serving http://0.0.0.0:"),
        "{line}"
    );
    let (status, _, _) = http_get(&format!("127.0.0.1:{port}"), "/metrics");
    assert_eq!(status, 200, "reached over IPv4 loopback");
    s.stop();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut s.child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("warning: serving") && err.contains("without TLS and basic auth"),
        "{err}"
    );
    // Loopback: no warning.
    let mut s = Spawned::start(&["export", "--listen", "127.0.0.1:0"]);
    s.stop();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut s.child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("warning"), "{err}");
}

/// A self-signed certificate and a bcrypt password file in exporter-toolkit's format: only
/// the right user and password over TLS get the metrics; no credentials, a wrong password or
/// an unknown user get 401; a client in the clear gets nothing.
#[test]
fn tls_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let web = write_web_config(dir.path(), "prometheus", "s3cret");
    let (_exporter, addr) = start_exporter(&["--web-config", web.to_str().unwrap()]);
    let ca = std::fs::read_to_string(dir.path().join("server.crt")).unwrap();
    let get = |auth: Option<(&str, &str)>, method: &str| {
        let mut req = format!("{method} /metrics HTTP/1.1\r\nHost: {addr}\r\n");
        if let Some((u, p)) = auth {
            req += &format!("Authorization: {}\r\n", basic(u, p));
        }
        req += "\r\n";
        https_raw(&addr, &ca, req.as_bytes()).unwrap_or_else(|e| panic!("{method} {auth:?}: {e}"))
    };
    let (status, head, body) = get(Some(("prometheus", "s3cret")), "GET");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.contains("shmwho_meminfo_shmem_bytes "), "{body}");
    let (status, _, body) = get(Some(("prometheus", "s3cret")), "HEAD");
    assert_eq!((status, body.as_str()), (200, ""));
    for auth in [
        None,
        Some(("prometheus", "wrong")),
        Some(("mallory", "s3cret")),
    ] {
        let (status, head, body) = get(auth, "GET");
        assert_eq!(status, 401, "{auth:?}");
        assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
        assert!(!body.contains("shmwho_"), "{body}");
    }
    // Plain HTTP to the TLS port: no answer in the clear.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut resp);
    assert!(!String::from_utf8_lossy(&resp).contains("shmwho_"));
    // 64 clients that never start their handshake delay no authorized scrape by a second.
    let idle: Vec<_> = (0..64)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let (status, _, _) = get(Some(("prometheus", "s3cret")), "GET");
        assert_eq!(status, 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    drop(idle);
    // A client that does not trust the certificate gets no connection.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    assert!(https_raw(&addr, &other.cert.pem(), b"GET / HTTP/1.1\r\n\r\n").is_err());
}

#[test]
fn bad_web_config_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    for (text, want) in [
        ("basic_auth_users:\n  a: plaintext\n", "not a bcrypt hash"),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "missing.crt",
        ),
        ("tls_server_config:\n  cert: inline\n", "unknown field"),
    ] {
        std::fs::write(&web, text).unwrap();
        let out = run(&[
            "export",
            "--listen",
            "127.0.0.1:0",
            "--web-config",
            web.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty());
    }
}
