//! `shmwho top`: a live full-screen view of objects and processes.
//!
//! Shaped like bottom/below: a collector thread scans every `--interval` and sends snapshots over
//! a channel ([`collector`]); the UI thread charges the last one under the chosen policy and
//! derives the rows with their changes ([`rows`]), keeps the view state ([`app`]), and draws it
//! ([`ui::draw`], a pure function of the state, tested on ratatui's `TestBackend`).
//!
//! The terminal is restored on every way out: `q`, errors (a guard), panics (a hook) and
//! SIGTERM/SIGHUP/SIGINT/SIGQUIT (a flag the loop polls).

pub mod app;
pub mod collector;
pub mod detail;
pub mod pane;
pub mod rows;
pub mod ui;

use crate::account::Policy;
use crate::collect::Options;
use anyhow::{bail, Context as _};
use app::{Action, App};
use collector::{Collector, Msg};
use crossterm::event::{self, Event, KeyEventKind};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::fs::File;
use std::io::{BufWriter, IsTerminal as _, Write as _};
use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Once};
use std::time::Duration;

/// What `shmwho top` starts with.
#[derive(Clone, Debug)]
pub struct TopOptions {
    /// Time between scans.
    pub interval: Duration,
    /// Charging policy to start with.
    pub charge: Policy,
    /// Filter to start with.
    pub filter: Option<String>,
    /// Where procfs and the host's files are.
    pub paths: crate::collect::HostPaths,
}

/// Runs the live view until `q` or a signal.
pub fn run(args: TopOptions, _out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("top is a full-screen view and needs a terminal on stdout; for text use `shmwho` or `shmwho procs`");
    }
    crate::privilege::check_paths(&args.paths)?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = App::new(args.charge, args.interval, color);
    if let Some(f) = args.filter {
        app.filter = f;
    }
    let collector = Collector::spawn(
        Options {
            paths: args.paths,
            smaps: args.charge.needs_smaps(),
            cgroups: false,
            bpf: true,
            repeated: true,
            counters: true,
            titles: true,
            pss_totals_only: false,
        },
        args.interval,
    )
    .context("cannot start the collector thread")?;

    let stop = Arc::new(AtomicBool::new(false));
    // SIGTERM, SIGHUP, SIGINT and SIGQUIT stop the loop, so the terminal is restored first.
    let _signals =
        crate::signals::StopFlag::register_on(Arc::clone(&stop), &crate::signals::TERMINAL)?;
    // Dropped on every way out of this function: the terminal is restored before the error
    // (if any) is printed.
    let mut tui = Tui::enter()?;
    let input = spawn_input()?;
    let mut dirty = true;
    while !stop.load(Ordering::Relaxed) {
        loop {
            match collector.samples.try_recv() {
                Ok(Msg::Sample(s)) => {
                    app.on_snapshot(s.snapshot, s.scan);
                    dirty = true;
                }
                Ok(Msg::Failed(e)) if app.model.is_none() => bail!("{e}"),
                Ok(Msg::Failed(e)) => {
                    app.on_scan_failed(e);
                    dirty = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => bail!("the collector thread stopped"),
            }
        }
        if dirty {
            if let Err(e) = tui.draw(&app) {
                // The terminal hung up (SIGHUP is on its way or here): nobody is left to tell.
                if stop.load(Ordering::Relaxed) || e.raw_os_error() == Some(libc::EIO) {
                    return Ok(());
                }
                return Err(anyhow::Error::new(e).context("cannot draw on the terminal"));
            }
            dirty = false;
        }
        // Short enough to notice a signal or a new scan promptly, long enough to idle.
        let mut next = match input.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => bail!("the terminal input thread stopped"),
        };
        // Every key already typed, then one redraw.
        while let Some(ev) = next {
            match ev {
                Input::Failed(e) => bail!("cannot read from the terminal: {e}"),
                Input::Event(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                    dirty = true;
                    match app.on_key(k) {
                        Action::None => {}
                        Action::Quit => return Ok(()),
                        Action::Smaps(on) => collector.set_smaps(on),
                        Action::Rescan => collector.scan_now(),
                    }
                }
                Input::Event(Event::Resize(..)) => dirty = true,
                Input::Event(_) => {}
            }
            next = input.try_recv().ok();
        }
    }
    Ok(())
}

enum Input {
    Event(Event),
    Failed(String),
}

/// Reads terminal events on a thread of its own. crossterm's `read` spins on a terminal that
/// hung up (read() returning 0 forever, crossterm 0.29): on its own thread that cannot keep the
/// UI loop from seeing the SIGHUP flag and exiting.
fn spawn_input() -> anyhow::Result<Receiver<Input>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("shmwho-input".into())
        .spawn(move || loop {
            let msg = match event::read() {
                Ok(ev) => Input::Event(ev),
                Err(e) => Input::Failed(e.to_string()),
            };
            let failed = matches!(msg, Input::Failed(_));
            if tx.send(msg).is_err() || failed {
                return;
            }
        })
        .context("cannot start the input thread")?;
    Ok(rx)
}

/// The terminal is in raw mode on the alternate screen.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Leaves raw mode and the alternate screen, once. Writes through its own dup of fd 1, never
/// through `std::io::stdout()`: the caller holds stdout's lock for the whole run, so a panic
/// hook running on the collector thread would wait for it forever.
fn restore_terminal() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = crossterm::terminal::disable_raw_mode();
    if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
        let mut f = File::from(fd);
        let _ = crossterm::execute!(
            f,
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

struct Tui {
    /// Always Some until dropped.
    terminal: Option<Terminal<CrosstermBackend<BufWriter<File>>>>,
}

impl Tui {
    fn enter() -> anyhow::Result<Tui> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let prev = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_terminal();
                prev(info);
            }));
        });
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot duplicate stdout")?;
        let mut w = BufWriter::new(File::from(fd));
        crossterm::terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on, an early return restores the terminal through this guard.
        let guard = RestoreOnDrop;
        crossterm::execute!(
            w,
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        )
        .context("cannot switch to the alternate screen")?;
        let terminal =
            Terminal::new(CrosstermBackend::new(w)).context("cannot set up the terminal")?;
        std::mem::forget(guard);
        Ok(Tui {
            terminal: Some(terminal),
        })
    }
}

struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        restore_terminal();
    }
}

impl Tui {
    fn draw(&mut self, app: &App) -> std::io::Result<()> {
        if let Some(t) = &mut self.terminal {
            t.draw(|f| ui::draw(f, app))?;
        }
        Ok(())
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let Some(mut t) = self.terminal.take() else {
            return;
        };
        // Whatever ratatui buffered goes out before the screen switches back.
        let _ = t.backend_mut().flush();
        let alive = t.show_cursor().is_ok();
        restore_terminal();
        if !alive {
            // The terminal hung up: ratatui's own drop would retry showing the cursor and
            // eprintln! the failure to the dead terminal, which panics. The process is exiting.
            std::mem::forget(t);
        }
    }
}

#[cfg(test)]
mod tests;
