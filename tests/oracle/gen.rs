//! Random scenarios: a list of operations over a few actors and objects, and the bookkeeping
//! (the model) of who holds what after each one. The model is the test's own, never shmwho's.
//!
//! Operations name actors and objects by creation order, so a shrunk list stays meaningful: an
//! operation the model says cannot apply any more (its actor exited, its object is gone) is
//! skipped, both when generating and when running.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Anon,
    Sysv,
    Memfd,
    Posix,
    Tmpfs,
    /// A file on the test's `huge=always` tmpfs.
    TmpfsHuge,
    /// `MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB`; sizes of huge kinds are in 2 MiB pages.
    AnonHuge,
    /// `memfd_create(MFD_HUGETLB)`.
    MemfdHuge,
    /// `shmget(SHM_HUGETLB)`.
    SysvHuge,
    /// A file on the test's hugetlbfs mount (`pagesize=2M`).
    HugetlbfsFile,
}

impl Kind {
    pub fn json(self) -> &'static str {
        match self {
            Kind::Anon | Kind::AnonHuge => "anon_shared",
            Kind::Sysv | Kind::SysvHuge => "sysv",
            Kind::Memfd | Kind::MemfdHuge => "memfd",
            Kind::Posix => "posix_shm",
            Kind::Tmpfs | Kind::TmpfsHuge => "tmpfs",
            Kind::HugetlbfsFile => "hugetlbfs",
        }
    }
    pub fn has_path(self) -> bool {
        matches!(
            self,
            Kind::Posix | Kind::Tmpfs | Kind::TmpfsHuge | Kind::HugetlbfsFile
        )
    }
    /// A SysV segment (named by shmid, removed by IPC_RMID, attached by shmat).
    pub fn sysv(self) -> bool {
        matches!(self, Kind::Sysv | Kind::SysvHuge)
    }
    /// Hugetlb pool memory: sized, faulted and measured in whole 2 MiB pages.
    pub fn hugetlb(self) -> bool {
        matches!(
            self,
            Kind::AnonHuge | Kind::MemfdHuge | Kind::SysvHuge | Kind::HugetlbfsFile
        )
    }
    /// Made by a mapping (or attachment), not an fd.
    pub fn mapped(self) -> bool {
        matches!(
            self,
            Kind::Anon | Kind::Sysv | Kind::AnonHuge | Kind::SysvHuge
        )
    }
    /// Made with an fd whose size can change.
    pub fn file(self) -> bool {
        matches!(
            self,
            Kind::Memfd | Kind::Posix | Kind::Tmpfs | Kind::TmpfsHuge
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create {
        a: usize,
        kind: Kind,
        pages: usize,
        sealable: bool,
    },
    Write {
        a: usize,
        o: usize,
        first: usize,
        n: usize,
    },
    Map {
        a: usize,
        o: usize,
    },
    MapPrivate {
        a: usize,
        o: usize,
    },
    Falloc {
        a: usize,
        o: usize,
        first: usize,
        n: usize,
    },
    Punch {
        a: usize,
        o: usize,
        first: usize,
        n: usize,
    },
    Truncate {
        a: usize,
        o: usize,
        pages: usize,
    },
    Seal {
        a: usize,
        o: usize,
    },
    MadvRemove {
        a: usize,
        o: usize,
    },
    Mremap {
        a: usize,
        o: usize,
    },
    Unmap {
        a: usize,
        o: usize,
    },
    Close {
        a: usize,
        o: usize,
    },
    Dup {
        a: usize,
        o: usize,
    },
    /// Open `/proc/self/map_files/RANGE` of a shared mapping.
    MapFd {
        a: usize,
        o: usize,
    },
    /// Pass an fd with SCM_RIGHTS.
    Send {
        a: usize,
        to: usize,
        o: usize,
    },
    Rmid {
        a: usize,
        o: usize,
    },
    Unlink {
        a: usize,
        o: usize,
    },
    Pageout {
        a: usize,
        o: usize,
    },
    Fork {
        a: usize,
    },
    Exit {
        a: usize,
    },
    Exec {
        a: usize,
    },
    LeaderExit {
        a: usize,
    },
}

#[derive(Clone, Debug, Default)]
pub struct MActor {
    pub alive: bool,
    pub parent: Option<usize>,
    pub leader_gone: bool,
    /// Its own IPC and mount namespaces: the index of the starting actor that unshared them
    /// (a fork inherits them).
    pub ns: Option<usize>,
    /// (object, shared, pages mapped)
    pub maps: Vec<(usize, bool, usize)>,
    pub fds: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct MObj {
    pub kind: Kind,
    pub creator: usize,
    pub pages: usize,
    pub sealable: bool,
    pub sealed: bool,
    pub removed: bool,
    pub unlinked: bool,
    /// A SysV segment or POSIX shm file made in an actor's own namespaces (see [`MActor::ns`]).
    pub ns: Option<usize>,
    /// Hugetlb: the huge pages written (faulted in). Nothing here frees one short of removing
    /// the object: no reclaim, no swap, no partial-page operation.
    pub faulted: std::collections::BTreeSet<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub actors: Vec<MActor>,
    pub objs: Vec<MObj>,
}

pub const MAX_ACTORS: usize = 6;

impl Model {
    /// A scenario starts with `n` unrelated actors; those in the bit mask `ns` in namespaces
    /// of their own.
    pub fn new(n: usize, ns: u8) -> Model {
        Model {
            actors: (0..n)
                .map(|i| MActor {
                    alive: true,
                    ns: (ns >> i & 1 == 1).then_some(i),
                    ..MActor::default()
                })
                .collect(),
            objs: Vec::new(),
        }
    }

    pub fn held(&self, o: usize) -> bool {
        self.actors
            .iter()
            .any(|a| a.alive && (a.fds.contains(&o) || a.maps.iter().any(|m| m.0 == o)))
    }

    /// Whether the object still exists in the kernel.
    pub fn exists(&self, o: usize) -> bool {
        let ob = &self.objs[o];
        // A namespace's last actor never exits, so its segments and /dev/shm live on.
        self.held(o)
            || match ob.kind {
                k if k.sysv() => !ob.removed,
                k if k.has_path() => !ob.unlinked,
                _ => false,
            }
    }

    fn alive(&self, a: usize) -> bool {
        self.actors.get(a).is_some_and(|x| x.alive)
    }
    fn obj(&self, o: usize) -> Option<&MObj> {
        self.objs.get(o).filter(|_| self.exists(o))
    }
    /// Whether actor `a` sees the object's namespace: SysV ids and /dev/shm paths are per
    /// namespace.
    fn same_ns(&self, a: usize, o: usize) -> bool {
        self.alive(a)
            && self
                .objs
                .get(o)
                .is_some_and(|ob| self.actors[a].ns == ob.ns)
    }
    fn has_fd(&self, a: usize, o: usize) -> bool {
        self.alive(a) && self.actors[a].fds.contains(&o)
    }
    fn shared_map(&self, a: usize, o: usize) -> Option<usize> {
        if !self.alive(a) {
            return None;
        }
        self.actors[a]
            .maps
            .iter()
            .find(|m| m.0 == o && m.1)
            .map(|m| m.2)
    }

    /// Whether a write goes through an fd (SysV and hugetlbfs files have no write method).
    pub fn write_fd(&self, a: usize, o: usize) -> bool {
        let k = self.objs[o].kind;
        self.has_fd(a, o) && !k.sysv() && !k.hugetlb()
    }

    /// Whether a write through a shared mapping stays inside it (and the object's size cannot
    /// have shrunk under it: only anonymous, SysV and hugetlb objects, whose size is fixed).
    fn write_map(&self, a: usize, o: usize, end: usize) -> bool {
        let k = self.objs[o].kind;
        (k.mapped() || k.hugetlb()) && self.shared_map(a, o).is_some_and(|len| end <= len)
    }

    /// Whether `op` can run now (what the actor would do is well defined: no write past the
    /// end of a mapping, no size change of an object mapped for writing by pages).
    pub fn applicable(&self, op: &Op) -> bool {
        use Op::*;
        match *op {
            Create { a, .. } => self.alive(a),
            Write { a, o, first, n } => {
                let Some(ob) = self.obj(o) else { return false };
                n > 0
                    && first + n <= ob.pages
                    && (self.write_fd(a, o) || self.write_map(a, o, first + n))
            }
            Map { a, o } | MapPrivate { a, o } => {
                let Some(ob) = self.obj(o) else { return false };
                // SysV files have no write and are mapped by shmat, never through an fd; a
                // private copy of a huge page is not the object's and takes a pool page.
                ob.pages > 0
                    && !(ob.kind.hugetlb() && matches!(op, MapPrivate { .. }))
                    && if ob.kind.sysv() {
                        !ob.removed && self.same_ns(a, o) && matches!(op, Map { .. })
                    } else {
                        self.has_fd(a, o)
                    }
            }
            Falloc { a, o, first, n } | Punch { a, o, first, n } => self.obj(o).is_some_and(|ob| {
                ob.kind.file() && n > 0 && first + n <= ob.pages && self.has_fd(a, o)
            }),
            Truncate { a, o, .. } => self
                .obj(o)
                .is_some_and(|ob| ob.kind.file() && !ob.sealed && self.has_fd(a, o)),
            Seal { a, o } => self
                .obj(o)
                .is_some_and(|ob| ob.kind == Kind::Memfd && ob.sealable && self.has_fd(a, o)),
            // No partial-page operations on huge pages.
            MadvRemove { a, o } | Pageout { a, o } => {
                self.obj(o).is_some_and(|ob| !ob.kind.hugetlb()) && self.shared_map(a, o).is_some()
            }
            Mremap { a, o } => {
                self.obj(o)
                    .is_some_and(|ob| !ob.kind.sysv() && !ob.kind.hugetlb())
                    && self.shared_map(a, o).is_some_and(|len| len > 1)
            }
            Unmap { a, o } => self.alive(a) && self.actors[a].maps.iter().any(|m| m.0 == o),
            Close { a, o } | Dup { a, o } => self.has_fd(a, o),
            MapFd { a, o } => {
                // map_files is gone with the leader thread; a segment of a namespace held by
                // an fd could outlive its namespace.
                self.alive(a)
                    && !self.actors[a].leader_gone
                    && self.actors[a].ns.is_none()
                    && self.obj(o).is_some_and(|ob| ob.kind.mapped())
                    && self.shared_map(a, o).is_some()
            }
            // A SysV fd (map_files) names its segment by shmid alone: a process of another
            // IPC namespace holding it would be read as holding that namespace's shmid.
            Send { a, to, o } => {
                self.has_fd(a, o)
                    && self.alive(to)
                    && a != to
                    && (!self.objs[o].kind.sysv() || self.actors[to].ns == self.objs[o].ns)
            }
            Rmid { a, o } => {
                self.same_ns(a, o) && self.obj(o).is_some_and(|ob| ob.kind.sysv() && !ob.removed)
            }
            Unlink { a, o } => {
                // /dev/shm is per mount namespace; the test's own mounts are in every one.
                self.alive(a)
                    && self.obj(o).is_some_and(|ob| {
                        ob.kind.has_path()
                            && !ob.unlinked
                            && (ob.kind != Kind::Posix || self.same_ns(a, o))
                    })
            }
            Fork { a } => self.alive(a) && self.actors.len() < MAX_ACTORS,
            Exit { a } => {
                // The last actor of a namespace stays: its segments and files live on with it,
                // and the truth of an unheld one comes from an actor inside.
                let ns = self.actors.get(a).and_then(|x| x.ns);
                self.alive(a)
                    && self.actors.iter().filter(|x| x.alive).count() > 1
                    && (ns.is_none()
                        || self
                            .actors
                            .iter()
                            .enumerate()
                            .any(|(i, x)| i != a && x.alive && x.ns == ns))
            }
            Exec { a } => self.alive(a),
            // Kept to actors in shmwho's namespaces: a zombie leader has no namespace links.
            LeaderExit { a } => {
                self.alive(a) && !self.actors[a].leader_gone && self.actors[a].ns.is_none()
            }
        }
    }

    /// The bookkeeping of `op` (which must be applicable).
    pub fn apply(&mut self, op: &Op) {
        use Op::*;
        match *op {
            Create {
                a,
                kind,
                pages,
                sealable,
            } => {
                let ns = self.actors[a]
                    .ns
                    .filter(|_| kind.sysv() || kind == Kind::Posix);
                self.objs.push(MObj {
                    kind,
                    creator: a,
                    pages,
                    sealable,
                    sealed: false,
                    removed: false,
                    unlinked: false,
                    ns,
                    faulted: Default::default(),
                });
                let o = self.objs.len() - 1;
                if kind.mapped() {
                    self.actors[a].maps.push((o, true, pages));
                } else {
                    self.actors[a].fds.push(o);
                }
            }
            Map { a, o } => {
                let p = self.objs[o].pages;
                self.actors[a].maps.push((o, true, p));
            }
            MapPrivate { a, o } => {
                let p = self.objs[o].pages;
                self.actors[a].maps.push((o, false, p));
            }
            Truncate { o, pages, .. } => self.objs[o].pages = pages,
            Seal { o, .. } => self.objs[o].sealed = true,
            Mremap { a, o } => {
                let m = self.actors[a]
                    .maps
                    .iter_mut()
                    .find(|m| m.0 == o && m.1)
                    .unwrap();
                m.2 = m.2.div_ceil(2);
            }
            Unmap { a, o } => {
                let i = self.actors[a].maps.iter().rposition(|m| m.0 == o).unwrap();
                self.actors[a].maps.remove(i);
            }
            Close { a, o } => {
                let i = self.actors[a].fds.iter().rposition(|&f| f == o).unwrap();
                self.actors[a].fds.remove(i);
            }
            Dup { a, o } | MapFd { a, o } => self.actors[a].fds.push(o),
            Send { to, o, .. } => self.actors[to].fds.push(o),
            Rmid { o, .. } => self.objs[o].removed = true,
            Unlink { o, .. } => self.objs[o].unlinked = true,
            Fork { a } => {
                let mut child = self.actors[a].clone();
                child.parent = Some(a);
                child.leader_gone = false;
                self.actors.push(child);
            }
            Exit { a } => {
                let x = &mut self.actors[a];
                x.alive = false;
                x.maps.clear();
                x.fds.clear();
            }
            Exec { a } => {
                self.actors[a].maps.clear();
                self.actors[a].leader_gone = false;
            }
            LeaderExit { a } => self.actors[a].leader_gone = true,
            Write { o, first, n, .. } if self.objs[o].kind.hugetlb() => {
                self.objs[o].faulted.extend(first..first + n)
            }
            Write { .. } | Falloc { .. } | Punch { .. } | MadvRemove { .. } | Pageout { .. } => {}
        }
    }
}

/// splitmix64: small, seedable, no crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What the machine offers a scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Variant {
    pub swap: bool,
    /// Objects of 2-4 MiB, so that shmem THP can apply.
    pub big: bool,
    /// Only hugetlb objects, and only whole-huge-page operations (a pool is reserved).
    pub huge: bool,
    /// Some starting actors in IPC and mount namespaces of their own.
    pub ns: bool,
}

/// A scenario: the number of starting actors, which of them start in namespaces of their own
/// (bit mask), and the operations.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub actors: usize,
    pub ns: u8,
    pub ops: Vec<Op>,
}

