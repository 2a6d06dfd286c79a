//! `shmwho export`: Prometheus metrics of the host's shared memory, served over HTTP
//! (`--listen`), written for node_exporter's textfile collector (`--textfile`), or printed once.
//!
//! Each scan is collect → account → [`render::metrics`]; the rendered text is cached, so however
//! often and however many clients scrape, the host is scanned at most once per
//! `--min-interval`.

mod http;
mod web;

use crate::account::{self, Policy};
use crate::collect::Options;
use crate::render::metrics::{self, Format, MetricsOptions, ScanInfo};
use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The port `--listen` uses when given no address. Not among the ports commonly used by
/// Prometheus exporters; loopback only unless an address says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9479";

/// File name written in the `--textfile` directory.
pub const TEXTFILE_NAME: &str = "shmwho.prom";

/// What `shmwho export` was asked for.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Serve GET /metrics on this address.
    pub listen: Option<String>,
    /// With `listen`: TLS and basic auth from this file (exporter-toolkit's format).
    pub web_config: Option<PathBuf>,
    /// With `listen`: scan at most once per this long.
    pub min_interval: Duration,
    /// Write `shmwho.prom` in this directory.
    pub textfile: Option<PathBuf>,
    /// With `textfile`: rewrite it every `interval`.
    pub repeat: bool,
    /// With `repeat`: time between scans.
    pub interval: Duration,
    /// Processes and cgroups with a series each.
    pub top: usize,
    /// Objects with a series each.
    pub top_objects: usize,
    /// Charging policy of the per-process and per-cgroup series.
    pub charge: Policy,
    /// Format when printing to stdout.
    pub format: Format,
    /// Time a client has to send its request head.
    pub request_timeout: Duration,
    /// Time a client has to send its request line.
    pub request_line_timeout: Duration,
    /// Where procfs and the host's files are.
    pub paths: crate::collect::HostPaths,
}

/// Serves, writes or prints the metrics.
pub fn run(args: ExportOptions, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    if args.repeat && args.interval.is_zero() {
        bail!("--interval must be more than 0 with --loop");
    }
    let scanner = Scanner {
        paths: args.paths.clone(),
        repeated: args.listen.is_some() || args.repeat,
        policy: args.charge,
        opts: MetricsOptions {
            top: args.top,
            top_objects: args.top_objects,
        },
    };
    crate::privilege::check_paths(&args.paths)?;
    if args.listen.is_some() || args.repeat {
        // A server rescans for as long as it runs, so it would keep the capabilities: run it
        // as a service granted them (README: Restricted install).
        crate::privilege::refuse_when_elevated("export --listen and --loop")?;
    }
    if let Some(addr) = &args.listen {
        return listen(scanner, addr, &args, out);
    }
    if let Some(dir) = &args.textfile {
        return textfile(scanner, dir, args.repeat.then_some(args.interval));
    }
    let text = scanner.scan(&[args.format])?;
    out.write_all(text[0].as_bytes())?;
    Ok(())
}

struct Scanner {
    paths: crate::collect::HostPaths,
    /// Scans again and again (`--listen`, `--loop`).
    repeated: bool,
    policy: Policy,
    opts: MetricsOptions,
}

