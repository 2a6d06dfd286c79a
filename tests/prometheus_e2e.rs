//! A real Prometheus server scrapes `shmwho export` on loopback every second; its query API
//! returns the lab object's resident bytes to the byte.
//!
//! A second run serves over TLS with basic auth (`--web-config`): Prometheus scrapes it with
//! the CA file and the password, and a job with a wrong password is down.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`, installed by `.ci/run`); skipped
//! with a message without it, and failed under CI=true, where a missing tool is a defect. Waits are bounded polls (Prometheus needs a few seconds to start and scrape), never
//! assertions on time.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET `path`: the body of a 200 answer, None otherwise (also while nothing listens yet).
fn try_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8(resp).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")).then(|| body.to_string())
}

/// `/api/v1/query` result vector, or None while Prometheus is not answering.
fn query(addr: &str, q: &str) -> Option<Vec<Value>> {
    let body = try_get(addr, &format!("/api/v1/query?query={}", encode(q)))?;
    let v: Value = serde_json::from_str(&body).ok()?;
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"].as_array().cloned()
}

/// Polls `f` every 250 ms, up to `tries` times.
fn poll<T>(tries: u32, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..tries {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// The prometheus binary; None (the test skips) without it, a failure under CI=true.
fn prometheus_or_skip() -> Option<PathBuf> {
    let found = prometheus_binary();
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and the prometheus binary is missing: .ci/run installs the Debian package"
        );
        eprintln!("skipped: the prometheus binary is not installed (apt-get install prometheus)");
    }
    found
}

#[test]
fn prometheus_scrapes_the_lab_object_exactly() {
    let Some(prom) = prometheus_or_skip() else {
        return;
    };
    scrape_the_lab(&prom, None);
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let Some(prom) = prometheus_or_skip() else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let web = write_web_config(certs.path(), "prometheus", "s3cret");
    scrape_the_lab(&prom, Some((&web, &certs.path().join("server.crt"))));
}

/// Starts the lab, an exporter (over TLS with basic auth when `tls` gives the web config and
/// the CA certificate) and Prometheus, and checks the lab's memfd through Prometheus' API.
fn scrape_the_lab(prom: &Path, tls: Option<(&Path, &Path)>) {
    let lab = Spawned::start(&[
        "lab", "--size", "4M", "--memfd", "3M", "--json", "--for", "600",
    ]);
    let truth = lab.json();
    let memfd = truth["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "memfd")
        .unwrap()
        .clone();
    let mut args = vec!["--min-interval", "0", "--top-objects", "100000"];
    let web_config = tls.map(|(web, _)| web.to_str().unwrap().to_string());
    if let Some(w) = &web_config {
        args.extend(["--web-config", w]);
    }
    let (exporter, target) = start_exporter(&args);
    if tls.is_some() {
        assert!(
            exporter.first_line.contains("https://"),
            "{}",
            exporter.first_line
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let mut yaml =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    match tls {
        None => {
            yaml += &format!(
                "  - job_name: shmwho\n    static_configs:\n      - targets: ['{target}']\n"
            )
        }
        Some((_, ca)) => {
            for (job, password) in [("shmwho", "s3cret"), ("shmwho_wrong_password", "wrong")] {
                yaml += &format!(
                    "  - job_name: {job}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prometheus\n      password: {password}\n    static_configs:\n      - targets: ['{target}']\n",
                    ca.display()
                );
            }
        }
    }
    std::fs::write(&config, yaml).unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let mut server = Spawned {
        child: {
            let _g = lock();
            std::process::Command::new(prom)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={web}"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
                .spawn()
                .expect("start prometheus")
        },
        first_line: String::new(),
    };
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Up to 60 s for Prometheus to start and scrape the target successfully.
    let up = poll(240, || {
        if server.child.try_wait().ok().flatten().is_some() {
            panic!("prometheus exited:\n{}", log());
        }
        query(&web, "up{job=\"shmwho\"} == 1").filter(|r| !r.is_empty())
    });
    assert!(up.is_some(), "target never up:\n{}", log());

    let q = format!(
        "shmwho_object_resident_bytes{{kind=\"memfd\",dev=\"{}\",id=\"{}\"}}",
        memfd["dev"].as_str().unwrap(),
        memfd["inode"]
    );
    let result = poll(120, || query(&web, &q).filter(|r| !r.is_empty()))
        .unwrap_or_else(|| panic!("{q} never arrived:\n{}", log()));
    assert_eq!(result.len(), 1, "{result:?}");
    let value = result[0]["value"][1].as_str().unwrap();
    assert_eq!(
        value,
        memfd["resident_bytes"].to_string(),
        "resident bytes through Prometheus"
    );
    assert_eq!(result[0]["metric"]["name"], "memfd:shmwho-lab");
    assert_eq!(result[0]["metric"]["job"], "shmwho");

    // The scrape was OpenMetrics (the UNIT line gives the metadata API its unit).
    let meta = try_get(&web, "/api/v1/metadata?metric=shmwho_object_resident_bytes").unwrap();
    assert!(meta.contains("\"unit\":\"bytes\""), "{meta}");

    if tls.is_some() {
        // The job with the wrong password is scraped and refused: down, not absent.
        let down = poll(120, || {
            query(&web, "up{job=\"shmwho_wrong_password\"} == 0").filter(|r| !r.is_empty())
        });
        assert!(
            down.is_some(),
            "the wrong password was not refused:\n{}",
            log()
        );
    }

    server.stop();
}