/// Hugetlb objects a scenario makes at most, of at most 2 huge pages each: what the phase
/// reserves per scenario running at once is 6 pages.
pub const MAX_HUGE_OBJECTS: usize = 3;

pub fn generate(seed: u64, v: Variant) -> Scenario {
    if v.huge {
        return generate_huge(seed);
    }
    let mut r = Rng::new(seed);
    let actors = 1 + r.below(3);
    let ns = if v.ns {
        (1 + r.below((1 << actors) - 1)) as u8
    } else {
        0
    };
    let mut m = Model::new(actors, ns);
    let mut ops = Vec::new();
    let target = 8 + r.below(20);
    let mut tries = 0;
    while ops.len() < target && tries < 2000 {
        tries += 1;
        let na = m.actors.len();
        let a = r.below(na);
        let no = m.objs.len();
        let o = r.below(no);
        let pages = m.objs.get(o).map_or(1, |x| x.pages.max(1));
        let first = r.below(pages);
        let n = 1 + r.below(pages - first);
        // The swap mix pushes pages out often: about one operation in five.
        let pick = if v.swap && r.chance(20) {
            25
        } else {
            r.below(25)
        };
        let op = match pick {
            // Namespaces matter to SysV and POSIX objects: half of the creations there.
            0..=3 if v.ns && r.chance(50) => Op::Create {
                a,
                kind: [Kind::Sysv, Kind::Posix][r.below(2)],
                pages: 1 + r.below(48),
                sealable: false,
            },
            0..=3 => {
                let kind = [
                    Kind::Anon,
                    Kind::Sysv,
                    Kind::Memfd,
                    Kind::Posix,
                    Kind::Tmpfs,
                    Kind::TmpfsHuge,
                ][r.below(6)];
                let pages = if v.big && r.chance(50) {
                    512 + r.below(512)
                } else {
                    1 + r.below(48)
                };
                Op::Create {
                    a,
                    kind,
                    pages,
                    sealable: r.chance(50),
                }
            }
            4..=6 => Op::Write { a, o, first, n },
            7 => Op::Map { a, o },
            8 => Op::MapPrivate { a, o },
            9 => Op::Falloc { a, o, first, n },
            10 => Op::Punch { a, o, first, n },
            11 => Op::Truncate {
                a,
                o,
                pages: r.below(2 * pages + 1),
            },
            12 => Op::Seal { a, o },
            13 => Op::MadvRemove { a, o },
            14 => Op::Mremap { a, o },
            15 => Op::Unmap { a, o },
            16 => Op::Close { a, o },
            17 => Op::Dup { a, o },
            18 => Op::MapFd { a, o },
            19 => Op::Send {
                a,
                to: r.below(na),
                o,
            },
            20 => Op::Rmid { a, o },
            21 => Op::Unlink { a, o },
            22 => [Op::Fork { a }, Op::Fork { a }, Op::Exit { a }][r.below(3)].clone(),
            23 => Op::Exec { a },
            24 => Op::LeaderExit { a },
            _ => Op::Pageout { a, o },
        };
        if m.applicable(&op) {
            m.apply(&op);
            ops.push(op);
        }
    }
    Scenario { actors, ns, ops }
}

