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
use crate::report::{Column, ObjectColumn, ObjectQuery, ProcColumn, ProcQuery};
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
segments, memfds, POSIX shm, tmpfs and hugetlbfs files), measures its resident and swapped size from the \
kernel, lists who holds it, and charges it to processes so the numbers add up to /proc/meminfo's Shmem.",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// The command; none means `objects`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `objects` flags given without the word `objects`.
    #[command(flatten)]
    pub objects: ObjectsArgs,

    /// Deadline of each read that takes a process's memory-map lock (maps, smaps, pagemap,
    /// map_files): past it the process is named stuck and left out (e.g. 2s, 500ms)
    #[arg(long, global = true, value_name = "DURATION", default_value = "2s",
          value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

impl Cli {
    /// The process's command line, parsed; on an error or `--help`, clap prints and exits.
    /// Here so that the binary needs no clap of its own.
    pub fn from_env() -> Cli {
        <Cli as Parser>::parse()
    }
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::export::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
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

/// A command line that parses but asks for something impossible: `main` exits 2, as for
/// clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Objects flags given before another command (`shmwho --kind sysv procs`): only the global
/// flags (--json, --bytes, --no-headings, --timeout, and -o, --proc-root, --host-root, which
/// [`carry_globals`] has moved) may stand there.
fn check_no_objects_flags(a: &ObjectsArgs, command: &str) -> anyhow::Result<()> {
    let given = !a.kind.is_empty()
        || !a.pid.is_empty()
        || a.sort.0 != ObjectColumn::Resident
        || a.reverse
        || a.top.is_some()
        || a.charge != PolicyArg::Owner;
    if given {
        return Err(usage(format!(
            "the flags before '{command}' belong to 'objects': put them after '{command}' (only --json, --bytes, --no-headings, -o, --timeout, --proc-root and --host-root go anywhere)"
        )));
    }
    Ok(())
}

/// Moves -o, --proc-root and --host-root given before the command (`shmwho -o pid,total
/// procs`, `shmwho --proc-root /host/proc top`) into the command, as if given after it; a
/// command that has no such flag, or the same flag given on both sides, is a usage error.
fn carry_globals(cli: &mut Cli) -> anyhow::Result<()> {
    let Some(command) = &mut cli.command else {
        return Ok(());
    };
    let before = &mut cli.objects.output;
    let default = args::HostArgs::default();
    let (columns, host): (Option<&mut Vec<String>>, Option<&mut args::HostArgs>) = match command {
        Command::Objects(a) => (Some(&mut a.output.columns), Some(&mut a.output.host)),
        Command::Procs(a) => (Some(&mut a.output.columns), Some(&mut a.output.host)),
        Command::Show(a) => (None, Some(&mut a.output.host)),
        Command::Top(a) => (None, Some(&mut a.host)),
        Command::Export(a) => (None, Some(&mut a.host)),
        Command::Record(a) => (None, Some(&mut a.host)),
        _ => (None, None),
    };
    if !before.columns.is_empty() {
        match columns {
            Some(c) if c.is_empty() => *c = std::mem::take(&mut before.columns),
            Some(_) => return Err(usage("-o is given both before and after the command")),
            None => return Err(usage("-o: this command has no table columns to choose")),
        }
    }
    if before.host.proc_root != default.proc_root || before.host.host_root != default.host_root {
        let Some(h) = host else {
            return Err(usage(
                "--proc-root and --host-root: this command reads no host files",
            ));
        };
        if before.host.proc_root != default.proc_root {
            if h.proc_root != default.proc_root {
                return Err(usage(
                    "--proc-root is given both before and after the command",
                ));
            }
            h.proc_root = std::mem::replace(&mut before.host.proc_root, default.proc_root.clone());
        }
        if before.host.host_root != default.host_root {
            if h.host_root != default.host_root {
                return Err(usage(
                    "--host-root is given both before and after the command",
                ));
            }
            h.host_root = std::mem::replace(&mut before.host.host_root, default.host_root);
        }
    }
    Ok(())
}

/// `-o LIST` as columns of table `C`, or a usage error naming the choices.
fn columns<C: Column>(names: &[String]) -> anyhow::Result<Option<Vec<C>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for n in names {
        match C::by_name(n) {
            Some(c) => out.push(c),
            None => {
                let all: Vec<String> = C::ALL.iter().map(|c| c.header().to_lowercase()).collect();
                return Err(usage(format!(
                    "-o: no column '{n}'; the columns are {} (or their JSON keys)",
                    all.join(",")
                )));
            }
        }
    }
    Ok(Some(out))
}

