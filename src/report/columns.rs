//! One enum per table (objects, procs, the per-cgroup reconciliation): each column's header, JSON key, `--sort` name, alignment and value are
//! defined here once. A new column is a variant and its arms here; the table, the `--sort`
//! values of the CLI and the JSON key check pick it up.

use super::rows::ProcRow;
use super::{object_id, object_name};
use crate::account::cgroup::CgroupRow;
use crate::account::pods::PodRow;
use crate::account::Accounted;

/// What the width fitting and `-o` need of a table's columns, from one enum per table: a new
/// variant is picked up by both through the enum's own methods.
pub trait Column: Copy + PartialEq + 'static {
    /// Every column of the table, in table order, for `-o`.
    const ALL: &'static [Self];
    /// Table header.
    fn header(self) -> &'static str;
    /// Key in the JSON rows, if the column has one.
    fn key(self) -> Option<&'static str>;
    /// Where the text sits.
    fn align(self) -> Align;
    /// Columns are dropped to fit the terminal lowest first; [`KEEP`] never is.
    fn priority(self) -> u8;
    /// Text (names, paths, owners) that may be cut with `…` to fit: never figures or ids.
    fn elidable(self) -> bool {
        self.align() == Align::Left && self.priority() < KEEP
    }
    /// The column `-o` names: the header in lower case, or the JSON key.
    fn by_name(name: &str) -> Option<Self> {
        let n = name.trim().to_ascii_lowercase();
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.header().to_ascii_lowercase() == n || c.key() == Some(n.as_str()))
    }
}

/// [`Column::priority`] of the columns a table never drops (what identifies a row, and the answer).
pub const KEEP: u8 = 255;

/// Where a column's text sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Names and other text.
    Left,
    /// Figures.
    Right,
}

/// One value of a row, before any formatting (units and escaping are the renderer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Text as the kernel or the user gave it: renderers escape it.
    Text(String),
    /// A count or an id.
    Number(u64),
    /// Bytes, measured.
    Bytes(u64),
    /// Bytes, estimated (a lower bound; the table marks it `~`).
    Estimate(u64),
    /// A difference in bytes.
    Signed(i64),
    /// No figure (not read, not applicable): `-`.
    Missing,
}

impl Cell {
    fn bytes(v: Option<u64>) -> Cell {
        v.map_or(Cell::Missing, Cell::Bytes)
    }

    fn text(v: &Option<String>) -> Cell {
        v.clone().map_or(Cell::Missing, Cell::Text)
    }

    /// The figure to sort on: bytes or counts; 0 for text and missing figures.
    pub fn figure(&self) -> u64 {
        match *self {
            Cell::Number(v) | Cell::Bytes(v) | Cell::Estimate(v) => v,
            Cell::Text(_) | Cell::Missing => 0,
            Cell::Signed(v) => v.max(0) as u64,
        }
    }
}

/// How rows are ordered by a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Largest first (figures), ties by name then id.
    Descending,
    /// Smallest first (pid, command).
    Ascending,
}

/// Columns of the objects table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectColumn {
    /// `anon_shared`, `sysv`, ...
    Kind,
    /// Inode or `sysv:SHMID`, as `shmwho show` takes it.
    Id,
    /// memfd name, SysV key or path.
    Name,
    /// Size of the object.
    Size,
    /// Bytes in RAM.
    Resident,
    /// Bytes in swap.
    Swap,
    /// Distinct processes holding it.
    Holders,
    /// The process it is charged to under `owner`.
    Owner,
    /// What a person would call it, from the label rules.
    Label,
}

impl ObjectColumn {
    /// The table's columns, in order.
    pub const TABLE: [ObjectColumn; 9] = [
        ObjectColumn::Kind,
        ObjectColumn::Id,
        ObjectColumn::Name,
        ObjectColumn::Size,
        ObjectColumn::Resident,
        ObjectColumn::Swap,
        ObjectColumn::Holders,
        ObjectColumn::Owner,
        ObjectColumn::Label,
    ];

    /// The columns `--sort` takes, the default first.
    pub const SORTABLE: [ObjectColumn; 4] = [
        ObjectColumn::Resident,
        ObjectColumn::Size,
        ObjectColumn::Swap,
        ObjectColumn::Holders,
    ];

