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
/// results keep the items' order ([`Queue::results`]).
pub(crate) struct Queue<T, R> {
    chunks: std::sync::Mutex<std::iter::Enumerate<std::vec::IntoIter<Vec<T>>>>,
    done: std::sync::Mutex<Vec<(usize, Vec<R>)>>,
    count: usize,
}

impl<T: Send, R: Send> Queue<T, R> {
    pub(crate) fn new(items: Vec<T>, chunk: usize) -> Self {
        let mut chunks = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            chunks.push(items.by_ref().take(chunk.max(1)).collect::<Vec<T>>());
        }
        Queue {
            count: chunks.len(),
            chunks: std::sync::Mutex::new(chunks.into_iter().enumerate()),
            done: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Applies `f` to chunks until none is left, with a [`Reader`] of this thread's.
    pub(crate) fn help(&self, f: &(impl Fn(&mut Reader, Vec<T>) -> Vec<R> + Sync)) {
        let mut reader = Reader::new();
        loop {
            let next = self.chunks.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some((i, chunk)) = next else { return };
            let out = f(&mut reader, chunk);
            self.done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, out));
        }
    }

    /// Every chunk's results, in the items' order, once every [`Queue::help`] returned.
    pub(crate) fn results(self) -> Vec<R> {
        let mut done = self.done.into_inner().unwrap_or_else(|e| e.into_inner());
        assert_eq!(done.len(), self.count, "a scan thread panicked");
        done.sort_unstable_by_key(|(i, _)| *i);
        done.into_iter().flat_map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_keeps_the_order_whoever_helps() {
        let q = Queue::new((0..1000).collect::<Vec<u32>>(), 7);
        let f = |_: &mut Reader, c: Vec<u32>| c.into_iter().map(|x| x * 2).collect::<Vec<_>>();
        std::thread::scope(|s| {
            let late = s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                q.help(&f)
            });
            q.help(&f);
            late.join().unwrap();
        });
        assert_eq!(q.results(), (0..1000).map(|x| x * 2).collect::<Vec<_>>());
        let empty: Queue<u32, u32> = Queue::new(Vec::new(), 64);
        empty.help(&|_, c| c);
        assert!(empty.results().is_empty());
    }
}