/// Runs the parsed command, writing to `out`.
pub fn run(mut cli: Cli, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    crate::privilege::init()?;
    crate::collect::deadline::set_timeout(cli.timeout);
    // With the caller's rights (init cleared the effective capabilities): the user's rules
    // file is the caller's to choose.
    let labels_needed = !matches!(
        cli.command,
        Some(
            Command::Diff(_)
                | Command::Lab(_)
                | Command::LabWatcher(_)
                | Command::Man
                | Command::Completions { .. }
        )
    );
    if labels_needed {
        crate::account::labels::install(crate::account::labels::Rules::load_default()?);
    }
    carry_globals(&mut cli)?;
    if let Some(c) = &cli.command {
        let name = format!("{c:?}");
        let name = name
            .split(|ch: char| !ch.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_lowercase();
        check_no_objects_flags(&cli.objects, &name)?;
    }
    match cli.command {
        None => objects(cli.objects, out),
        Some(Command::Objects(a)) => objects(a, out),
        Some(Command::Procs(a)) => procs(a, out),
        Some(Command::Show(a)) => {
            if !a.output.columns.is_empty() {
                return Err(usage(
                    "-o: show prints no table to choose columns of (-o is for objects and procs)",
                ));
            }
            crate::show::run(a.into(), out)
        }
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
        width: render::fit::terminal_width(),
        no_headings: o.no_headings,
        ..Default::default()
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
        reverse: a.reverse,
        top: a.top,
    };
    let mut ro = render_opts(&a.output);
    ro.object_columns = columns(&a.output.columns)?;
    let output = render::output(a.output.json, ro);
    let paths = collect::HostPaths::from(a.output.host.clone());
    crate::privilege::check_paths(&paths)?;
    let snap = crate::privilege::scan_once(&Options {
        paths,
        smaps: policy.needs_smaps(),
        cgroups: false,
        bpf: true,
        repeated: false,
        // The objects view shows no process's memory counters.
        counters: false,
        titles: true,
        pss_totals_only: false,
    })?;
    check_pids(&snap, &a.pid)?;
    let acc = account::account(&snap, policy);
    out.write_all(output.objects(&acc, &query).as_bytes())?;
    Ok(())
}

fn procs(mut a: ProcsArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let policy = Policy::from(a.charge);
    let cols = columns::<ProcColumn>(&a.output.columns)?;
    // A sort key or column that needs a flag turns it on, rather than sorting by nothing.
    let wants = |c: &[ProcColumn]| {
        c.contains(&a.sort.0)
            || cols
                .as_ref()
                .is_some_and(|cols| cols.iter().any(|x| c.contains(x)))
    };
    a.pss |= wants(&[ProcColumn::Pss, ProcColumn::Uss]);
    a.exact |= wants(&[ProcColumn::Unique, ProcColumn::FreedIfGone]);
    if cols
        .as_ref()
        .is_some_and(|c| c.contains(&ProcColumn::Cgroup))
        && a.by.is_none()
    {
        return Err(usage(
            "-o cgroup: the CGROUP column is that of --by cgroup; add --by cgroup",
        ));
    }
    let smaps = a.pss || policy.needs_smaps();
    if a.exact {
        // Physical page numbers of every process: more than any caller may learn.
        crate::privilege::refuse_when_elevated("procs --exact")?;
    }
    if a.exact && !collect::pagemap::can_read_pfns() {
        bail!("--exact needs CAP_SYS_ADMIN (run as root): it counts physical pages, and without it /proc/PID/pagemap shows every page frame number as 0");
    }
    let paths = collect::HostPaths::from(a.output.host.clone());
    crate::privilege::check_paths(&paths)?;
    let snap = crate::privilege::scan_once(&Options {
        paths,
        smaps,
        cgroups: true,
        bpf: true,
        repeated: false,
        counters: true,
        titles: true,
        // PSS and USS per process; the `touched` policy charges by each mapping's PSS, and
        // so does the TOUCHED column of `--by cgroup`.
        pss_totals_only: !policy.needs_smaps() && !matches!(a.by, Some(GroupByArg::Cgroup)),
    })?;
    check_pids(&snap, &a.pid)?;
    let acc = account::account(&snap, policy);
    let exact = a.exact.then(|| {
        std::sync::Arc::new(collect::pagemap::snapshot_phys_pages(
            &a.output.host.proc_root,
            &snap,
        ))
    });
    let query = ProcQuery {
        pids: a.pid.clone(),
        users: a.user.clone(),
        comm: a.comm.clone(),
        by: a.by.map(Into::into),
        sort: a.sort.0,
        reverse: a.reverse,
        top: a.top,
        pss: smaps,
        exact,
    };
    let mut ro = render_opts(&a.output);
    ro.proc_columns = cols;
    let output = render::output(a.output.json, ro);
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
            for_secs: p.for_secs.map(|d| d.as_secs_f64()),
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
    lab::run(&lab::LabOptions {
        size: a.size,
        exit_children: a.exit_children,
        sysv: extra(a.sysv),
        memfd: extra(a.memfd),
        posix: extra(a.posix),
        tmpfs,
        for_secs: a.for_secs.map(|d| d.as_secs_f64()),
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
            paths: a.output.host.into(),
        }
    }
}

impl From<TopArgs> for crate::top::TopOptions {
    fn from(a: TopArgs) -> Self {
        crate::top::TopOptions {
            interval: a.interval,
            charge: a.charge.into(),
            filter: a.filter,
            paths: a.host.into(),
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
            paths: a.host.into(),
        }
    }
}

impl From<RecordArgs> for crate::record::RecordOptions {
    fn from(a: RecordArgs) -> Self {
        crate::record::RecordOptions {
            file: a.file,
            charge: a.charge.into(),
            paths: a.host.into(),
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
