//! Spreading per-process reads over a few threads.

use super::read::Reader;

/// The CPUs this process may use, asked once: each `available_parallelism` reads the cgroup's
/// CPU quota through `/proc/self/cgroup` and `mountinfo` (0.65% of `shmwho procs --json`'s CPU
/// on the 300-worker pool of `bench/ratios.sh`, `perf`).
pub(crate) fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Applies `f` to every item on up to 4 threads (one per CPU), keeping the order. Each thread
/// has its own [`Reader`]. Fewer than `min_items` items stay on the calling thread.
pub(crate) fn parallel_map<T: Send, R: Send>(
    items: Vec<T>,
    min_items: usize,
    f: impl Fn(&mut Reader, T) -> R + Sync,
) -> Vec<R> {
    let threads = cpus().min(4).min(items.len());
    if threads <= 1 || items.len() < min_items {
        let mut reader = Reader::new();
        return items.into_iter().map(|t| f(&mut reader, t)).collect();
    }
    // Interleaved chunks: neighbouring pids (a pool's workers) are spread over all threads.
    let mut chunks: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, t) in items.into_iter().enumerate() {
        chunks[i % threads].push((i, t));
    }
    let f = &f;
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut reader = Reader::new();
                    chunk
                        .into_iter()
                        .map(|(i, t)| (i, f(&mut reader, t)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("scan thread panicked"))
            .collect()
    });
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Like [`parallel_map`], but `f` takes each thread's share of the items at once (interleaved,
/// in order) and returns one result for each.
pub(crate) fn parallel_chunks<T: Send, R: Send>(
    items: Vec<T>,
    min_items: usize,
    f: impl Fn(&mut Reader, Vec<T>) -> Vec<R> + Sync,
) -> Vec<R> {
    let threads = cpus().min(4).min(items.len());
    if threads <= 1 || items.len() < min_items {
        return f(&mut Reader::new(), items);
    }
    let n = items.len();
    let mut chunks: Vec<Vec<T>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, t) in items.into_iter().enumerate() {
        chunks[i % threads].push(t);
    }
    let f = &f;
    let results: Vec<Vec<R>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || f(&mut Reader::new(), chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("scan thread panicked"))
            .collect()
    });
    // Item i is result i / threads of chunk i % threads.
    let mut iters: Vec<_> = results.into_iter().map(Vec::into_iter).collect();
    (0..n)
        .map(|i| iters[i % threads].next().expect("one result per item"))
        .collect()
}

/// Items in chunks that threads take one at a time ([`Queue::help`]), so that a thread busy
/// elsewhere at first (the BPF iteration) helps with what is left when it is free; the
/// results keep the items' order ([`Queue::results`]). Items may be fed while threads help
/// ([`Queue::feed`]): a helper that finds no chunk waits for the next one, or for the end
/// ([`Queue::close`]).
pub(crate) struct Queue<T, R> {
    pending: std::sync::Mutex<Pending<T>>,
    ready: std::sync::Condvar,
    done: std::sync::Mutex<Vec<(usize, Vec<R>)>>,
    chunk: usize,
}

/// What a [`Queue`] has been fed and no helper took yet.
struct Pending<T> {
    /// Full chunks, with their index, oldest first.
    chunks: std::collections::VecDeque<(usize, Vec<T>)>,
    /// Items of the chunk being filled.
    filling: Vec<T>,
    /// Chunks made so far.
    made: usize,
    closed: bool,
}

impl<T> Pending<T> {
    /// Hands the chunk being filled over to the helpers.
    fn seal(&mut self) {
        let chunk = std::mem::take(&mut self.filling);
        self.chunks.push_back((self.made, chunk));
        self.made += 1;
    }
}

impl<T: Send, R: Send> Queue<T, R> {
    /// An empty queue, cut into chunks of `chunk` items.
    pub(crate) fn new(chunk: usize) -> Self {
        Queue {
            pending: std::sync::Mutex::new(Pending {
                chunks: std::collections::VecDeque::new(),
                filling: Vec::new(),
                made: 0,
                closed: false,
            }),
            ready: std::sync::Condvar::new(),
            done: std::sync::Mutex::new(Vec::new()),
            chunk: chunk.max(1),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending<T>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item; a chunk is handed to the helpers when it is full.
    pub(crate) fn feed(&self, item: T) {
        let mut p = self.pending();
        p.filling.push(item);
        if p.filling.len() >= self.chunk {
            p.seal();
            drop(p);
            self.ready.notify_one();
        }
    }

    /// No more items: the last chunk is handed over, and helpers return once none is left.
    pub(crate) fn close(&self) {
        let mut p = self.pending();
        if !p.filling.is_empty() {
            p.seal();
        }
        p.closed = true;
        drop(p);
        self.ready.notify_all();
    }

    /// A guard that [`Queue::close`]s the queue when dropped, even by a panic of its feeder
    /// (the helpers would wait for ever).
    pub(crate) fn closing(&self) -> impl Drop + '_ {
        struct Closing<'q, T: Send, R: Send>(&'q Queue<T, R>);
        impl<T: Send, R: Send> Drop for Closing<'_, T, R> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        Closing(self)
    }

    /// Applies `f` to chunks, with a [`Reader`] of this thread's, until the queue is closed
    /// and none is left.
    pub(crate) fn help(&self, f: &(impl Fn(&mut Reader, Vec<T>) -> Vec<R> + Sync)) {
        let mut reader = Reader::new();
        loop {
            let next = {
                let mut p = self.pending();
                loop {
                    if let Some(next) = p.chunks.pop_front() {
                        break Some(next);
                    }
                    if p.closed {
                        break None;
                    }
                    p = self.ready.wait(p).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some((i, chunk)) = next else { return };
            let out = f(&mut reader, chunk);
            self.done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, out));
        }
    }

    /// Every chunk's results, in the items' order, once the queue is closed and every
    /// [`Queue::help`] returned.
    pub(crate) fn results(self) -> Vec<R> {
        let made = self.pending().made;
        let mut done = self.done.into_inner().unwrap_or_else(|e| e.into_inner());
        assert_eq!(done.len(), made, "a scan thread panicked");
        done.sort_unstable_by_key(|(i, _)| *i);
        done.into_iter().flat_map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_keeps_the_order_whoever_helps() {
        let q = Queue::new(7);
        let f = |_: &mut Reader, c: Vec<u32>| c.into_iter().map(|x| x * 2).collect::<Vec<_>>();
        std::thread::scope(|s| {
            // Two helpers wait for chunks while the items are fed, one joins late.
            let early = s.spawn(|| q.help(&f));
            let late = s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                q.help(&f)
            });
            {
                let _closing = q.closing();
                for x in 0..1000 {
                    q.feed(x);
                }
            }
            q.help(&f);
            early.join().unwrap();
            late.join().unwrap();
        });
        assert_eq!(q.results(), (0..1000).map(|x| x * 2).collect::<Vec<_>>());
        let empty: Queue<u32, u32> = Queue::new(64);
        empty.close();
        empty.help(&|_, c| c);
        assert!(empty.results().is_empty());
    }

    #[test]
    fn a_feeder_that_panics_still_closes_the_queue() {
        let q: Queue<u32, u32> = Queue::new(4);
        std::thread::scope(|s| {
            let helper = s.spawn(|| q.help(&|_, c| c));
            let feeder = s.spawn(|| {
                let _closing = q.closing();
                q.feed(1);
                panic!("feeder gone");
            });
            assert!(feeder.join().is_err());
            helper.join().unwrap();
        });
        assert_eq!(q.results(), vec![1]);
    }
}
