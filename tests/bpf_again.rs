//! A process that scans again and again (the exporter, `top`) walks only the mappings that
//! changed (src/collect/bpf/walks.rs): a process whose mappings did not change is not walked,
//! and yet listed with exactly its mappings; one that maps or unmaps is walked again. Its own
//! binary: the programs are loaded once per process, with or without the map this needs.

mod common;

use common::*;
use std::os::fd::{AsRawFd, OwnedFd};

/// A child that maps (`m`: one more page of the memfd, at the next offset) or unmaps (`u`: the
/// last one mapped) when told through a pipe, and answers when done.
struct Mapper {
    pid: libc::pid_t,
    cmd: OwnedFd,
    ack: OwnedFd,
}

impl Mapper {
    fn start(memfd: &Memfd) -> Mapper {
        Mapper::start_after(memfd, None)
    }

    /// [`Mapper::start`], the kernel told first that the last pid it handed out was `last`
    /// (root only), so that the child takes the pid after it if that is free.
    fn start_after(memfd: &Memfd, last: Option<libc::pid_t>) -> Mapper {
        let pipe = || {
            let mut fds = [0; 2];
            // SAFETY: fds has room for the two descriptors pipe2 returns, which we then own.
            unsafe {
                assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe2");
                use std::os::fd::FromRawFd;
                (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
            }
        };
        let (cmd_r, cmd_w) = pipe();
        let (ack_r, ack_w) = pipe();
        let pg = page() as usize;
        let fd = memfd.raw();
        let (cr, aw) = (cmd_r.as_raw_fd(), ack_w.as_raw_fd());
        let _g = lock();
        if let Some(last) = last {
            std::fs::write("/proc/sys/kernel/ns_last_pid", last.to_string())
                .expect("write ns_last_pid");
        }
        // SAFETY: the child makes raw syscalls only, then _exits; the parent owns the pid and
        // reaps it on drop.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: raw syscalls on the child's own fds and mappings.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                let mut maps = [std::ptr::null_mut::<libc::c_void>(); 8];
                let mut n = 0usize;
                loop {
                    let mut c = 0u8;
                    if libc::read(cr, (&mut c as *mut u8).cast(), 1) != 1 {
                        libc::_exit(0);
                    }
                    match c {
                        b'm' if n < maps.len() => {
                            let p = libc::mmap(
                                std::ptr::null_mut(),
                                pg,
                                libc::PROT_READ,
                                libc::MAP_SHARED,
                                fd,
                                (n * pg) as libc::off_t,
                            );
                            if p == libc::MAP_FAILED {
                                libc::_exit(3);
                            }
                            maps[n] = p;
                            n += 1;
                        }
                        b'u' if n > 0 => {
                            n -= 1;
                            libc::munmap(maps[n], pg);
                        }
                        _ => libc::_exit(4),
                    }
                    if libc::write(aw, (&c as *const u8).cast(), 1) != 1 {
                        libc::_exit(5);
                    }
                }
            }
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        Mapper {
            pid,
            cmd: cmd_w,
            ack: ack_r,
        }
    }

    fn tell(&self, c: u8) {
        assert_eq!(
            rustix::io::write(&self.cmd, &[c]).expect("tell the child"),
            1
        );
        let mut got = [0u8];
        assert_eq!(
            rustix::io::read(&self.ack, &mut got).expect("the child answers"),
            1
        );
        assert_eq!(got[0], c);
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        // SAFETY: our own child, killed and reaped once.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A scan of this process, one at a time: each may keep as many directories open as half the
/// descriptor limit allows.
fn scan(opts: &shmwho::collect::Options) -> shmwho::model::Snapshot {
    let _g = lock();
    shmwho::collect::collect(opts).expect("scan")
}

/// One test at a time: both keep state across scans in this process (the walks kept, the
/// directories kept), which another test's scans in between would change.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn unchanged_mappings_are_not_walked_again_and_changes_are_seen() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pg = page();
    let m = Memfd::new(&format!("shmwho bpf again {}", unique()), 8 * pg);
    let (_, ino) = m.identity();
    let kid = Mapper::start(&m);
    kid.tell(b'm');
    // The child's mappings of our memfd (start, offset), and whether its walk was skipped.
    let probe = || {
        let ((_, task), skipped) = shmwho::collect::bpf::probe_again(kid.pid)
            .expect("the task program keeps walks on this kernel");
        let vmas = task
            .expect("the child is listed")
            .4
            .expect("its walk listed all");
        let mine: Vec<(u64, u64)> = vmas
            .iter()
            .filter(|v| v.5 == ino)
            .map(|v| (v.0, v.3))
            .collect();
        (mine, skipped)
    };

    let (first, skipped) = probe();
    assert!(!skipped, "a process never walked is walked");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, 0);
    let (again, skipped) = probe();
    assert!(skipped, "an idle child is not walked again");
    assert_eq!(again, first, "and is listed as its last walk found it");

