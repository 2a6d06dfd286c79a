//! Command-line parsing, and dispatch. The only module that knows clap: every command's flags
//! become a plain options value of its module (or [`crate::report`]'s queries) before anything
//! runs, and nothing else imports this module.

mod args;
mod commands;
pub mod generate;

pub use args::{
    FormatArg, GroupByArg, KindArg, ObjectSortArg, ObjectsArgs, OutputArgs, PolicyArg, ProcSortArg,
    ProcsArgs,
};
pub use commands::{
    DiffArgs, ExportArgs, LabArgs, LabCommand, LabWatcherArgs, PoolArgs, RecordArgs, ShowArgs,
    TopArgs,
};

use crate::account::{self, Policy};
use crate::collect::{self, Options};
use crate::lab;
use crate::model::{Pid, Snapshot};
use crate::render::{self, RenderOptions};
use crate::report::{ObjectQuery, ProcQuery};
use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

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

/// The whole command line.
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
    /// The command; none means `objects`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `objects` flags given without the word `objects`.
    #[command(flatten)]
    pub objects: ObjectsArgs,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List shared-memory objects (the default)
    Objects(ObjectsArgs),
    /// List processes with RSS split and the shared memory charged to each
    Procs(ProcsArgs),
    /// One object or one process in detail: page ranges, holders, what it would free
    Show(ShowArgs),
    /// Live full-screen view of objects and processes
    Top(TopArgs),
    /// Prometheus metrics over HTTP or as a node_exporter textfile
    Export(ExportArgs),
    /// Write a JSON snapshot to a file (atomically), for `shmwho diff`
    Record(RecordArgs),
    /// What changed between two recorded snapshots
    Diff(DiffArgs),
    /// Create shared memory of known size on this host, to see the problem and the answer
    Lab(LabArgs),
    /// The lab's watcher, started by `lab` itself (not for people)
    #[command(hide = true)]
    LabWatcher(LabWatcherArgs),
    /// Print the man page (roff): `shmwho man | gzip > /usr/share/man/man1/shmwho.1.gz`
    Man,
    /// Print a shell completion script (see the README for where each shell looks)
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: generate::Shell,
    },
}

/// Runs the parsed command, writing to `out`.
pub fn run(cli: Cli, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    crate::privilege::init()?;
    match cli.command {
        None => objects(cli.objects, out),
        Some(Command::Objects(a)) => objects(a, out),
        Some(Command::Procs(a)) => procs(a, out),
        Some(Command::Show(a)) => crate::show::run(a.into(), out),
        Some(Command::Top(a)) => crate::top::run(a.into(), out),
        Some(Command::Export(a)) => crate::export::run(a.into(), out),
        Some(Command::Record(a)) => crate::record::record(a.into(), out),
        Some(Command::Diff(a)) => {
            // Reads only the caller's files: with the caller's rights.
            crate::privilege::drop_all()?;
            crate::record::diff(a.into(), out)
        }
        Some(Command::Lab(a)) => {
            crate::privilege::drop_all()?;
            lab_cmd(a)
        }
        Some(Command::LabWatcher(a)) => {
            crate::privilege::drop_all()?;
            lab::watch(a.pidfd, a.rx)
        }
        Some(Command::Man) => {
            crate::privilege::drop_all()?;
            generate::man(out)
        }
        Some(Command::Completions { shell }) => {
            crate::privilege::drop_all()?;
            generate::completions(shell, out)
        }
    }
}

fn render_opts(o: &OutputArgs) -> RenderOptions {
    RenderOptions {
        units: render::units::Units::raw_if(o.bytes),
        euid: rustix::process::geteuid().as_raw(),
    }
}

fn check_pids(snap: &Snapshot, pids: &[Pid]) -> anyhow::Result<()> {
    for &pid in pids {
        if snap.process(pid).is_none() {
            bail!("no process with pid {pid} (it does not exist, or is a kernel thread)");
        }
    }
    Ok(())
}

fn objects(a: ObjectsArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let policy = Policy::from(a.charge);
    let query = ObjectQuery {
        kinds: a.kind.iter().map(|&k| k.into()).collect(),
        pids: a.pid.clone(),
        sort: a.sort.0,
        top: a.top,
    };
    let output = render::output(a.output.json, render_opts(&a.output));
    let snap = crate::privilege::scan_once(&Options {
        paths: collect::HostPaths::with_proc_root(a.output.proc_root.clone()),
        smaps: policy.needs_smaps(),
        cgroups: false,
    })?;
    check_pids(&snap, &a.pid)?;
    let acc = account::account(&snap, policy);
    out.write_all(output.objects(&acc, &query).as_bytes())?;
    Ok(())
}

fn procs(a: ProcsArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let policy = Policy::from(a.charge);
    let smaps = a.pss || policy.needs_smaps();
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
    let acc = account::account(&snap, policy);
    let exact = a.exact.then(|| {
        std::sync::Arc::new(collect::pagemap::snapshot_phys_pages(
            &a.output.proc_root,
            &snap,
        ))
    });
    let query = ProcQuery {
        pids: a.pid.clone(),
        user: a.user.clone(),
        comm: a.comm.clone(),
        by: a.by.map(Into::into),
        sort: a.sort.0,
        top: a.top,
        pss: smaps,
        exact,
    };
    let output = render::output(a.output.json, render_opts(&a.output));
    out.write_all(output.procs(&acc, &query).as_bytes())?;
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
            force: p.force,
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
        force: a.force,
    })
    .context("lab")
}

impl From<ShowArgs> for crate::show::ShowOptions {
    fn from(a: ShowArgs) -> Self {
        crate::show::ShowOptions {
            target: a.target,
            width: a.width,
            charge: a.charge.into(),
            json: a.output.json,
            bytes: a.output.bytes,
            proc_root: a.output.proc_root,
        }
    }
}

impl From<TopArgs> for crate::top::TopOptions {
    fn from(a: TopArgs) -> Self {
        crate::top::TopOptions {
            interval: a.interval,
            charge: a.charge.into(),
            filter: a.filter,
            proc_root: a.proc_root,
        }
    }
}

impl From<ExportArgs> for crate::export::ExportOptions {
    fn from(a: ExportArgs) -> Self {
        crate::export::ExportOptions {
            listen: a.listen,
            web_config: a.web_config,
            min_interval: a.min_interval,
            textfile: a.textfile,
            repeat: a.repeat,
            interval: a.interval,
            top: a.top,
            top_objects: a.top_objects,
            charge: a.charge.into(),
            format: a.format.into(),
            request_timeout: a.request_timeout,
            request_line_timeout: a.request_line_timeout,
            proc_root: a.proc_root,
        }
    }
}

impl From<RecordArgs> for crate::record::RecordOptions {
    fn from(a: RecordArgs) -> Self {
        crate::record::RecordOptions {
            file: a.file,
            charge: a.charge.into(),
            proc_root: a.proc_root,
        }
    }
}

impl From<DiffArgs> for crate::record::DiffOptions {
    fn from(a: DiffArgs) -> Self {
        crate::record::DiffOptions {
            a: a.a,
            b: a.b,
            min_change: a.min_change,
            json: a.json,
            units: render::units::Units::raw_if(a.bytes),
        }
    }
}
