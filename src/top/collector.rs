//! The collector thread: scans every interval and sends each snapshot to the UI, as bottom's
//! harvester does. The UI never waits for a scan, and never reads `/proc` itself.

use crate::collect::Options;
use crate::model::Snapshot;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

/// One scan.
pub struct Sample {
    /// What the scan saw.
    pub snapshot: Snapshot,
    /// How long the scan took.
    pub scan: Duration,
}

/// What the collector thread sends.
pub enum Msg {
    /// A scan.
    Sample(Box<Sample>),
    /// A scan failed (the error, with its context, in one line).
    Failed(String),
}

enum Control {
    /// Read smaps from now on (charge policy `touched`) or stop reading it; scans at once.
    Smaps(bool),
    /// Scan at once.
    Now,
}

/// The collector thread.
pub struct Collector {
    control: Sender<Control>,
    /// Scans and failures, in order.
    pub samples: Receiver<Msg>,
}

impl Collector {
    /// Starts the thread; its first scan begins at once. The thread ends when the
    /// `Collector` is dropped (at the latest when its current scan ends).
    pub fn spawn(opts: Options, interval: Duration) -> std::io::Result<Collector> {
        let (control, control_rx) = mpsc::channel();
        // Two samples in flight at most: a UI that stops reading cannot make it pile up scans.
        let (tx, samples) = mpsc::sync_channel(2);
        thread::Builder::new()
            .name("shmwho-collector".into())
            .spawn(move || run(opts, interval, control_rx, tx))?;
        Ok(Collector { control, samples })
    }

    /// Start or stop reading smaps, and scan at once.
    pub fn set_smaps(&self, smaps: bool) {
        let _ = self.control.send(Control::Smaps(smaps));
    }

    /// Scan at once.
    pub fn scan_now(&self) {
        let _ = self.control.send(Control::Now);
    }
}

fn run(mut opts: Options, interval: Duration, control: Receiver<Control>, tx: SyncSender<Msg>) {
    let mut next = Instant::now();
    loop {
        // Wait for the next scan, or for a request that brings it forward.
        let now = Instant::now();
        if now < next {
            match control.recv_timeout(next - now) {
                Ok(Control::Smaps(s)) => opts.smaps = s,
                Ok(Control::Now) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // Requests that arrived during the last scan.
        while let Ok(c) = control.try_recv() {
            if let Control::Smaps(s) = c {
                opts.smaps = s;
            }
        }
        let start = Instant::now();
        // Capabilities are per thread: only this one raises them, only while scanning; the
        // view draws from a snapshot already redacted for the caller.
        let msg = match crate::privilege::scan(&opts) {
            Ok(snapshot) => Msg::Sample(Box::new(Sample {
                snapshot,
                scan: start.elapsed(),
            })),
            Err(e) => Msg::Failed(format!("{e:#}")),
        };
        let scan = start.elapsed();
        if tx.send(msg).is_err() {
            return;
        }
        // A scan slower than the interval (smaps on a big host) still leaves the CPU idle at
        // least half the time.
        next = start + interval.max(scan * 2);
    }
}
