//! Deadlines for the reads of a process that take its mmap_lock.
//!
//! A process can hold its own mmap_lock indefinitely (a thread faulting on a FUSE file whose
//! read never answers, while another thread's `mmap()` queues for the write lock); from then on
//! every reader of its `smaps`, `smaps_rollup`, `pagemap`, `map_files` (and, on kernels that
//! read `maps` under the lock, `maps`) sleeps with it. Such reads run here on a worker thread
//! and are waited for up to [`timeout`]. Past it the process is named stuck, the worker is
//! abandoned where it sleeps (the kernel wakes it when the lock is released, or kills it when
//! shmwho exits: the sleeps are killable), and the scan goes on without that process.
//!
//! Bounds: one abandoned worker per stuck process (a process is not read again while its
//! abandoned worker still sleeps, so an exporter retries a process only once it is unstuck),
//! and at most [`MAX_ABANDONED`] in all (beyond, further reads that need the lock are skipped
//! and their processes reported stuck too, until a worker comes back).

use crate::model::Pid;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Abandoned workers alive at once, at most.
pub const MAX_ABANDONED: usize = 8;

/// The default deadline of one read.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

static TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_TIMEOUT.as_millis() as u64);
static ABANDONED: AtomicUsize = AtomicUsize::new(0);
static STUCK: Mutex<BTreeMap<Pid, Entry>> = Mutex::new(BTreeMap::new());

/// Sets the deadline of every later read (`--timeout`).
pub fn set_timeout(d: Duration) {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// The deadline of one read.
pub fn timeout() -> Duration {
    Duration::from_millis(TIMEOUT_MS.load(Ordering::Relaxed))
}

/// A process known stuck.
struct Entry {
    /// The file that did not answer, relative to `/proc/PID` (`maps`, `map_files`, ...).
    file: &'static str,
    /// The abandoned worker's "came back" flag; `None` when the read was not even tried
    /// because [`MAX_ABANDONED`] workers were already abandoned.
    back: Option<Arc<AtomicBool>>,
}

impl Entry {
    fn still_stuck(&self) -> bool {
        match &self.back {
            Some(back) => !back.load(Ordering::Acquire),
            None => ABANDONED.load(Ordering::Acquire) >= MAX_ABANDONED,
        }
    }
}

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<Pid, Entry>> {
    STUCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `pid` is known stuck (and so is not to be read again now). A process whose
/// abandoned worker came back is forgotten here, to be read again.
pub fn is_stuck(pid: Pid) -> bool {
    let mut reg = registry();
    match reg.get(&pid) {
        Some(e) if e.still_stuck() => true,
        Some(_) => {
            reg.remove(&pid);
            false
        }
        None => false,
    }
}

/// The processes stuck now, with the file that did not answer, by pid.
pub fn stuck_now() -> Vec<(Pid, &'static str)> {
    let mut reg = registry();
    reg.retain(|_, e| e.still_stuck());
    reg.iter().map(|(&pid, e)| (pid, e.file)).collect()
}

fn mark(pid: Pid, file: &'static str, back: Option<Arc<AtomicBool>>) {
    registry().entry(pid).or_insert(Entry { file, back });
}

type Job = Box<dyn FnOnce() + Send>;

/// One thread's worker: runs jobs in order.
struct Worker {
    jobs: mpsc::Sender<Job>,
    back: Arc<AtomicBool>,
    abandoned: Arc<AtomicBool>,
}

impl Worker {
    fn spawn() -> Option<Worker> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let back = Arc::new(AtomicBool::new(false));
        let abandoned = Arc::new(AtomicBool::new(false));
        let (b, a) = (back.clone(), abandoned.clone());
        std::thread::Builder::new()
            .name("shmwho-read".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
                if a.load(Ordering::Acquire) {
                    ABANDONED.fetch_sub(1, Ordering::AcqRel);
                }
                b.store(true, Ordering::Release);
            })
            .ok()?;
        Some(Worker {
            jobs,
            back,
            abandoned,
        })
    }
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// Runs `f` (a read of `/proc/PID/file` that can take `pid`'s mmap_lock) under the deadline.
/// `None` when `pid` is stuck: known already (then `f` is not run), or `f` did not return in
/// time (then `pid` is recorded stuck in `file`).
pub(crate) fn call<T: Send + 'static>(
    pid: Pid,
    file: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if is_stuck(pid) {
        return None;
    }
    WORKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            if ABANDONED.load(Ordering::Acquire) >= MAX_ABANDONED {
                mark(pid, file, None);
                return None;
            }
            *slot = Worker::spawn();
        }
        let Some(worker) = slot.as_ref() else {
            // No thread to be had (resource limits): read here, unbounded, rather than not at all.
            return Some(f());
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        if worker.jobs.send(job).is_err() {
            *slot = None;
            return None;
        }
        match rx.recv_timeout(timeout()) {
            Ok(v) => Some(v),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let worker = slot.take().expect("checked above");
                ABANDONED.fetch_add(1, Ordering::AcqRel);
                worker.abandoned.store(true, Ordering::Release);
                mark(pid, file, Some(worker.back.clone()));
                // Dropping `jobs` lets the worker end once its read returns.
                None
            }
            // The job panicked: the worker is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                *slot = None;
                None
            }
        }
    })
}

/// The state of a [`call_each`] batch, shared with the worker running it.
struct Batch<T, R> {
    /// Items not started yet: (index, pid, item).
    todo: VecDeque<(usize, Pid, T)>,
    /// Results of the items done: (index, result).
    done: Vec<(usize, R)>,
    /// The item running and when it started.
    current: Option<(Pid, Instant)>,
    /// Set when the worker is abandoned: it is to stop.
    abandoned: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`call`] for many items in one job: `f` runs on the worker for each item in turn, each under
