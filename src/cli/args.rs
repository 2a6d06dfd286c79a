//! The flags of the listing views and the value enums of every command, turned into the plain
//! query values of [`crate::report`] and [`crate::account`] by `From` impls.

use crate::account::Policy;
use crate::model::{ObjectKind, Pid};
use crate::render::metrics::Format;
use crate::report::{GroupBy, ObjectColumn, ProcColumn};
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Where the host's files are, for a shmwho running in a container (node_exporter's
/// `--path.procfs` and `--path.rootfs`).
#[derive(Args, Debug, Clone)]
pub struct HostArgs {
    /// Read procfs from DIR instead of /proc: the host's /proc mounted in a container (as
    /// node_exporter's --path.procfs); pids are those of the pid namespace it was mounted in;
    /// see docs/permissions.md
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// The host's / is mounted at DIR (a container, as node_exporter's --path.rootfs):
    /// /dev/shm, tmpfs and hugetlbfs mounts, cgroups and /etc/passwd are read under it, and
    /// the host's mount table is that of its pid 1
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
}

impl Default for HostArgs {
    fn default() -> Self {
        HostArgs {
            proc_root: PathBuf::from("/proc"),
            host_root: PathBuf::from("/"),
        }
    }
}

impl From<HostArgs> for crate::collect::HostPaths {
    fn from(a: HostArgs) -> Self {
        crate::collect::HostPaths::with_roots(a.proc_root, a.host_root)
    }
}

/// Flags every listing view takes.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Print JSON (schema 1, documented in docs/json.md); always in bytes
    #[arg(long, global = true)]
    pub json: bool,
    /// Print exact byte counts instead of KiB/MiB/GiB
    #[arg(long, global = true)]
    pub bytes: bool,
    /// Leave out the header line of the table
    #[arg(long, global = true)]
    pub no_headings: bool,
    /// Only these columns, in this order: headers in lower case or JSON keys, comma-separated
    /// (e.g. -o pid,command,total); columns named here are never left out to fit the width
    #[arg(
        short = 'o',
        long = "output",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub columns: Vec<String>,
    #[command(flatten)]
    /// Where the host's procfs and files are read from.
    pub host: HostArgs,
}

/// `shmwho` and `shmwho objects`.
#[derive(Args, Debug, Clone)]
pub struct ObjectsArgs {
    /// Only objects of these kinds (comma-separated or repeated)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub kind: Vec<KindArg>,
    /// Only objects held or owned by these processes (comma-separated or repeated)
    #[arg(short = 'p', long, value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<Pid>,
    /// Sort by this column (largest first)
    #[arg(long, value_enum, default_value_t = ObjectSortArg(ObjectColumn::Resident))]
    pub sort: ObjectSortArg,
    /// Reverse the order of --sort
    #[arg(short = 'r', long)]
    pub reverse: bool,
    /// Show at most N objects (the footer still counts all)
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Charging policy for the per-object `charges` in JSON (see `shmwho procs --help`)
    #[arg(long, value_enum, default_value_t = PolicyArg::Owner)]
    pub charge: PolicyArg,
    #[command(flatten)]
    /// Output format and procfs location.
    pub output: OutputArgs,
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
/// `shmwho procs`.
pub struct ProcsArgs {
    /// How shared objects are charged to processes
    #[arg(long, value_enum, default_value_t = PolicyArg::Owner)]
    pub charge: PolicyArg,
    /// Add PSS and USS from smaps (walks page tables: slower)
    #[arg(long)]
    pub pss: bool,
    /// Exact memory per row (root: reads physical page numbers from pagemap): UNIQUE counts
    /// distinct pages instead of summing PSS, FREED-IF-GONE what killing the row's processes
    /// would return; best with --by tree or command
    #[arg(long)]
    pub exact: bool,
    /// One row per command, per user, per process tree, per memory cgroup, per Kubernetes pod,
    /// container or systemd unit; by cgroup adds a reconciliation with each cgroup's own
    /// memory.stat shmem
    #[arg(long, value_enum)]
    pub by: Option<GroupByArg>,
    /// Only these processes (comma-separated or repeated)
    #[arg(short = 'p', long, value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<Pid>,
    /// Only processes of these users (names or uids, comma-separated or repeated)
    #[arg(short = 'u', long, value_name = "USER", value_delimiter = ',')]
    pub user: Vec<String>,
    /// Only processes whose command contains this text
    #[arg(long)]
    pub comm: Option<String>,
    /// Sort by this column (largest first; pid and command ascending); pss and uss turn on
    /// --pss, unique and freed-if-gone --exact
    #[arg(long, value_enum, default_value_t = ProcSortArg(ProcColumn::Total))]
    pub sort: ProcSortArg,
    /// Reverse the order of --sort
    #[arg(short = 'r', long)]
    pub reverse: bool,
    /// Show at most N rows
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    #[command(flatten)]
    /// Output format and procfs location.
    pub output: OutputArgs,
}

/// `--kind`: spelled as in the JSON `kind` field.
// Variants have no doc comments: clap would print them in --help, where the names say enough.
#[allow(missing_docs)]
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindArg {
    #[value(name = "anon_shared")]
    AnonShared,
    Sysv,
    Memfd,
    #[value(name = "posix_shm")]
    PosixShm,
    Tmpfs,
    Hugetlbfs,
}

impl From<KindArg> for ObjectKind {
    fn from(k: KindArg) -> ObjectKind {
        match k {
            KindArg::AnonShared => ObjectKind::AnonShared,
            KindArg::Sysv => ObjectKind::Sysv,
            KindArg::Memfd => ObjectKind::Memfd,
            KindArg::PosixShm => ObjectKind::PosixShm,
            KindArg::Tmpfs => ObjectKind::Tmpfs,
            KindArg::Hugetlbfs => ObjectKind::Hugetlbfs,
        }
    }
}

/// `--charge`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyArg {
    /// Whole object to its owner (SysV creator, else the holder that started first).
    Owner,
    /// Resident bytes divided equally among the processes holding it.
    Split,
    /// Each mapper its PSS of the object (the kernel's proportional view, read from smaps);
    /// the part no live process maps goes to the owner.
    Touched,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::Owner => Policy::Owner,
            PolicyArg::Split => Policy::Split,
            PolicyArg::Touched => Policy::Touched,
        }
    }
}