    /// Table header.
    pub fn header(self) -> &'static str {
        match self {
            ObjectColumn::Kind => "KIND",
            ObjectColumn::Id => "ID",
            ObjectColumn::Name => "NAME",
            ObjectColumn::Size => "SIZE",
            ObjectColumn::Resident => "RESIDENT",
            ObjectColumn::Swap => "SWAP",
            ObjectColumn::Holders => "HOLDERS",
            ObjectColumn::Owner => "OWNER",
            ObjectColumn::Label => "LABEL",
        }
    }

    /// Key of the figure in each JSON object of `shmwho --json`; None for NAME, which JSON splits
    /// into `name`, `key` and `path` by kind.
    pub fn json_key(self) -> Option<&'static str> {
        Some(match self {
            ObjectColumn::Kind => "kind",
            ObjectColumn::Id => "id",
            ObjectColumn::Name => return None,
            ObjectColumn::Size => "size_bytes",
            ObjectColumn::Resident => "resident_bytes",
            ObjectColumn::Swap => "swap_bytes",
            ObjectColumn::Holders => "holders",
            ObjectColumn::Owner => "owner",
            ObjectColumn::Label => "label",
        })
    }

    /// The value `--sort` takes for it.
    pub fn sort_name(self) -> &'static str {
        match self {
            ObjectColumn::Kind => "kind",
            ObjectColumn::Id => "id",
            ObjectColumn::Name => "name",
            ObjectColumn::Size => "size",
            ObjectColumn::Resident => "resident",
            ObjectColumn::Swap => "swap",
            ObjectColumn::Holders => "holders",
            ObjectColumn::Owner => "owner",
            ObjectColumn::Label => "label",
        }
    }

    /// Where the column's text sits.
    pub fn align(self) -> Align {
        match self {
            ObjectColumn::Kind
            | ObjectColumn::Id
            | ObjectColumn::Name
            | ObjectColumn::Owner
            | ObjectColumn::Label => Align::Left,
            _ => Align::Right,
        }
    }

    /// The value of object `i` of the accounted snapshot.
    pub fn cell(self, acc: &Accounted, i: usize) -> Cell {
        let snap = acc.snapshot;
        let o = &snap.objects[i];
        let fig = |v| {
            if o.is_exact() {
                Cell::Bytes(v)
            } else {
                Cell::Estimate(v)
            }
        };
        match self {
            ObjectColumn::Kind => Cell::Text(o.kind().as_str().to_string()),
            ObjectColumn::Id => Cell::Text(object_id(o)),
            ObjectColumn::Name => Cell::Text(object_name(o)),
            ObjectColumn::Size => fig(o.size_bytes),
            ObjectColumn::Resident => fig(o.resident_bytes),
            ObjectColumn::Swap => fig(o.swap_bytes),
            ObjectColumn::Holders => Cell::Number(o.holder_pids().len() as u64),
            // The title when there is one: "php-fpm: master process (...)" says more than
            // "php-fpm8.2".
            ObjectColumn::Owner => acc.owners[i].map_or(Cell::Missing, |pid| {
                let name = snap.process(pid).map_or("", |p| p.label());
                Cell::Text(format!("{pid} {name}"))
            }),
            ObjectColumn::Label => acc.labels[i].clone().map_or(Cell::Missing, Cell::Text),
        }
    }
}

impl Column for ObjectColumn {
    const ALL: &'static [Self] = &ObjectColumn::TABLE;
    fn header(self) -> &'static str {
        ObjectColumn::header(self)
    }
    fn key(self) -> Option<&'static str> {
        self.json_key()
    }
    fn align(self) -> Align {
        ObjectColumn::align(self)
    }
    fn priority(self) -> u8 {
        match self {
            ObjectColumn::Id | ObjectColumn::Resident => KEEP,
            ObjectColumn::Kind => 200,
            ObjectColumn::Name => 150,
            ObjectColumn::Size => 100,
            ObjectColumn::Swap => 90,
            ObjectColumn::Holders => 80,
            ObjectColumn::Owner => 70,
            ObjectColumn::Label => 60,
        }
    }
    fn elidable(self) -> bool {
        matches!(
            self,
            ObjectColumn::Name | ObjectColumn::Owner | ObjectColumn::Label
        )
    }
}