/// its own deadline (an item that has not returned [`timeout`] after it started marks its pid
/// stuck in `file`; the worker is abandoned as in [`call`] and the items after it go on in a
/// new one). One hand-over for all the items instead of one each: a hand-over costs two
/// context switches and two futex calls. `None` for an item whose pid is stuck.
pub(crate) fn call_each<T: Send + 'static, R: Send + 'static>(
    items: Vec<(Pid, T)>,
    file: &'static str,
    f: impl Fn(T) -> R + Send + Sync + 'static,
) -> Vec<Option<R>> {
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let f = Arc::new(f);
    let mut todo: VecDeque<(usize, Pid, T)> = items
        .into_iter()
        .enumerate()
        .filter(|(_, (pid, _))| !is_stuck(*pid))
        .map(|(i, (pid, t))| (i, pid, t))
        .collect();
    WORKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        while !todo.is_empty() {
            if slot.is_none() {
                if ABANDONED.load(Ordering::Acquire) >= MAX_ABANDONED {
                    for (_, pid, _) in todo.drain(..) {
                        mark(pid, file, None);
                    }
                    break;
                }
                *slot = Worker::spawn();
            }
            let Some(worker) = slot.as_ref() else {
                // No thread to be had: run here, unbounded, rather than not at all.
                for (i, _, t) in todo.drain(..) {
                    out[i] = Some(f(t));
                }
                break;
            };
            let batch = Arc::new(Mutex::new(Batch {
                todo: std::mem::take(&mut todo),
                done: Vec::new(),
                current: None,
                abandoned: false,
            }));
            let (tx, rx) = mpsc::sync_channel(1);
            let (b, f2) = (batch.clone(), f.clone());
            let job: Job = Box::new(move || loop {
                let (i, t) = {
                    let mut s = lock(&b);
                    match s.todo.pop_front() {
                        Some((i, pid, t)) if !s.abandoned => {
                            s.current = Some((pid, Instant::now()));
                            (i, t)
                        }
                        _ => break,
                    }
                };
                let r = f2(t);
                let mut s = lock(&b);
                if s.abandoned {
                    break;
                }
                s.done.push((i, r));
                s.current = None;
                if s.todo.is_empty() {
                    let _ = tx.send(());
                    break;
                }
            });
            if worker.jobs.send(job).is_err() {
                *slot = None;
                todo = std::mem::take(&mut lock(&batch).todo);
                continue;
            }
            loop {
                let wait = match lock(&batch).current {
                    Some((_, started)) => timeout().saturating_sub(started.elapsed()),
                    None => timeout(),
                };
                match rx.recv_timeout(wait) {
                    Ok(()) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let mut s = lock(&batch);
                        let Some((pid, started)) = s.current else {
                            continue; // between items
                        };
                        if started.elapsed() < timeout() {
                            continue;
                        }
                        s.abandoned = true;
                        todo = std::mem::take(&mut s.todo);
                        drop(s);
                        let worker = slot.take().expect("checked above");
                        ABANDONED.fetch_add(1, Ordering::AcqRel);
                        worker.abandoned.store(true, Ordering::Release);
                        mark(pid, file, Some(worker.back.clone()));
                        break;
                    }
                    // The job panicked: the worker is gone, and the items it had left.
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        *slot = None;
                        break;
                    }
                }
            }
            for (i, r) in std::mem::take(&mut lock(&batch).done) {
                out[i] = Some(r);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pids far beyond pid_max, so no real process is confused with them.
    #[test]
    fn a_read_past_the_deadline_marks_the_process_and_is_not_retried() {
        let pid = 1 << 30;
        assert_eq!(call(pid, "maps", || 7), Some(7));
        let (release, wait) = mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let r = call(pid, "smaps", move || {
            let _ = wait.recv();
        });
        assert_eq!(r, None);
        assert!(started.elapsed() < timeout() + Duration::from_secs(1));
        assert!(stuck_now().contains(&(pid, "smaps")));
        assert!(is_stuck(pid));
        // Not retried: the job is not run at all.
        assert_eq!(
            call(pid, "maps", || panic!("retried a stuck process")),
            None
        );
        // Another process is read on a fresh worker meanwhile.
        assert_eq!(call(pid + 1, "maps", || 8), Some(8));
        // Unstuck: forgotten once the abandoned worker comes back, then read again.
        release.send(()).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while is_stuck(pid) {
            assert!(std::time::Instant::now() < until, "worker never came back");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(call(pid, "maps", || 9), Some(9));
    }

    #[test]
    fn a_batch_goes_on_past_a_stuck_item() {
        let (a, b, c) = ((1 << 30) + 10, (1 << 30) + 11, (1 << 30) + 12);
        let (release, wait) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        let started = std::time::Instant::now();
        let out = call_each(vec![(a, 1), (b, 2), (c, 3)], "cmdline", move |x| {
            if x == 2 {
                let _ = lock(&wait).recv();
            }
            x * 10
        });
        assert_eq!(out, vec![Some(10), None, Some(30)]);
        assert!(started.elapsed() < timeout() + Duration::from_secs(1));
        assert!(stuck_now().contains(&(b, "cmdline")));
        assert_eq!(call_each(vec![(b, 2)], "cmdline", |x| x), vec![None]);
        release.send(()).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while is_stuck(b) {
            assert!(std::time::Instant::now() < until, "worker never came back");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
