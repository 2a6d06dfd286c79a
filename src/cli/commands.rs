//! The other commands' flags: each becomes its module's plain options value in [`super::run`].

use super::args::{FormatArg, OutputArgs, PolicyArg};
use crate::size::parse_size;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

const SHOW_HELP: &str = "\
OBJECT is spelled as the objects view prints it:
  2707               an inode (the ID column); inode:MAJ:MIN:2707 when two devices share it
  sysv:32769         a SysV segment by shmid; 0x0001e240 by key
  memfd:NAME         a memfd by name
  /dev/shm/NAME      a file on a tmpfs (POSIX shm, /run, ...), by path
  4242:7f94a0000000  the object process 4242 maps at that address (from maps or the holders list)
  pid:4242           a process (a bare number is a pid when no object has that inode; when it
                     is both, shmwho asks for pid:N or inode:N)

For an object it prints its figures, its holders (how each holds it, its pages in that holder's
page tables and its PSS), and a picture of the object's offsets: where it is resident, what each
holder maps, and what is orphaned (resident, but mapped by no live process). For a process: its
memory by kind, each shared object it maps or holds, what it is charged under each policy, what
it owns, and a one-line verdict.

Reads only the holders' /proc/PID/pagemap over their mappings of the object and the object's
own residency (mincore on a never-touched read-only mapping, cachestat, SEEK_DATA); never the
object's contents. Needs root (or CAP_CHECKPOINT_RESTORE) to open most objects.

Examples:
  sudo shmwho lab --size 256M &     then: sudo shmwho show <the inode it prints>
  shmwho show sysv:32769 --json | jq '.holders[].mapped_ranges'
  shmwho show pid:$(pgrep -o php-fpm)";