/// Columns of the procs table (and of its JSON rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcColumn {
    /// Process id (a tree group: its root's).
    Pid,
    /// Parent process id.
    Ppid,
    /// Processes in the row.
    Procs,
    /// User name.
    User,
    /// Command name.
    Command,
    /// Process title (command line).
    Title,
    /// Memory cgroup.
    Cgroup,
    /// Kubernetes pod UID (from the cgroup path).
    Pod,
    /// Container ID (from the cgroup path).
    Container,
    /// systemd unit (from the cgroup path).
    Unit,
    /// Resident set size.
    Rss,
    /// Private anonymous resident memory.
    Anon,
    /// File-backed resident memory.
    File,
    /// Resident shared memory the process maps (the kernel's RssShmem).
    Shmem,
    /// Swapped-out private memory.
    Swap,
    /// Shared memory charged to the row under the policy.
    Shared,
    /// ANON + SHARED.
    Total,
    /// Objects the row owns.
    Owned,
    /// Proportional set size (smaps).
    Pss,
    /// Unique set size outside shared-memory objects (smaps).
    Uss,
    /// `--exact`: distinct physical pages plus SHARED.
    Unique,
    /// `--exact`: what killing the row's processes would return.
    FreedIfGone,
}

impl Column for ProcColumn {
    const ALL: &'static [Self] = &ProcColumn::ALL;
    fn header(self) -> &'static str {
        ProcColumn::header(self)
    }
    fn key(self) -> Option<&'static str> {
        Some(self.json_key())
    }
    fn align(self) -> Align {
        ProcColumn::align(self)
    }
    fn priority(self) -> u8 {
        use ProcColumn::*;
        match self {
            Pid | Command | Cgroup | Pod | Container | Unit | Total => KEEP,
            // Left out only when the row would not fit without them (30 columns, or --exact
            // at 60): TOTAL includes SHARED, and a cut figure would be worse than none.
            Unique => 252,
            FreedIfGone => 251,
            Procs => 250,
            Shared => 249,
            Rss => 120,
            Pss => 110,
            Uss => 105,
            Anon => 100,
            Shmem => 90,
            Swap => 80,
            Owned => 70,
            Title => 65,
            User => 60,
            File => 50,
            Ppid => 40,
        }
    }
    fn elidable(self) -> bool {
        matches!(
            self,
            ProcColumn::User | ProcColumn::Command | ProcColumn::Title | ProcColumn::Cgroup
        )
    }
}

impl ProcColumn {
    /// Every column, in table order (what `-o` takes).
    pub const ALL: [ProcColumn; 22] = [
        ProcColumn::Pid,
        ProcColumn::Ppid,
        ProcColumn::Procs,
        ProcColumn::User,
        ProcColumn::Command,
        ProcColumn::Title,
        ProcColumn::Cgroup,
        ProcColumn::Pod,
        ProcColumn::Container,
        ProcColumn::Unit,
        ProcColumn::Rss,
        ProcColumn::Anon,
        ProcColumn::File,
        ProcColumn::Shmem,
        ProcColumn::Swap,
        ProcColumn::Shared,
        ProcColumn::Total,
        ProcColumn::Owned,
        ProcColumn::Pss,
        ProcColumn::Uss,
        ProcColumn::Unique,
        ProcColumn::FreedIfGone,
    ];

    /// The columns `--sort` takes, the default first.
    pub const SORTABLE: [ProcColumn; 11] = [
        ProcColumn::Total,
        ProcColumn::Rss,
        ProcColumn::Shared,
        ProcColumn::Shmem,
        ProcColumn::Swap,
        ProcColumn::Pss,
        ProcColumn::Uss,
        ProcColumn::Pid,
        ProcColumn::Command,
        ProcColumn::Unique,
        ProcColumn::FreedIfGone,
    ];

