//! Command-line parsing into one options value, and dispatch. Nothing below reads arguments.

use crate::account::{self, Policy};
use crate::collect::{self, Options};
use crate::lab;
use crate::model::{ObjectKind, Pid};
use crate::render::{self, RenderOptions};
use crate::size::parse_size;
use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  shmwho                         every shared-memory object, largest resident first
  shmwho procs                   processes with the shared memory charged to each
  shmwho procs --by command      one row per command, as ps_mem does
  shmwho procs --charge split    divide each object among its holders
  shmwho procs --pss             add PSS and USS (reads smaps: walks page tables)
  shmwho --json | jq '.objects[0]'
  sudo shmwho lab --for 60       recreate the PHP-FPM opcache experiment and watch it

Run as root (or with cap_checkpoint_restore,cap_sys_ptrace,cap_dac_read_search) for exact
figures; without privileges, figures that could not be measured are marked with ~.";

#[derive(Parser, Debug)]
#[command(
    name = "shmwho",
    version,
    about = "Who uses shared memory: every shared-memory object, measured and charged to processes",
    long_about = "Lists every shared-memory object on the host (anonymous shared mappings, SysV \
segments, memfds, POSIX shm, tmpfs files), measures its resident and swapped size from the \
kernel, lists who holds it, and charges it to processes so the numbers add up to /proc/meminfo's Shmem.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub objects: ObjectsArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List shared-memory objects (the default)
    Objects(ObjectsArgs),
    /// List processes with RSS split and the shared memory charged to each
    Procs(ProcsArgs),
    /// One object or one process in detail: page ranges, holders, what it would free
    Show(crate::show::ShowArgs),
    /// Live full-screen view of objects and processes
    Top(crate::top::TopArgs),
    /// Prometheus metrics over HTTP or as a node_exporter textfile
    Export(crate::export::ExportArgs),
    /// Write a JSON snapshot to a file (atomically), for `shmwho diff`
    Record(crate::record::RecordArgs),
    /// What changed between two recorded snapshots
    Diff(crate::record::DiffArgs),
    /// Create shared memory of known size on this host, to see the problem and the answer
    Lab(LabArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Print JSON (schema 1, documented in docs/json.md); always in bytes
    #[arg(long)]
    pub json: bool,
    /// Print exact byte counts instead of KiB/MiB/GiB
    #[arg(long)]
    pub bytes: bool,
    /// Read procfs from this directory instead of /proc
    #[arg(long, hide = true, default_value = "/proc")]
    pub proc_root: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ObjectsArgs {
    /// Only objects of these kinds (repeatable)
    #[arg(long, value_enum)]
    pub kind: Vec<KindArg>,
    /// Only objects held or owned by this process (repeatable)
    #[arg(long, value_name = "PID")]
    pub pid: Vec<Pid>,
    /// Sort by this column (descending)
    #[arg(long, value_enum, default_value_t = ObjectSort::Resident)]
    pub sort: ObjectSort,
    /// Show at most N objects (the footer still counts all)
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Charging policy for the per-object `charges` in JSON (see `shmwho procs --help`)
    #[arg(long, value_enum, default_value_t = Policy::Owner)]
    pub charge: Policy,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindArg {
    // Spelled as in the JSON `kind` field.
    #[value(name = "anon_shared")]
    AnonShared,
    Sysv,
    Memfd,
    #[value(name = "posix_shm")]
    PosixShm,
    Tmpfs,
}

impl From<KindArg> for ObjectKind {
    fn from(k: KindArg) -> ObjectKind {
        match k {
            KindArg::AnonShared => ObjectKind::AnonShared,
            KindArg::Sysv => ObjectKind::Sysv,
            KindArg::Memfd => ObjectKind::Memfd,
            KindArg::PosixShm => ObjectKind::PosixShm,
            KindArg::Tmpfs => ObjectKind::Tmpfs,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectSort {
    #[default]
    Resident,
    Size,
    Swap,
    Holders,
}

#[derive(Args, Debug, Clone)]
#[command(after_help = "\
Charging policies (--charge):
  owner    each object whole to its owner: the SysV creator while it lives, otherwise the
           holder that started first (the PHP-FPM master, the postmaster)
  split    each object's resident bytes divided equally among the processes holding it
  touched  each mapper its PSS of the object (reads smaps); the part no live process maps
           goes to the owner
Under every policy the charges plus the objects nobody holds add up to the objects' resident sum.

TOTAL is private anonymous RSS plus charged shared memory. USS (with --pss) counts only private
memory outside shared-memory objects: the kernel calls a shared page 'private' when one process
maps it, but killing that process would not free it.

Examples:
  shmwho procs --by command --top 10
  shmwho procs --charge touched --comm php-fpm
  shmwho procs --pid 1234 --json
  sudo shmwho procs --by tree --exact   what each pool really uses, and would free if killed
  shmwho procs --by cgroup       per systemd unit / container, against the kernel's memory.stat")]
pub struct ProcsArgs {
    /// How shared objects are charged to processes
    #[arg(long, value_enum, default_value_t = Policy::Owner)]
    pub charge: Policy,
    /// Add PSS and USS from smaps (walks page tables: slower)
    #[arg(long)]
    pub pss: bool,
    /// Exact memory per row (root: reads physical page numbers from pagemap): UNIQUE counts
    /// distinct pages instead of summing PSS, FREED-IF-GONE what killing the row's processes
    /// would return; best with --by tree or command
    #[arg(long)]
    pub exact: bool,
    /// One row per command, per user, per process tree or per memory cgroup (systemd unit,
    /// container); by cgroup adds a reconciliation with each cgroup's own memory.stat shmem
    #[arg(long, value_enum)]
    pub by: Option<GroupBy>,
    /// Only these processes (repeatable)
    #[arg(long, value_name = "PID")]
    pub pid: Vec<Pid>,
    /// Only processes of this user (name or uid)
    #[arg(long)]
    pub user: Option<String>,
    /// Only processes whose command contains this text
    #[arg(long)]
    pub comm: Option<String>,
    /// Sort by this column (descending; pid and command ascending)
    #[arg(long, value_enum, default_value_t = ProcSort::Total)]
    pub sort: ProcSort,
    /// Show at most N rows
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Command,
    User,
    Cgroup,
    /// A process and its descendants that run the same command, under the topmost one's pid
    /// (a PHP-FPM master and its workers, a postmaster and its backends); a descendant running
    /// another command starts its own tree
    Tree,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcSort {
    Total,
    Rss,
    Shared,
    Shmem,
    Swap,
    Pss,
    Uss,
    Pid,
    Command,
    /// With --exact
    Unique,
    /// With --exact
    #[value(name = "freed-if-gone")]
    FreedIfGone,
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
pub struct LabArgs {
    #[command(subcommand)]
    pub pool: Option<LabCommand>,
    /// Size of the shared anonymous region
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
    /// Exit after this many seconds (default: until Ctrl-C)
    #[arg(long = "for", value_name = "SECONDS")]
    pub for_secs: Option<f64>,
    /// Print the ground truth as one line of JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// A PHP-FPM-like pool: a master and N workers that each touch all of a shared region
    Pool(PoolArgs),
}

#[derive(Args, Debug)]
pub struct PoolArgs {
    /// Number of workers
    #[arg(long, default_value_t = 300)]
    pub workers: u32,
    /// Size of the shared region every worker touches
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub shared: u64,
    /// Exit after this many seconds (default: until Ctrl-C)
    #[arg(long = "for", value_name = "SECONDS")]
    pub for_secs: Option<f64>,
    /// Print the pool's pids and object as one line of JSON
    #[arg(long)]
    pub json: bool,
}

/// Runs the parsed command, writing to `out`.
pub fn run(cli: Cli, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    crate::privilege::init()?;
    match cli.command {
        None => objects(cli.objects, out),
        Some(Command::Objects(a)) => objects(a, out),
        Some(Command::Procs(a)) => procs(a, out),
        Some(Command::Show(a)) => crate::show::run(a, out),
        Some(Command::Top(a)) => crate::top::run(a, out),
        Some(Command::Export(a)) => crate::export::run(a, out),
        Some(Command::Record(a)) => crate::record::record(a, out),
        Some(Command::Diff(a)) => {
            // Reads only the caller's files: with the caller's rights.
            crate::privilege::drop_all()?;
            crate::record::diff(a, out)
        }
        Some(Command::Lab(a)) => {
            crate::privilege::drop_all()?;
            lab_cmd(a)
        }
    }
}

fn render_opts(o: &OutputArgs) -> RenderOptions {
    RenderOptions {
        bytes: o.bytes,
        euid: rustix::process::geteuid().as_raw(),
    }
}

fn check_pids(snap: &crate::model::Snapshot, pids: &[Pid]) -> anyhow::Result<()> {
    for &pid in pids {
        if snap.process(pid).is_none() {
            bail!("no process with pid {pid} (it does not exist, or is a kernel thread)");
        }
    }
    Ok(())
}

fn objects(a: ObjectsArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let snap = crate::privilege::scan_once(&Options {
        paths: collect::HostPaths::with_proc_root(a.output.proc_root.clone()),
        smaps: a.charge.needs_smaps(),
        cgroups: false,
    })?;
    check_pids(&snap, &a.pid)?;
    let acc = account::account(&snap, a.charge);
    let filter = render::ObjectFilter {
        kinds: a.kind.iter().map(|&k| k.into()).collect(),
        pids: a.pid.clone(),
        sort: a.sort,
        top: a.top,
    };
    let text = if a.output.json {
        render::json::objects(&acc, &filter)
    } else {
        render::table::objects(&acc, &filter, &render_opts(&a.output))
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn procs(a: ProcsArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let smaps = a.pss || a.charge.needs_smaps();
    if a.exact {
        // Physical page numbers of every process: more than any caller may learn.
        crate::privilege::refuse_when_elevated("procs --exact")?;
    }
    if a.exact && !collect::pagemap::can_read_pfns() {
        bail!("--exact needs CAP_SYS_ADMIN (run as root): it counts physical pages, and without it /proc/PID/pagemap shows every page frame number as 0");
    }
    let snap = crate::privilege::scan_once(&Options {
        paths: collect::HostPaths::with_proc_root(a.output.proc_root.clone()),
        smaps,
        cgroups: true,
    })?;
    check_pids(&snap, &a.pid)?;
    let acc = account::account(&snap, a.charge);
    let exact = a.exact.then(|| {
        std::sync::Arc::new(collect::pagemap::snapshot_phys_pages(
            &a.output.proc_root,
            &snap,
        ))
    });
    let filter = render::ProcFilter {
        pids: a.pid.clone(),
        user: a.user.clone(),
        comm: a.comm.clone(),
        by: a.by,
        sort: a.sort,
        top: a.top,
        pss: smaps,
        exact,
    };
    let text = if a.output.json {
        render::json::procs(&acc, &filter)
    } else {
        render::table::procs(&acc, &filter, &render_opts(&a.output))
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn lab_cmd(a: LabArgs) -> anyhow::Result<()> {
    if let Some(LabCommand::Pool(p)) = a.pool {
        if p.workers == 0 {
            bail!("--workers must be at least 1");
        }
        return lab::run_pool(&lab::PoolOptions {
            workers: p.workers,
            shared: p.shared,
            for_secs: p.for_secs,
            json: p.json,
        });
    }
    let tmpfs = match (a.tmpfs, a.tmpfs_dir) {
        (Some(size), Some(dir)) => Some((dir, size)),
        (None, Some(dir)) if a.all => Some((dir, a.size)),
        _ => None,
    };
    let extra = |v: Option<u64>| v.or(a.all.then_some(a.size));
    if let Some(s) = a.for_secs {
        if !(s.is_finite() && s >= 0.0) {
            bail!("--for takes a number of seconds >= 0, not {s}");
        }
    }
    lab::run(&lab::LabOptions {
        size: a.size,
        exit_children: a.exit_children,
        sysv: extra(a.sysv),
        memfd: extra(a.memfd),
        posix: extra(a.posix),
        tmpfs,
        for_secs: a.for_secs,
        json: a.json,
    })
    .context("lab")
}