impl Scanner {
    /// One scan, rendered in each of `formats`.
    fn scan(&self, formats: &[Format]) -> anyhow::Result<Vec<Arc<String>>> {
        let start = Instant::now();
        // A one-shot export (the only kind an elevated run allows) drops every capability here.
        let snap = crate::privilege::scan_once(&Options {
            paths: self.paths.clone(),
            smaps: self.policy.needs_smaps(),
            cgroups: true,
            bpf: true,
            repeated: self.repeated,
            // The metrics show no process's memory counters and name processes by command
            // and user, never by title.
            counters: false,
            titles: false,
            pss_totals_only: false,
        })?;
        let acc = account::account(&snap, self.policy);
        let scan = ScanInfo {
            duration_seconds: start.elapsed().as_secs_f64(),
            timestamp_seconds: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        Ok(formats
            .iter()
            .map(|&f| Arc::new(metrics::render(&acc, &self.opts, &scan, f)))
            .collect())
    }
}

/// The last scan, rendered.
struct Cached {
    at: Instant,
    openmetrics: Arc<String>,
    prometheus: Arc<String>,
}

fn listen(
    scanner: Scanner,
    addr: &str,
    args: &ExportOptions,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    // The web config first: a broken file fails before the first scan, which can take seconds.
    let web = match &args.web_config {
        Some(path) => web::load(path)?,
        None => web::WebConfig::default(),
    };
    let listener = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() && (web.tls.is_none() || web.auth.is_none()) {
        eprintln!(
            "shmwho: warning: serving {local} beyond loopback without {}: anyone who reaches it \
             reads this host's processes and shared-memory names (see --web-config)",
            match (web.tls.is_some(), web.auth.is_some()) {
                (false, false) => "TLS and basic auth",
                (false, true) => "TLS (passwords cross the network in the clear)",
                _ => "basic auth",
            }
        );
    }
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    let min_interval = args.min_interval;
    // A first scan now: a host shmwho cannot read fails here, not at the first scrape.
    let first = scanner.scan(&[Format::OpenMetrics, Format::Prometheus])?;
    let cache = Mutex::new(Cached {
        at: Instant::now(),
        openmetrics: first[0].clone(),
        prometheus: first[1].clone(),
    });
    let handler = move |req: &http::Request| -> http::Response {
        // Holding the lock through a scan makes concurrent scrapes share it rather than each
        // scanning; only the scan runs under it, never a client's I/O.
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.at.elapsed() >= min_interval {
            match scanner.scan(&[Format::OpenMetrics, Format::Prometheus]) {
                Ok(mut t) => {
                    c.prometheus = t.pop().expect("two formats");
                    c.openmetrics = t.pop().expect("two formats");
                    c.at = Instant::now();
                }
                Err(e) => {
                    let msg = format!("shmwho: scan failed: {e:#}\n");
                    eprint!("{msg}");
                    return http::Response::text(500, &msg);
                }
            }
        }
        debug_assert_eq!(req.path, "/metrics");
        // Prometheus asks for OpenMetrics first; a client that names only the classic text
        // format (old Prometheus, some agents) gets that.
        let classic = !req.accept.contains("application/openmetrics-text")
            && req.accept.contains("text/plain");
        let (format, body) = if classic {
            (Format::Prometheus, c.prometheus.clone())
        } else {
            (Format::OpenMetrics, c.openmetrics.clone())
        };
        http::Response {
            status: 200,
            content_type: format.content_type(),
            extra_headers: "",
            body,
        }
    };
    writeln!(out, "shmwho: serving {scheme}://{local}/metrics")?;
    out.flush()?;
    let limits = http::Limits {
        request_timeout: args.request_timeout,
        request_line_timeout: args.request_line_timeout,
        ..http::Limits::default()
    };
    http::serve(listener, limits, Arc::new(web), Arc::new(handler))?;
    Ok(())
}

/// Binds `addr`; `:PORT` means every address, as node_exporter reads it: IPv6 and IPv4 on
/// one dual-stack socket where the host has IPv6, else every IPv4 address.
fn bind(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let Some(port) = addr.strip_prefix(':') else {
        return std::net::TcpListener::bind(addr);
    };
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a port number"))?;
    match std::net::TcpListener::bind(("::", port)) {
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
            std::net::TcpListener::bind(("0.0.0.0", port))
        }
        r => r,
    }
}

fn textfile(scanner: Scanner, dir: &Path, every: Option<Duration>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!("--textfile {}: not a directory", dir.display());
    }
    let target = dir.join(TEXTFILE_NAME);
    let write = |text: &str| crate::output_file::write_atomic(&target, text.as_bytes(), 0o644);
    let Some(every) = every else {
        let text = scanner.scan(&[Format::Prometheus])?;
        return write(&text[0]);
    };
    let signals = crate::signals::StopFlag::register(&crate::signals::INTERRUPT)
        .context("installing a signal handler")?;
    let stop = signals.flag();
    // Scans run on their own thread, so a signal is answered within a tick even while a
    // scan waits on a stuck process (collect::deadline); the file is written here, whole or
    // not at all.
    let (tx, scans) = std::sync::mpsc::channel();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("shmwho-scan".into())
        .spawn(move || {
            while wait.recv().is_ok() {
                if tx.send(scanner.scan(&[Format::Prometheus])).is_err() {
                    break;
                }
            }
        })
        .context("starting the scan thread")?;
    let tick = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        go.send(()).context("the scan thread ended")?;
        let scanned = loop {
            match scans.recv_timeout(tick) {
                Ok(r) => break r,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the scan thread ended")
                }
            }
        };
        // A failed scan or write is reported and retried next time: the loop runs for days.
        if let Err(e) = scanned.and_then(|text| write(&text[0])) {
            eprintln!("shmwho: {e:#}");
        }
        while !stop.load(Ordering::Relaxed) && started.elapsed() < every {
            std::thread::sleep((every - started.elapsed().min(every)).min(tick));
        }
    }
    Ok(())
}

pub(crate) use crate::size::parse_duration;
