//! Runs a scenario: starts actors, sends them the operations, keeps the model in step, and
//! cleans up everything it made (processes, SysV segments, files) on drop, also on panic.

use crate::actor::{self, ENV_NS, ENV_SOCKET};
use crate::gen::{Kind, Model, Op, Scenario};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where a scenario may make files.
pub struct Env {
    pub tmpfs: PathBuf,
    pub tmpfs_huge: PathBuf,
    /// The test's hugetlbfs mount (`pagesize=2M`), in the hugetlb phase.
    pub hugetlbfs: Option<PathBuf>,
}

/// Base pages per 2 MiB huge page: hugetlb objects are sized and written in huge pages.
fn unit(kind: Kind) -> usize {
    if kind.hugetlb() {
        (2 << 20) / rustix::param::page_size()
    } else {
        1
    }
}

pub struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

pub struct RActor {
    pub pid: i32,
    pub conn: Option<Conn>,
    /// (IPC, mount) namespace inodes of an actor in namespaces of its own.
    pub ns: Option<(u64, u64)>,
}

/// `ipc:[N]` of process `pid` → N.
fn ns_inode(pid: i32, kind: &str) -> Result<u64, String> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map_err(|e| format!("ns/{kind} of {pid}: {e}"))?;
    link.to_string_lossy()
        .split_once('[')
        .and_then(|(_, r)| r.trim_end_matches(']').parse().ok())
        .ok_or(format!("ns link {link:?}"))
}

/// Identity of a created object.
#[derive(Clone, Debug)]
pub struct Ident {
    pub dev: u64,
    pub ino: u64,
    pub shmid: Option<i32>,
    pub path: Option<PathBuf>,
    /// The namespace inode shmwho must name: the IPC namespace of a segment, the mount
    /// namespace of a POSIX shm file, made by an actor in namespaces of its own. Such objects
    /// die with the namespace; the runner never removes them by id or path (the same shmid
    /// or name in its own namespace is somebody else's).
    pub ns: Option<u64>,
}