#[derive(Args, Debug)]
#[command(after_help = SHOW_HELP)]
/// `shmwho show`.
pub struct ShowArgs {
    /// An object (inode, sysv:ID, 0xKEY, memfd:NAME, /path, PID:ADDRESS) or a process (pid:N)
    #[arg(value_name = "OBJECT|PID")]
    pub target: String,
    /// Columns for the picture (default: the terminal's width, else $COLUMNS, else 80)
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<usize>,
    /// Charging policy for the object's charges (the process page shows all three)
    #[arg(long, value_enum, default_value_t = PolicyArg::Owner)]
    pub charge: PolicyArg,
    #[command(flatten)]
    /// Output format and procfs location.
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Keys: q quit, Tab switch pane, Up/Down select, Enter details, s sort, / filter, c charge policy,
d show changes instead of values, r scan now, ? help.

Each figure's change since the last refresh is highlighted in colour, and each row is marked
+ grew, - shrank or * new (with NO_COLOR set, only the marks). The charge policy `touched` reads
smaps (a page-table walk on every scan) only while it is selected.

Examples:
  sudo shmwho top
  sudo shmwho top --interval 0.5 --filter php-fpm
  NO_COLOR=1 shmwho top --charge split")]
/// `shmwho top`.
pub struct TopArgs {
    /// Time between scans: 2, 2s, 500ms, 1m (0.1s to 1 day)
    #[arg(long, value_name = "DURATION", default_value = "2", value_parser = parse_interval)]
    pub interval: Duration,
    /// Charging policy to start with (`c` cycles it)
    #[arg(long, value_enum, default_value_t = PolicyArg::Owner)]
    pub charge: PolicyArg,
    /// Start with this filter (as typed after `/`)
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    #[command(flatten)]
    /// Where the host's procfs and files are read from.
    pub host: super::args::HostArgs,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::size::parse_duration(s)?;
    if (Duration::from_millis(100)..=Duration::from_secs(86400)).contains(&d) {
        Ok(d)
    } else {
        Err(format!(
            "'{s}' is not from 100ms to 1 day (e.g. 2, 2s, 500ms)"
        ))
    }
}

#[derive(Args, Debug)]
#[command(after_help = "\
Without --listen or --textfile the metrics are printed once (OpenMetrics).

Metrics (all gauges): shmwho_object_{resident,swap,size}_bytes per object (labels kind, dev,
id, ns, name, owner, exact; beyond --top-objects summed per kind as id=\"other\");
shmwho_process_shared_charged_bytes per process (pid, comm, user, cgroup, pod_uid,
container_id, unit, charge; beyond --top summed as pid=\"other\");
shmwho_cgroup_shared_charged_bytes and shmwho_cgroup_kernel_shmem_bytes per memory cgroup (cgroup,
pod_uid, container_id, unit);
shmwho_pod_shared_charged_bytes and shmwho_pod_kernel_shmem_bytes per Kubernetes pod,
shmwho_pod_volume_{used,size}_bytes per memory-backed volume of a pod (/dev/shm, emptyDir);
shmwho_meminfo_shmem_bytes, shmwho_shmem_explained_bytes,
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
/// `shmwho export`.
pub struct ExportArgs {
    /// Serve GET /metrics over HTTP on ADDR [default: 127.0.0.1:9479]; `:PORT` is every
    /// address
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = crate::export::DEFAULT_LISTEN,
        conflicts_with = "textfile"
    )]
    pub listen: Option<String>,
    /// With --listen: TLS and basic auth from FILE, in the format of Prometheus'
    /// exporter-toolkit (tls_server_config: cert_file, key_file; basic_auth_users)
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub web_config: Option<PathBuf>,
    /// With --listen: scan at most once per DURATION; scrapes in between get the last figures
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::export::parse_duration)]
    pub min_interval: Duration,
    /// Write DIR/shmwho.prom atomically in the Prometheus text format 0.0.4, for
    /// node_exporter's textfile collector (--collector.textfile.directory)
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// With --textfile: rewrite the file every --interval until SIGINT or SIGTERM
    #[arg(long = "loop", requires = "textfile")]
    pub repeat: bool,
    /// With --textfile --loop: time between scans (e.g. 30s, 2m, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::export::parse_duration)]
    pub interval: Duration,
    /// Processes, memory cgroups and pods with a series each; the rest are summed in one series
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// Objects with a series each; the rest are summed in one series per kind
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub top_objects: usize,
    /// Charging policy of the per-process and per-cgroup series (touched reads smaps: walks
    /// page tables on every scan)
    #[arg(long, value_enum, default_value_t = PolicyArg::Owner)]
    pub charge: PolicyArg,
    /// Format when printing to stdout
    #[arg(long, value_enum, default_value_t = FormatArg::Openmetrics)]
    pub format: FormatArg,
    /// Time a client has to send its request head (tests raise it to show that a slow client
    /// blocks nobody else)
    #[arg(long, hide = true, value_name = "DURATION", default_value = "5s", value_parser = crate::export::parse_duration)]
    pub request_timeout: Duration,
    /// Time a client has to send its request line (likewise raised by tests)
    #[arg(long, hide = true, value_name = "DURATION", default_value = "2s", value_parser = crate::export::parse_duration)]
    pub request_line_timeout: Duration,
    #[command(flatten)]
    /// Where the host's procfs and files are read from.
    pub host: super::args::HostArgs,
}