/// The hugetlb mix: 1-2 huge pages per object, faulted one huge page at a time, mapped, shared
/// and passed around, removed; nothing that acts on part of a huge page.
fn generate_huge(seed: u64) -> Scenario {
    let mut r = Rng::new(seed);
    let actors = 1 + r.below(3);
    // Half the scenarios with some actors in namespaces of their own: SHM_HUGETLB segments of
    // another IPC namespace.
    let ns = if r.chance(50) {
        (1 + r.below((1 << actors) - 1)) as u8
    } else {
        0
    };
    let mut m = Model::new(actors, ns);
    let mut ops = Vec::new();
    let target = 6 + r.below(14);
    let mut tries = 0;
    while ops.len() < target && tries < 2000 {
        tries += 1;
        let na = m.actors.len();
        let a = r.below(na);
        let o = r.below(m.objs.len());
        let pages = m.objs.get(o).map_or(1, |x| x.pages.max(1));
        let op = match r.below(15) {
            0..=2 if m.objs.len() < MAX_HUGE_OBJECTS => Op::Create {
                a,
                kind: [
                    Kind::AnonHuge,
                    Kind::MemfdHuge,
                    Kind::SysvHuge,
                    Kind::HugetlbfsFile,
                ][r.below(4)],
                pages: 1 + r.below(2),
                sealable: false,
            },
            0..=4 => Op::Write {
                a,
                o,
                first: r.below(pages),
                n: 1,
            },
            5 | 6 => Op::Map { a, o },
            7 => Op::Unmap { a, o },
            8 => Op::Close { a, o },
            9 => Op::Dup { a, o },
            10 => Op::Send {
                a,
                to: r.below(na),
                o,
            },
            11 => [Op::Rmid { a, o }, Op::Unlink { a, o }][r.below(2)].clone(),
            12 => [Op::Fork { a }, Op::Fork { a }, Op::Exit { a }][r.below(3)].clone(),
            13 => Op::MapFd { a, o },
            _ => Op::Exec { a },
        };
        if m.applicable(&op) {
            m.apply(&op);
            ops.push(op);
        }
    }
    Scenario { actors, ns, ops }
}
