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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The port `--listen` uses when given no address. Not among the ports commonly used by
/// Prometheus exporters; loopback only unless an address says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9479";

/// File name written in the `--textfile` directory.
pub const TEXTFILE_NAME: &str = "shmwho.prom";

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Without --listen or --textfile the metrics are printed once (OpenMetrics).

Metrics (all gauges): shmwho_object_{resident,swap,size}_bytes per object (labels kind, dev,
id, ns, name, owner, exact; beyond --top-objects summed per kind as id=\"other\");
shmwho_process_shared_charged_bytes per process (pid, comm, user, cgroup, charge; beyond --top
summed as pid=\"other\"); shmwho_cgroup_shared_charged_bytes and shmwho_cgroup_kernel_shmem_bytes
per memory cgroup; shmwho_meminfo_shmem_bytes, shmwho_shmem_explained_bytes,
shmwho_shmem_unexplained_bytes, shmwho_unheld_bytes, shmwho_objects, shmwho_objects_estimated,
shmwho_processes, shmwho_processes_skipped, shmwho_scan_duration_seconds,
shmwho_scan_timestamp_seconds. See docs/export.md; a Grafana dashboard is in
docs/grafana-dashboard.json.

The HTTP server is read-only: GET or HEAD of /metrics and of / (a page linking /metrics),
anything else 404 or 405. Requests are limited to 8 KiB, 2 s to send the request line, 5 s the
whole head and 30 s to read the answer; 64 connections at once, the oldest idle one evicted when
all are taken. --web-config FILE adds TLS and basic auth (exporter-toolkit's format):
  tls_server_config: {cert_file: server.crt, key_file: server.key}
  basic_auth_users: {prometheus: '$2y$10$...'}    (bcrypt hashes, as htpasswd -B makes)
Serving beyond loopback without both prints a warning.

Examples:
  sudo shmwho export --listen                    serve http://127.0.0.1:9479/metrics
  sudo shmwho export --listen :9479 --web-config /etc/shmwho/web.yml
  sudo shmwho export --listen 0.0.0.0:9479 --min-interval 15s
  sudo shmwho export --textfile /var/lib/prometheus/node-exporter
  sudo shmwho export --textfile /var/lib/prometheus/node-exporter --loop --interval 60s
  shmwho export --format prometheus | grep shmwho_meminfo")]
pub struct ExportArgs {
    /// Serve GET /metrics over HTTP on ADDR [default: 127.0.0.1:9479]; `:PORT` is every
    /// address
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_LISTEN,
        conflicts_with = "textfile"
    )]
    pub listen: Option<String>,
    /// With --listen: TLS and basic auth from FILE, in the format of Prometheus'
    /// exporter-toolkit (tls_server_config: cert_file, key_file; basic_auth_users)
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub web_config: Option<PathBuf>,
    /// With --listen: scan at most once per DURATION; scrapes in between get the last figures
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub min_interval: Duration,
    /// Write DIR/shmwho.prom atomically in the Prometheus text format 0.0.4, for
    /// node_exporter's textfile collector (--collector.textfile.directory)
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// With --textfile: rewrite the file every --interval until SIGINT or SIGTERM
    #[arg(long = "loop", requires = "textfile")]
    pub repeat: bool,
    /// With --textfile --loop: time between scans (e.g. 30s, 2m, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Processes, and memory cgroups, with a series each; the rest are summed in one series
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// Objects with a series each; the rest are summed in one series per kind
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub top_objects: usize,
    /// Charging policy of the per-process and per-cgroup series (touched reads smaps: walks
    /// page tables on every scan)
    #[arg(long, value_enum, default_value_t = Policy::Owner)]
    pub charge: Policy,
    /// Format when printing to stdout
    #[arg(long, value_enum, default_value_t = FormatArg::Openmetrics)]
    pub format: FormatArg,
    /// Time a client has to send its request head (tests raise it to show that a slow client
    /// blocks nobody else)
    #[arg(long, hide = true, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Time a client has to send its request line (likewise raised by tests)
    #[arg(long, hide = true, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub request_line_timeout: Duration,
    /// Read procfs from this directory instead of /proc
    #[arg(long, hide = true, default_value = "/proc")]
    pub proc_root: PathBuf,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatArg {
    /// OpenMetrics 1.0 text
    Openmetrics,
    /// Prometheus text format 0.0.4
    Prometheus,
}

pub fn run(args: ExportArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    if args.repeat && args.interval.is_zero() {
        bail!("--interval must be more than 0 with --loop");
    }
    let scanner = Scanner {
        proc_root: args.proc_root.clone(),
        policy: args.charge,
        opts: MetricsOptions {
            top: args.top,
            top_objects: args.top_objects,
        },
    };
    crate::privilege::check_proc_root(&args.proc_root)?;
    if args.listen.is_some() || args.repeat {
        // A server rescans for as long as it runs, so it would keep the capabilities: run it
        // as a service granted them (README: Restricted install).
        crate::privilege::refuse_when_elevated("export --listen and --loop")?;
    }
    if let Some(addr) = &args.listen {
        return listen(scanner, addr, &args, out);
    }
    if let Some(dir) = &args.textfile {
        return textfile(&scanner, dir, args.repeat.then_some(args.interval));
    }
    let format = match args.format {
        FormatArg::Openmetrics => Format::OpenMetrics,
        FormatArg::Prometheus => Format::Prometheus,
    };
    let text = scanner.scan(&[format])?;
    out.write_all(text[0].as_bytes())?;
    Ok(())
}

struct Scanner {
    proc_root: PathBuf,
    policy: Policy,
    opts: MetricsOptions,
}

impl Scanner {
    /// One scan, rendered in each of `formats`.
    fn scan(&self, formats: &[Format]) -> anyhow::Result<Vec<Arc<String>>> {
        let start = Instant::now();
        // A one-shot export (the only kind an elevated run allows) drops every capability here.
        let snap = crate::privilege::scan_once(&Options {
            paths: crate::collect::HostPaths::with_proc_root(self.proc_root.clone()),
            smaps: self.policy.needs_smaps(),
            cgroups: true,
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
    args: &ExportArgs,
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

fn textfile(scanner: &Scanner, dir: &Path, every: Option<Duration>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!("--textfile {}: not a directory", dir.display());
    }
    let target = dir.join(TEXTFILE_NAME);
    let write = || -> anyhow::Result<()> {
        let text = scanner.scan(&[Format::Prometheus])?;
        crate::output_file::write_atomic(&target, text[0].as_bytes(), 0o644)
    };
    let Some(every) = every else {
        return write();
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        // A failed scan or write is reported and retried next time: the loop runs for days.
        if let Err(e) = write() {
            eprintln!("shmwho: {e:#}");
        }
        while !stop.load(Ordering::Relaxed) && started.elapsed() < every {
            std::thread::sleep(
                (every - started.elapsed().min(every)).min(Duration::from_millis(100)),
            );
        }
    }
    Ok(())
}

/// `500ms`, `5s`, `2m`, `1h`, or a plain number of seconds (`0.5`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 500ms, 5s, 2m, 1h)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("'{s}' is not a duration >= 0"));
    }
    Duration::try_from_secs_f64(v * scale).map_err(|_| format!("'{s}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "-1s", "5x", "nan", "inf", "1e300h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