#[derive(Args, Debug)]
#[command(after_help = "\
The file holds {\"schema\":1,\"recorded_at\":...,\"objects\":<shmwho --json>,\"procs\":<shmwho procs --json>}
(docs/json.md). It is written to a temporary file in the same directory and renamed, so a reader
never sees half a record.

Examples:
  sudo shmwho record /var/tmp/shm-evening.json
  sudo shmwho record /var/tmp/shm-morning.json
  shmwho diff /var/tmp/shm-evening.json /var/tmp/shm-morning.json
  sudo shmwho record - | jq '.objects.meminfo_shmem_bytes'")]
/// `shmwho record`.
pub struct RecordArgs {
    /// Where to write the snapshot (`-` for stdout)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Charging policy of the per-process figures (see `shmwho procs --help`)
    #[arg(long, value_enum, default_value_t = PolicyArg::Owner)]
    pub charge: PolicyArg,
    #[command(flatten)]
    /// Where the host's procfs and files are read from.
    pub host: super::args::HostArgs,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Objects are matched by identity (kind, device and inode, or SysV shmid and IPC namespace),
processes by pid and command. An object grew or shrank when its resident plus swapped bytes
changed; a process is listed when its charged shared memory changed. The older record is A:
given the newer first, the two are swapped (and a note says so). SIZE and OWNER are the last
values known (B's, or A's for an object that disappeared). --min-change hides changes smaller
than SIZE and counts them.

Examples:
  shmwho diff before.json after.json
  shmwho diff before.json after.json --min-change 1M
  shmwho diff before.json after.json --json | jq '.objects[] | select(.change == \"grew\")'")]
/// `shmwho diff`.
pub struct DiffArgs {
    /// The earlier record
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The later record
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Leave out changes smaller than SIZE (e.g. 1M; K, M, G, T are binary: 1K = 1024; KB, MB
    /// are refused)
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub min_change: u64,
    /// Print JSON (docs/json.md); always in bytes
    #[arg(long)]
    pub json: bool,
    /// Print exact byte counts instead of KiB/MiB/GiB
    #[arg(long)]
    pub bytes: bool,
}

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
The master maps SIZE of shared anonymous memory and never touches it; child 1 writes the first
quarter, child 2 the first half. `ps` then shows the master at ~0 RSS although the object holds
half of SIZE; with --exit-children no process shows it at all, yet `free` counts it as shared.
Everything is removed on exit (Ctrl-C, SIGTERM, --for).

Examples:
  shmwho lab --size 1G --exit-children
  shmwho lab --all --for 30 --json
  shmwho lab pool --workers 300 --shared 64M"
)]
/// `shmwho lab`.
pub struct LabArgs {
    #[command(subcommand)]
    /// `lab pool`, or none for the write-up's experiment.
    pub pool: Option<LabCommand>,
    /// Size of the shared anonymous region (K, M, G, T are binary: 1K = 1024; KB, MB are
    /// refused, as in every SIZE)
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub size: u64,
    /// Children exit after writing (the write-up's second phase)
    #[arg(long)]
    pub exit_children: bool,
    /// Add a SysV segment of this size, attached only by child 1
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub sysv: Option<u64>,
    /// Add a memfd of this size, held by the master only as an fd
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memfd: Option<u64>,
    /// Add a POSIX shm object (/dev/shm) of this size that nobody holds
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub posix: Option<u64>,
    /// Add a file of this size on a tmpfs directory (--tmpfs-dir), mapped by the master
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "tmpfs_dir")]
    pub tmpfs: Option<u64>,
    /// tmpfs directory for --tmpfs (a tmpfs other than /dev/shm, e.g. /run)
    #[arg(long, value_name = "DIR")]
    pub tmpfs_dir: Option<PathBuf>,
    /// Add a SysV segment, a memfd and a POSIX shm object, each of --size
    #[arg(long)]
    pub all: bool,
    /// Exit after this long: 30, 30s, 500ms, 2m (default: until Ctrl-C)
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::size::parse_duration)]
    pub for_secs: Option<Duration>,
    /// Print the ground truth as one line of JSON
    #[arg(long)]
    pub json: bool,
    /// Go on even when the objects' sizes exceed MemAvailable
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
/// `shmwho lab`'s subcommands.
pub enum LabCommand {
    /// A PHP-FPM-like pool: a master and N workers that each touch all of a shared region
    Pool(PoolArgs),
}

#[derive(Args, Debug)]
/// `shmwho lab pool`.
pub struct PoolArgs {
    /// Number of workers
    #[arg(long, default_value_t = 300)]
    pub workers: u32,
    /// Size of the shared region every worker touches
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub shared: u64,
    /// Exit after this long: 30, 30s, 500ms, 2m (default: until Ctrl-C)
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::size::parse_duration)]
    pub for_secs: Option<Duration>,
    /// Print the pool's pids and object as one line of JSON
    #[arg(long)]
    pub json: bool,
    /// Go on even beyond MemAvailable or the host's limits on processes (pid_max,
    /// threads-max, ulimit -u)
    #[arg(long)]
    pub force: bool,
}

/// Inherited descriptors of the lab's watcher.
#[derive(Args, Debug)]
pub struct LabWatcherArgs {
    /// pidfd of the lab master
    #[arg(long)]
    pub pidfd: i32,
    /// Read end of the master's pipe of records
    #[arg(long)]
    pub rx: i32,
}