    /// Table header.
    pub fn header(self) -> &'static str {
        match self {
            ProcColumn::Pid => "PID",
            ProcColumn::Ppid => "PPID",
            ProcColumn::Procs => "PROCS",
            ProcColumn::User => "USER",
            ProcColumn::Command => "COMMAND",
            ProcColumn::Title => "TITLE",
            ProcColumn::Cgroup => "CGROUP",
            ProcColumn::Pod => "POD",
            ProcColumn::Container => "CONTAINER",
            ProcColumn::Unit => "UNIT",
            ProcColumn::Rss => "RSS",
            ProcColumn::Anon => "ANON",
            ProcColumn::File => "FILE",
            ProcColumn::Shmem => "SHMEM",
            ProcColumn::Swap => "SWAP",
            ProcColumn::Shared => "SHARED",
            ProcColumn::Total => "TOTAL",
            ProcColumn::Owned => "OWNED",
            ProcColumn::Pss => "PSS",
            ProcColumn::Uss => "USS",
            ProcColumn::Unique => "UNIQUE",
            ProcColumn::FreedIfGone => "FREED-IF-GONE",
        }
    }

    /// Key of the value in each row of `shmwho procs --json`.
    pub fn json_key(self) -> &'static str {
        match self {
            ProcColumn::Pid => "pid",
            ProcColumn::Ppid => "ppid",
            ProcColumn::Procs => "processes",
            ProcColumn::User => "user",
            ProcColumn::Command => "comm",
            ProcColumn::Title => "title",
            ProcColumn::Cgroup => "cgroup",
            ProcColumn::Pod => "pod_uid",
            ProcColumn::Container => "container_id",
            ProcColumn::Unit => "unit",
            ProcColumn::Rss => "rss_bytes",
            ProcColumn::Anon => "rss_anon_bytes",
            ProcColumn::File => "rss_file_bytes",
            ProcColumn::Shmem => "rss_shmem_bytes",
            ProcColumn::Swap => "swap_bytes",
            ProcColumn::Shared => "shared_charged_bytes",
            ProcColumn::Total => "total_bytes",
            ProcColumn::Owned => "owned_objects",
            ProcColumn::Pss => "pss_bytes",
            ProcColumn::Uss => "uss_bytes",
            ProcColumn::Unique => "unique_bytes",
            ProcColumn::FreedIfGone => "freed_if_gone_bytes",
        }
    }

    /// The value `--sort` takes for it.
    pub fn sort_name(self) -> &'static str {
        match self {
            ProcColumn::FreedIfGone => "freed-if-gone",
            ProcColumn::Procs => "procs",
            ProcColumn::Owned => "owned",
            c => match c.json_key().strip_suffix("_bytes").unwrap_or(c.json_key()) {
                "rss_anon" => "anon",
                "rss_file" => "file",
                "rss_shmem" => "shmem",
                "shared_charged" => "shared",
                "comm" => "command",
                other => other,
            },
        }
    }

    /// What `--sort` needs for it to mean anything, for the help.
    pub fn sort_help(self) -> Option<&'static str> {
        match self {
            ProcColumn::Unique | ProcColumn::FreedIfGone => Some("With --exact"),
            _ => None,
        }
    }

    /// Which way `--sort` orders by it.
    pub fn sort_key(self) -> SortKey {
        match self {
            ProcColumn::Pid | ProcColumn::Command => SortKey::Ascending,
            _ => SortKey::Descending,
        }
    }

    /// Where the column's text sits.
    pub fn align(self) -> Align {
        match self {
            ProcColumn::User
            | ProcColumn::Command
            | ProcColumn::Title
            | ProcColumn::Cgroup
            | ProcColumn::Pod
            | ProcColumn::Container
            | ProcColumn::Unit => Align::Left,
            _ => Align::Right,
        }
    }

    /// The value of a row.
    pub fn cell(self, r: &ProcRow) -> Cell {
        match self {
            ProcColumn::Pid => Cell::Number(r.pid as u64),
            ProcColumn::Ppid => Cell::Number(r.ppid as u64),
            ProcColumn::Procs => Cell::Number(u64::from(r.count)),
            ProcColumn::User => Cell::Text(r.user.clone()),
            ProcColumn::Command => Cell::Text(r.comm.clone()),
            ProcColumn::Title => r.title.clone().map_or(Cell::Missing, Cell::Text),
            ProcColumn::Cgroup => {
                Cell::Text(r.cgroup.as_deref().unwrap_or("- (unreadable)").to_string())
            }
            ProcColumn::Pod => Cell::text(&r.workload.pod_uid),
            ProcColumn::Container => Cell::text(&r.workload.container_id),
            ProcColumn::Unit => Cell::text(&r.workload.unit),
            ProcColumn::Rss => Cell::Bytes(r.rss),
            ProcColumn::Anon => Cell::Bytes(r.anon),
            ProcColumn::File => Cell::Bytes(r.file),
            ProcColumn::Shmem => Cell::Bytes(r.shmem),
            ProcColumn::Swap => Cell::Bytes(r.swap),
            ProcColumn::Shared => Cell::Bytes(r.shared),
            ProcColumn::Total => Cell::Bytes(r.total()),
            ProcColumn::Owned => Cell::Number(u64::from(r.owned_objects)),
            ProcColumn::Pss => Cell::bytes(r.pss),
            ProcColumn::Uss => Cell::bytes(r.uss),
            ProcColumn::Unique => Cell::bytes(r.unique),
            ProcColumn::FreedIfGone => Cell::bytes(r.freed_if_gone),
        }
    }
}