/// `procs --by`.
// Only names that need one have a doc comment: clap prints it in --help, where the other names
// say enough.
#[allow(missing_docs)]
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupByArg {
    Command,
    User,
    Cgroup,
    /// A process and its descendants that run the same command, under the topmost one's pid
    /// (a PHP-FPM master and its workers, a postmaster and its backends); a descendant running
    /// another command starts its own tree
    Tree,
    /// A Kubernetes pod (from the cgroup path); adds each pod's shared memory against its
    /// cgroup's memory.stat shmem and its /dev/shm used against its size limit
    Pod,
    /// A container (from the cgroup path: containerd, CRI-O, Docker, Podman), with its pod
    Container,
    /// A systemd unit: the innermost .service or .scope of the cgroup path
    Unit,
}

impl From<GroupByArg> for GroupBy {
    fn from(g: GroupByArg) -> GroupBy {
        match g {
            GroupByArg::Command => GroupBy::Command,
            GroupByArg::User => GroupBy::User,
            GroupByArg::Cgroup => GroupBy::Cgroup,
            GroupByArg::Tree => GroupBy::Tree,
            GroupByArg::Pod => GroupBy::Pod,
            GroupByArg::Container => GroupBy::Container,
            GroupByArg::Unit => GroupBy::Unit,
        }
    }
}

/// `export --format`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatArg {
    /// OpenMetrics 1.0 text
    Openmetrics,
    /// Prometheus text format 0.0.4
    Prometheus,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Openmetrics => Format::OpenMetrics,
            FormatArg::Prometheus => Format::Prometheus,
        }
    }
}

/// `objects --sort`: the values are the report's sortable object columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSortArg(pub ObjectColumn);

impl ValueEnum for ObjectSortArg {
    fn value_variants<'a>() -> &'a [Self] {
        const N: usize = ObjectColumn::SORTABLE.len();
        const ALL: [ObjectSortArg; N] = {
            let mut out = [ObjectSortArg(ObjectColumn::Resident); N];
            let mut i = 0;
            while i < N {
                out[i] = ObjectSortArg(ObjectColumn::SORTABLE[i]);
                i += 1;
            }
            out
        };
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.sort_name()))
    }
}

/// `procs --sort`: the values are the report's sortable process columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSortArg(pub ProcColumn);

impl ValueEnum for ProcSortArg {
    fn value_variants<'a>() -> &'a [Self] {
        const N: usize = ProcColumn::SORTABLE.len();
        const ALL: [ProcSortArg; N] = {
            let mut out = [ProcSortArg(ProcColumn::Total); N];
            let mut i = 0;
            while i < N {
                out[i] = ProcSortArg(ProcColumn::SORTABLE[i]);
                i += 1;
            }
            out
        };
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let v = PossibleValue::new(self.0.sort_name());
        Some(match self.0.sort_help() {
            Some(h) => v.help(h),
            None => v,
        })
    }
}