    kid.tell(b'm');
    let (two, skipped) = probe();
    assert!(!skipped, "a child that mapped is walked again");
    assert_eq!(two.len(), 2);
    assert!(two.contains(&first[0]));
    assert!(two.iter().any(|&(_, off)| off == pg));
    let (again, skipped) = probe();
    assert!(skipped);
    assert_eq!(again, two);

    kid.tell(b'u');
    let (one, skipped) = probe();
    assert!(!skipped, "a child that unmapped is walked again");
    assert_eq!(one, first);

    // A whole scan of a process that scans again and again lists the child as holder the
    // same way a fresh walk does, and counts the walks it reused.
    let opts = shmwho::collect::Options {
        repeated: true,
        ..shmwho::collect::Options::default()
    };
    let holders = |snap: &shmwho::model::Snapshot| -> Vec<shmwho::model::Holder> {
        snap.objects
            .iter()
            .find(|o| matches!(o.id, shmwho::model::ObjectId::Inode { ino: i, .. } if i == ino))
            .map(|o| {
                o.holders
                    .iter()
                    .filter(|h| i64::from(h.pid) == i64::from(kid.pid))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let a = scan(&opts);
    let b = scan(&opts);
    let maps = |h: &[shmwho::model::Holder]| {
        h.iter()
            .filter(|h| matches!(h.via, shmwho::model::Via::Map { .. }))
            .count()
    };
    // Its mapping, and the memfd's fd it inherited.
    assert_eq!(maps(&holders(&a)), 1, "{:?}", holders(&a));
    assert_eq!(holders(&a), holders(&b));
    assert!(
        b.notes.mappings_reused > 0,
        "the second scan reused walks: {}",
        b.notes.mappings_reused
    );
}

#[test]
fn a_pid_taken_by_another_process_between_scans_is_read_as_that_process() {
    if !require_root("loading a BPF iterator and setting ns_last_pid need root") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pg = page();
    let tag = unique();
    let gone = Memfd::new(&format!("shmwho kept gone {tag}"), pg);
    let new = Memfd::new(&format!("shmwho kept new {tag}"), pg);
    let (_, gone_ino) = gone.identity();
    let (_, new_ino) = new.identity();
    // A process that scans again and again keeps the directories of the processes it read
    // (src/collect/mod.rs `keep_dirs`); one of them reaches a process that exits before the
    // next scan, its pid then taken by another.
    let opts = shmwho::collect::Options {
        repeated: true,
        ..shmwho::collect::Options::default()
    };
    let mapped_by = |snap: &shmwho::model::Snapshot, ino: u64, pid: libc::pid_t| -> usize {
        snap.objects
            .iter()
            .filter(|o| matches!(o.id, shmwho::model::ObjectId::Inode { ino: i, .. } if i == ino))
            .flat_map(|o| o.holders.iter())
            .filter(|h| i64::from(h.pid) == i64::from(pid))
            .filter(|h| matches!(h.via, shmwho::model::Via::Map { .. }))
            .count()
    };
    let first = Mapper::start(&gone);
    first.tell(b'm');
    let pid = first.pid;
    let a = scan(&opts);
    assert_eq!(
        mapped_by(&a, gone_ino, pid),
        1,
        "the first child maps its memfd"
    );
    drop(first);
    // The next fork takes the pid after the last one handed out (ns_last_pid); another
    // process of the host may take it first: try again.
    let mut second = None;
    for _ in 0..50 {
        let kid = Mapper::start_after(&new, Some(pid - 1));
        if kid.pid == pid {
            second = Some(kid);
            break;
        }
    }
    let Some(second) = second else {
        panic!("pid {pid} was not taken again in 50 forks");
    };
    second.tell(b'm');
    let b = scan(&opts);
    assert_eq!(
        mapped_by(&b, new_ino, pid),
        1,
        "the process that took pid {pid} is read, with its mapping"
    );
    // (The two may have started in the same clock tick: the rule compares nanoseconds.)
    assert_eq!(mapped_by(&b, gone_ino, pid), 0, "nothing of the one gone");
}

#[test]
fn the_directory_of_a_process_gone_is_closed_by_the_next_scan() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = Memfd::new(&format!("shmwho kept closed {}", unique()), page());
    let opts = shmwho::collect::Options {
        repeated: true,
        ..shmwho::collect::Options::default()
    };
    // Whether one of our descriptors is the directory of `pid`.
    let held = |pid: libc::pid_t| -> bool {
        let want = std::path::PathBuf::from(format!("/proc/{pid}"));
        std::fs::read_dir("/proc/self/fd")
            .expect("our fds")
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == want))
    };
    let kid = Mapper::start(&m);
    kid.tell(b'm');
    let pid = kid.pid;
    scan(&opts);
    assert!(held(pid), "a scan keeps the child's directory for the next");
    drop(kid);
    scan(&opts);
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        skip(&format!("pid {pid} was taken again before the scan"));
        return;
    }
    assert!(!held(pid), "the directory of the child gone is closed");
}