/// Columns of the per-cgroup reconciliation below `procs --by cgroup` (and of its JSON rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CgroupColumn {
    /// Cgroup path.
    Cgroup,
    /// Listed processes in it.
    Procs,
    /// Shared memory charged to its processes under `owner`.
    Owner,
    /// Under `split`.
    Split,
    /// Under `touched` (smaps).
    Touched,
    /// The kernel's `memory.stat` `shmem`.
    Kernel,
    /// KERNEL less OWNER.
    KernelOwner,
}

impl Column for CgroupColumn {
    const ALL: &'static [Self] = &[
        CgroupColumn::Cgroup,
        CgroupColumn::Procs,
        CgroupColumn::Owner,
        CgroupColumn::Split,
        CgroupColumn::Touched,
        CgroupColumn::Kernel,
        CgroupColumn::KernelOwner,
    ];
    fn header(self) -> &'static str {
        CgroupColumn::header(self)
    }
    fn key(self) -> Option<&'static str> {
        Some(self.json_key())
    }
    fn align(self) -> Align {
        CgroupColumn::align(self)
    }
    fn priority(self) -> u8 {
        match self {
            CgroupColumn::Cgroup | CgroupColumn::Owner | CgroupColumn::Kernel => KEEP,
            CgroupColumn::KernelOwner => 200,
            CgroupColumn::Procs => 100,
            CgroupColumn::Split => 80,
            CgroupColumn::Touched => 70,
        }
    }
    fn elidable(self) -> bool {
        self == CgroupColumn::Cgroup
    }
}

impl CgroupColumn {
    /// The table's columns; TOUCHED only when smaps was read.
    pub fn table(with_smaps: bool) -> Vec<CgroupColumn> {
        use CgroupColumn::*;
        let mut cols = vec![Cgroup, Procs, Owner, Split];
        if with_smaps {
            cols.push(Touched);
        }
        cols.extend([Kernel, KernelOwner]);
        cols
    }

    /// Table header.
    pub fn header(self) -> &'static str {
        match self {
            CgroupColumn::Cgroup => "CGROUP",
            CgroupColumn::Procs => "PROCS",
            CgroupColumn::Owner => "OWNER",
            CgroupColumn::Split => "SPLIT",
            CgroupColumn::Touched => "TOUCHED",
            CgroupColumn::Kernel => "KERNEL",
            CgroupColumn::KernelOwner => "KERNEL-OWNER",
        }
    }

    /// Key of the value in each row of the JSON `cgroups` list.
    pub fn json_key(self) -> &'static str {
        match self {
            CgroupColumn::Cgroup => "cgroup",
            CgroupColumn::Procs => "processes",
            CgroupColumn::Owner => "owner_bytes",
            CgroupColumn::Split => "split_bytes",
            CgroupColumn::Touched => "touched_bytes",
            CgroupColumn::Kernel => "kernel_shmem_bytes",
            CgroupColumn::KernelOwner => "kernel_minus_owner_bytes",
        }
    }

    /// Where the column's text sits.
    pub fn align(self) -> Align {
        match self {
            CgroupColumn::Cgroup => Align::Left,
            _ => Align::Right,
        }
    }

    /// The value of a row.
    pub fn cell(self, r: &CgroupRow) -> Cell {
        match self {
            CgroupColumn::Cgroup => {
                Cell::Text(r.path.as_deref().unwrap_or("- (unreadable)").to_string())
            }
            CgroupColumn::Procs => Cell::Number(u64::from(r.processes)),
            CgroupColumn::Owner => Cell::Bytes(r.owner_bytes),
            CgroupColumn::Split => Cell::Bytes(r.split_bytes),
            CgroupColumn::Touched => Cell::bytes(r.touched_bytes),
            CgroupColumn::Kernel => Cell::bytes(r.kernel_shmem_bytes),
            CgroupColumn::KernelOwner => r.kernel_minus_owner().map_or(Cell::Missing, Cell::Signed),
        }
    }
}