pub struct Running {
    pub model: Model,
    pub actors: Vec<RActor>,
    pub idents: Vec<Ident>,
    pub ops_run: usize,
    listener: UnixListener,
    _dir: tempfile::TempDir,
    spawned: Vec<std::process::Child>,
    tag: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        for a in &self.actors {
            if a.pid > 0 {
                // SAFETY: signalling a process this scenario started (a leader_gone actor's whole
                // group goes with it).
                unsafe { libc::kill(a.pid, libc::SIGKILL) };
            }
        }
        // Reaped within a bound: a child stuck in the kernel is left to init rather than hang
        // the run.
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut self.spawned {
            let _ = c.kill();
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for id in self.idents.iter().filter(|id| id.ns.is_none()) {
            if let Some(shmid) = id.shmid {
                // SAFETY: removing a segment this scenario created.
                unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
            }
            if let Some(p) = &id.path {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn posix_name(tag: &str, o: usize) -> String {
    format!("/shmwho-oracle-{tag}-{o}")
}

impl Running {
    pub fn start(sc: &Scenario, tag: &str) -> Result<Running, String> {
        let dir = tempfile::Builder::new()
            .prefix("shmwho-oracle-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let listener = UnixListener::bind(dir.path().join("s")).map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut r = Running {
            model: Model::new(sc.actors, sc.ns),
            actors: Vec::new(),
            idents: Vec::new(),
            ops_run: 0,
            listener,
            _dir: dir,
            spawned: Vec::new(),
            tag: tag.to_string(),
        };
        for i in 0..sc.actors {
            let own_ns = sc.ns >> i & 1 == 1;
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.env(ENV_SOCKET, r.socket())
                .stdin(std::process::Stdio::null());
            if own_ns {
                cmd.env(ENV_NS, "1");
            }
            let child = cmd.spawn().map_err(|e| format!("spawn actor: {e}"))?;
            r.spawned.push(child);
            let (pid, conn) = r.accept()?;
            let ns = if own_ns {
                Some((ns_inode(pid, "ipc")?, ns_inode(pid, "mnt")?))
            } else {
                None
            };
            r.actors.push(RActor {
                pid,
                conn: Some(conn),
                ns,
            });
        }
        Ok(r)
    }

    fn socket(&self) -> PathBuf {
        self._dir.path().join("s")
    }

    fn accept(&self) -> Result<(i32, Conn), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).map_err(|e| e.to_string())?;
                    // Every wait on an actor is bounded: replies, fd transfers and sends.
                    s.set_read_timeout(Some(Duration::from_secs(20)))
                        .map_err(|e| e.to_string())?;
                    s.set_write_timeout(Some(Duration::from_secs(20)))
                        .map_err(|e| e.to_string())?;
                    let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
                    let mut line = String::new();
                    reader.read_line(&mut line).map_err(|e| e.to_string())?;
                    let pid = line
                        .strip_prefix("hello ")
                        .and_then(|p| p.trim().parse().ok())
                        .ok_or(format!("bad hello {line:?}"))?;
                    return Ok((pid, Conn { reader, writer: s }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("no actor connected within 20 s".into());
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Sends one command to actor `a` and returns its reply line.
    pub fn ask(&mut self, a: usize, cmd: &str) -> Result<String, String> {
        let conn = self.actors[a]
            .conn
            .as_mut()
            .ok_or("actor has no connection")?;
        writeln!(conn.writer, "{cmd}").map_err(|e| format!("send {cmd:?}: {e}"))?;
        let mut line = String::new();
        conn.reader
            .read_line(&mut line)
            .map_err(|e| format!("reply to {cmd:?}: {e}"))?;
        if line.is_empty() {
            return Err(format!("actor {a} closed on {cmd:?}"));
        }
        Ok(line.trim_end().to_string())
    }

    fn ok(&mut self, a: usize, cmd: &str) -> Result<Option<String>, String> {
        let reply = self.ask(a, cmd)?;
        if let Some(v) = reply.strip_prefix("ok") {
            Ok(Some(v.trim().to_string()))
        } else if reply.starts_with("skip") {
            Ok(None)
        } else {
            Err(format!("actor {a} on {cmd:?}: {reply}"))
        }
    }

    /// Runs `op` if the model says it applies. Returns whether it ran.
    pub fn step(&mut self, op: &Op, env: &Env) -> Result<bool, String> {
        if !self.model.applicable(op) {
            return Ok(false);
        }
        let ran = self.exec(op, env)?;
        if ran {
            self.model.apply(op);
            self.ops_run += 1;
        }
        Ok(ran)
    }

    fn exec(&mut self, op: &Op, env: &Env) -> Result<bool, String> {
        use Op::*;
        let shmid = |r: &Running, o: usize| r.idents[o].shmid.unwrap_or(-1);
        let done = |x: Option<String>| Ok(x.is_some());
        match *op {
            Create {
                a,
                kind,
                pages,
                sealable,
            } => {
                let o = self.model.objs.len();
                let path = match kind {
                    Kind::Posix => Some(PathBuf::from(format!(
                        "/dev/shm{}",
                        posix_name(&self.tag, o)
                    ))),
                    Kind::Tmpfs => Some(env.tmpfs.join(format!("o-{}-{o}", self.tag))),
                    Kind::TmpfsHuge => Some(env.tmpfs_huge.join(format!("o-{}-{o}", self.tag))),
                    Kind::HugetlbfsFile => Some(
                        env.hugetlbfs
                            .as_ref()
                            .ok_or("no hugetlbfs mount")?
                            .join(format!("o-{}-{o}", self.tag)),
                    ),
                    _ => None,
                };
                // Named in the creator's namespace when it has its own (SysV: IPC; POSIX shm:
                // mount, for its private /dev/shm).
                let ns = match (self.actors[a].ns, kind) {
                    (Some((ipc, _)), k) if k.sysv() => Some(ipc),
                    (Some((_, mnt)), Kind::Posix) => Some(mnt),
                    _ => None,
                };
                // Recorded before the call, so the guard cleans up even if it fails half-way.
                self.idents.push(Ident {
                    dev: 0,
                    ino: 0,
                    shmid: None,
                    path: path.clone(),
                    ns,
                });
                let n = pages * unit(kind);
                let cmd = match kind {
                    Kind::Anon => format!("anon {o} {n}"),
                    Kind::AnonHuge => format!("anon {o} {n} h"),
                    Kind::Sysv => format!("sysv {o} {n}"),
                    Kind::SysvHuge => format!("sysv {o} {n} h"),
                    Kind::Memfd => format!("memfd {o} {n} {}", u8::from(sealable)),
                    Kind::MemfdHuge => format!("memfd {o} {n} 0 h"),
                    Kind::Posix => format!("posix {o} {n} {}", posix_name(&self.tag, o)),
                    Kind::Tmpfs | Kind::TmpfsHuge | Kind::HugetlbfsFile => {
                        format!("tmpfs {o} {n} {}", path.as_ref().unwrap().display())
                    }
                };
                let Some(v) = self.ok(a, &cmd)? else {
                    // Only a hugetlb creation is skipped (the pool is short): nothing was made.
                    if !kind.hugetlb() {
                        return Err("create skipped".into());
                    }
                    self.idents.pop();
                    return Ok(false);
                };
                if kind.sysv() {
                    let id: i32 = v.parse().map_err(|_| format!("shmid {v:?}"))?;
                    self.idents[o].shmid = Some(id);
                    self.idents[o].ino = id as u64;
                } else {
                    let t = self.ok(a, &format!("truth {o}"))?.unwrap_or_default();
                    let f: Vec<u64> = t.split(' ').filter_map(|x| x.parse().ok()).collect();
                    if f.len() < 2 {
                        return Err(format!("truth {o}: {t:?}"));
                    }
                    (self.idents[o].dev, self.idents[o].ino) = (f[0], f[1]);
                }
                Ok(true)
            }
            Write { a, o, first, n } => {
                let via = if self.model.write_fd(a, o) {
                    "fd"
                } else {
                    "map"
                };
                let k = unit(self.model.objs[o].kind);
                done(self.ok(a, &format!("write {o} {} {} {via}", first * k, n * k))?)
            }
            Map { a, o } => {
                let kind = self.model.objs[o].kind;
                let pages = self.model.objs[o].pages * unit(kind);
                let cmd = if kind.sysv() {
                    format!("map {o} {pages} {}", shmid(self, o))
                } else if kind.hugetlb() {
                    format!("map {o} {pages} h")
                } else {
                    format!("map {o} {pages}")
                };
                done(self.ok(a, &cmd)?)
            }
            MapPrivate { a, o } => {
                done(self.ok(a, &format!("mapp {o} {}", self.model.objs[o].pages))?)
            }
            Falloc { a, o, first, n } => done(self.ok(a, &format!("falloc {o} {first} {n}"))?),
            Punch { a, o, first, n } => done(self.ok(a, &format!("punch {o} {first} {n}"))?),
            Truncate { a, o, pages } => done(self.ok(a, &format!("trunc {o} {pages}"))?),
            Seal { a, o } => done(self.ok(a, &format!("seal {o}"))?),
            MadvRemove { a, o } => done(self.ok(a, &format!("madvrm {o}"))?),
            Pageout { a, o } => done(self.ok(a, &format!("pageout {o}"))?),
            Mremap { a, o } => {
                let len = self.model.actors[a]
                    .maps
                    .iter()
                    .find(|m| m.0 == o && m.1)
                    .unwrap()
                    .2;
                done(self.ok(a, &format!("mremap {o} {}", len.div_ceil(2)))?)
            }
            Unmap { a, o } => done(self.ok(a, &format!("unmap {o}"))?),
            Close { a, o } => done(self.ok(a, &format!("close {o}"))?),
            Dup { a, o } => done(self.ok(a, &format!("dup {o}"))?),
            MapFd { a, o } => done(self.ok(a, &format!("mapfd {o}"))?),
            Rmid { a, o } => done(self.ok(a, &format!("rmid {o} {}", shmid(self, o)))?),
            Unlink { a, o } => {
                let p = self.idents[o].path.clone().unwrap();
                done(self.ok(a, &format!("unlink {o} {}", p.display()))?)
            }
            Send { a, to, o } => {
                let conn = self.actors[a].conn.as_mut().unwrap();
                writeln!(conn.writer, "send {o}").map_err(|e| e.to_string())?;
                if !conn.reader.buffer().is_empty() {
                    return Err("unread reply before an fd transfer".into());
                }
                let fd = actor::recv_fd(conn.writer.as_raw_fd(), true)
                    .ok_or("no fd received from the sender")?;
                let fd = actor::owned(fd);
                if self.ask(to, &format!("recv {o}"))? != "ready" {
                    return Err("receiver not ready".into());
                }
                let conn = self.actors[to].conn.as_mut().unwrap();
                actor::send_fd(conn.writer.as_raw_fd(), fd.as_raw_fd());
                drop(fd);
                let mut line = String::new();
                conn.reader
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                if line.trim() != "ok" {
                    return Err(format!("recv: {line}"));
                }
                Ok(true)
            }
            Fork { a } => {
                let v = self.ok(a, "fork")?.ok_or("fork skipped")?;
                let pid: i32 = v.parse().map_err(|_| format!("fork pid {v:?}"))?;
                let (hello, conn) = self.accept()?;
                if hello != pid {
                    return Err(format!("fork: child said {hello}, parent {pid}"));
                }
                let ns = self.actors[a].ns;
                self.actors.push(RActor {
                    pid,
                    conn: Some(conn),
                    ns,
                });
                Ok(true)
            }
            Exit { a } => {
                self.ok(a, "exit")?;
                self.actors[a].conn = None;
                self.wait_gone(a)?;
                Ok(true)
            }
            Exec { a } => {
                self.ok(a, "exec")?;
                let (pid, conn) = self.accept()?;
                if pid != self.actors[a].pid {
                    return Err(format!(
                        "exec: {pid} said hello, expected {}",
                        self.actors[a].pid
                    ));
                }
                self.actors[a].conn = Some(conn);
                Ok(true)
            }
            LeaderExit { a } => done(self.ok(a, "leader_exit")?),
        }
    }

    /// Waits until an exited actor holds nothing (reaped, or a zombie: no mm, no files).
    fn wait_gone(&mut self, a: usize) -> Result<(), String> {
        let pid = self.actors[a].pid;
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(c) = self.spawned.iter_mut().find(|c| c.id() as i32 == pid) {
            while c.try_wait().map_err(|e| e.to_string())?.is_none() {
                if Instant::now() > deadline {
                    return Err(format!("actor {pid} did not exit within 10 s"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while Instant::now() < deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
            let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
            if stat.is_empty() || (zombie && threads <= 1) {
                self.actors[a].pid = -pid; // not ours to signal any more
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(format!("actor {pid} did not exit"))
    }
}