/// Columns of the per-pod table below `procs --by pod` (and of its JSON rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PodColumn {
    /// Pod UID.
    Pod,
    /// Listed processes in it.
    Procs,
    /// Shared memory charged to its processes under the policy.
    Shared,
    /// Under `owner`.
    Owner,
    /// The kernel's `memory.stat` shmem of the pod's cgroup, children included.
    Kernel,
    /// KERNEL less OWNER.
    KernelOwner,
    /// `/dev/shm` in use (statfs).
    ShmUsed,
    /// `/dev/shm` size limit.
    ShmLimit,
    /// `/dev/shm` room left.
    ShmFree,
}

impl Column for PodColumn {
    const ALL: &'static [Self] = &[
        PodColumn::Pod,
        PodColumn::Procs,
        PodColumn::Shared,
        PodColumn::Owner,
        PodColumn::Kernel,
        PodColumn::KernelOwner,
        PodColumn::ShmUsed,
        PodColumn::ShmLimit,
        PodColumn::ShmFree,
    ];
    fn header(self) -> &'static str {
        match self {
            PodColumn::Pod => "POD",
            PodColumn::Procs => "PROCS",
            PodColumn::Shared => "SHARED",
            PodColumn::Owner => "OWNER",
            PodColumn::Kernel => "KERNEL",
            PodColumn::KernelOwner => "KERNEL-OWNER",
            PodColumn::ShmUsed => "SHM-USED",
            PodColumn::ShmLimit => "SHM-LIMIT",
            PodColumn::ShmFree => "SHM-FREE",
        }
    }
    fn key(self) -> Option<&'static str> {
        Some(match self {
            PodColumn::Pod => "pod_uid",
            PodColumn::Procs => "processes",
            PodColumn::Shared => "shared_charged_bytes",
            PodColumn::Owner => "owner_bytes",
            PodColumn::Kernel => "kernel_shmem_bytes",
            PodColumn::KernelOwner => "kernel_minus_owner_bytes",
            PodColumn::ShmUsed => "dev_shm_used_bytes",
            PodColumn::ShmLimit => "dev_shm_size_bytes",
            PodColumn::ShmFree => "dev_shm_free_bytes",
        })
    }
    fn align(self) -> Align {
        match self {
            PodColumn::Pod => Align::Left,
            _ => Align::Right,
        }
    }
    fn priority(self) -> u8 {
        match self {
            PodColumn::Pod | PodColumn::Kernel | PodColumn::ShmUsed | PodColumn::ShmLimit => KEEP,
            PodColumn::Owner => 210,
            PodColumn::KernelOwner => 200,
            PodColumn::ShmFree => 150,
            PodColumn::Shared => 120,
            PodColumn::Procs => 100,
        }
    }
    fn elidable(self) -> bool {
        false
    }
}

impl PodColumn {
    /// The value of a row.
    pub fn cell(self, r: &PodRow) -> Cell {
        let shm = r.dev_shm();
        match self {
            PodColumn::Pod => Cell::Text(r.pod_uid.clone()),
            PodColumn::Procs => Cell::Number(u64::from(r.processes)),
            PodColumn::Shared => Cell::Bytes(r.charged_bytes),
            PodColumn::Owner => Cell::Bytes(r.owner_bytes),
            PodColumn::Kernel => Cell::bytes(r.kernel_shmem_bytes),
            PodColumn::KernelOwner => r.kernel_minus_owner().map_or(Cell::Missing, Cell::Signed),
            PodColumn::ShmUsed => Cell::bytes(shm.and_then(|v| v.used_bytes)),
            PodColumn::ShmLimit => Cell::bytes(shm.and_then(|v| v.size_bytes)),
            PodColumn::ShmFree => Cell::bytes(shm.and_then(|v| v.free_bytes())),
        }
    }
}
