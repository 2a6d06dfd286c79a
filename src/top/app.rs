//! The live view's state and what each key does to it. No terminal and no `/proc` here: the
//! event loop feeds it snapshots and keys, `ui::draw` renders it.

use super::pane::{self, Sort, OBJECT_SORTS, PROC_SORTS};
use super::rows::Model;
use crate::account::{self, Policy};
use crate::model::{ObjectId, Pid, Snapshot};
use crate::report::{ObjectColumn, ProcColumn};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::cell::Cell;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The two panes.
pub enum Pane {
    /// Shared-memory objects.
    Objects,
    /// Processes.
    Procs,
}

fn cycle<T: Copy + PartialEq>(all: &[T], cur: T, back: bool) -> T {
    let i = all.iter().position(|&x| x == cur).unwrap_or(0);
    let n = all.len();
    all[if back { (i + n - 1) % n } else { (i + 1) % n }]
}

/// What the selection or the detail view is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// An object, by identity.
    Object(ObjectId),
    /// A process.
    Process(Pid),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What is drawn over the panes.
pub enum Overlay {
    /// Nothing.
    None,
    /// The key help.
    Help,
    /// The details of an object or a process.
    Detail(Target),
}

/// What the event loop must do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// Leave the live view.
    Quit,
    /// Start or stop reading smaps (and scan at once).
    Smaps(bool),
    /// Scan at once.
    Rescan,
}

/// Selection and scroll position of one pane.
#[derive(Debug)]
pub struct PaneState<K> {
    /// The selected row by identity, so it stays on its row when rows move.
    pub selected: Option<K>,
    /// Position of the selection among the visible rows, to fall back on when its row goes.
    pub index: usize,
    /// First visible row; the widget moves it to keep the selection visible while drawing.
    pub offset: Cell<usize>,
    /// Rows that fit on screen, learnt while drawing (for PageUp/PageDown).
    pub page: Cell<usize>,
}

impl<K> Default for PaneState<K> {
    fn default() -> Self {
        PaneState {
            selected: None,
            index: 0,
            offset: Cell::new(0),
            page: Cell::new(0),
        }
    }
}

/// The live view's whole state.
pub struct App {
    /// The rows of the last scan, charged under the policy; None before the first scan.
    pub model: Option<Model>,
    /// The last snapshot, kept to charge it again when the policy changes.
    snapshot: Option<Snapshot>,
    /// The model of the scan before `model`: the baseline for changes.
    baseline: Option<Model>,
    /// The policy the user chose; the model may still show the previous one while a scan with
    /// smaps is under way.
    pub policy: Policy,
    /// Time between scans.
    pub interval: Duration,
    /// The pane the keys act on.
    pub focus: Pane,
    /// Sort order of the objects pane.
    pub obj_sort: Sort<ObjectColumn>,
    /// Sort order of the processes pane.
    pub proc_sort: Sort<ProcColumn>,
    /// Applied filter (as typed; matched case-insensitively).
    pub filter: String,
    /// The filter prompt is open.
    pub editing: bool,
    /// Figure columns show their change since the last refresh instead of their value.
    pub show_changes: bool,
    /// What is drawn over the panes.
    pub overlay: Overlay,
    /// Lines scrolled in the detail view.
    pub detail_scroll: u16,
    /// Selection and scroll of the objects pane.
    pub objects: PaneState<ObjectId>,
    /// Selection and scroll of the processes pane.
    pub procs: PaneState<Pid>,
    /// Colours allowed (NO_COLOR unset).
    pub color: bool,
    /// A message for the status line (a failed scan, a scan under way).
    pub status: Option<String>,
    seq: u64,
}

impl App {
    /// A live view under `policy`, before its first scan.
    pub fn new(policy: Policy, interval: Duration, color: bool) -> App {
        App {
            model: None,
            snapshot: None,
            baseline: None,
            policy,
            interval,
            focus: Pane::Objects,
            obj_sort: OBJECT_SORTS[0],
            proc_sort: PROC_SORTS[0],
            filter: String::new(),
            editing: false,
            show_changes: false,
            overlay: Overlay::None,
            detail_scroll: 0,
            objects: PaneState::default(),
            procs: PaneState::default(),
            color,
            status: None,
            seq: 0,
        }
    }

    /// A new scan arrived.
    pub fn on_snapshot(&mut self, snapshot: Snapshot, scan: Duration) {
        self.seq += 1;
        // A scan started before the switch to `touched` has no smaps: keep the policy shown.
        let policy = if self.policy.needs_smaps() && !snapshot.with_smaps {
            self.model.as_ref().map_or(Policy::Owner, |m| m.policy)
        } else {
            self.policy
        };
        if policy == self.policy {
            self.status = None;
        }
        self.baseline = self.model.take();
        let acc = account::account(&snapshot, policy);
        self.model = Some(Model::new(&acc, self.baseline.as_ref(), self.seq, scan));
        self.snapshot = Some(snapshot);
        self.settle();
    }

    /// The last snapshot (for views that need more than the model).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// A scan failed: said on the status line, the last figures stay.
    pub fn on_scan_failed(&mut self, error: String) {
        self.status = Some(format!("scan failed: {error}"));
    }

    /// Charges the current snapshot again under `self.policy`.
    fn recharge(&mut self) {
        let (Some(snap), Some(m)) = (&self.snapshot, &self.model) else {
            return;
        };
        let (seq, scan) = (m.seq, m.scan);
        let acc = account::account(snap, self.policy);
        self.model = Some(Model::new(&acc, self.baseline.as_ref(), seq, scan));
        self.settle();
    }

    /// Indices into `model.objects` after the filter, sorted.
    pub fn visible_objects(&self) -> Vec<usize> {
        let Some(m) = &self.model else {
            return Vec::new();
        };
        pane::visible(
            &m.objects,
            &self.filter.to_lowercase(),
            |o, n| o.matches(n),
            self.obj_sort,
            |o| o.resident.now,
            |o| o.key,
        )
    }

    /// Indices into `model.procs` after the filter, sorted.
    pub fn visible_procs(&self) -> Vec<usize> {
        let Some(m) = &self.model else {
            return Vec::new();
        };
        pane::visible(
            &m.procs,
            &self.filter.to_lowercase(),
            |p, n| p.matches(n),
            self.proc_sort,
            |p| p.shmem.now,
            |p| p.pid,
        )
    }

    /// Position of the selection among the visible rows of a pane (None when it is empty).
    pub fn selected_index(&self, pane: Pane) -> Option<usize> {
        let m = self.model.as_ref()?;
        match pane {
            Pane::Objects => {
                let vis = self.visible_objects();
                let sel = self.objects.selected?;
                vis.iter().position(|&i| m.objects[i].key == sel)
            }
            Pane::Procs => {
                let vis = self.visible_procs();
                let sel = self.procs.selected?;
                vis.iter().position(|&i| m.procs[i].pid == sel)
            }
        }
    }

    /// After the rows changed: keep each selection on its row, or on the same position when
    /// its row is gone (filtered out or vanished).
    fn settle(&mut self) {
        let Some(m) = &self.model else { return };
        let vis = self.visible_objects();
        let pos = self
            .objects
            .selected
            .and_then(|k| vis.iter().position(|&i| m.objects[i].key == k))
            .unwrap_or(self.objects.index.min(vis.len().saturating_sub(1)));
        self.objects.index = pos;
        self.objects.selected = vis.get(pos).map(|&i| m.objects[i].key);

        let vis = self.visible_procs();
        let pos = self
            .procs
            .selected
            .and_then(|k| vis.iter().position(|&i| m.procs[i].pid == k))
            .unwrap_or(self.procs.index.min(vis.len().saturating_sub(1)));
        self.procs.index = pos;
        self.procs.selected = vis.get(pos).map(|&i| m.procs[i].pid);
    }

    /// Moves the selection of the focused pane by `delta` rows (clamped).
    fn move_by(&mut self, delta: isize) {
        let Some(m) = &self.model else { return };
        match self.focus {
            Pane::Objects => {
                let vis = self.visible_objects();
                if vis.is_empty() {
                    return;
                }
                let cur = self.selected_index(Pane::Objects).unwrap_or(0);
                let pos = cur.saturating_add_signed(delta).min(vis.len() - 1);
                self.objects.index = pos;
                self.objects.selected = Some(m.objects[vis[pos]].key);
            }
            Pane::Procs => {
                let vis = self.visible_procs();
                if vis.is_empty() {
                    return;
                }
                let cur = self.selected_index(Pane::Procs).unwrap_or(0);
                let pos = cur.saturating_add_signed(delta).min(vis.len() - 1);
                self.procs.index = pos;
                self.procs.selected = Some(m.procs[vis[pos]].pid);
            }
        }
    }

    fn page(&self) -> isize {
        let p = match self.focus {
            Pane::Objects => self.objects.page.get(),
            Pane::Procs => self.procs.page.get(),
        };
        p.max(1) as isize
    }

    /// The selected row of the focused pane.
    pub fn target(&self) -> Option<Target> {
        match self.focus {
            Pane::Objects => self.objects.selected.map(Target::Object),
            Pane::Procs => self.procs.selected.map(Target::Process),
        }
    }

    /// What a key does to the state, and what the event loop must do.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if self.editing {
            self.filter_key(key, ctrl);
            return Action::None;
        }
        match self.overlay {
            Overlay::Help => {
                if key.code == KeyCode::Char('q') {
                    return Action::Quit;
                }
                // Any other key closes the help.
                self.overlay = Overlay::None;
                return Action::None;
            }
            Overlay::Detail(_) => match key.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace | KeyCode::Left => {
                    self.overlay = Overlay::None;
                    return Action::None;
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    self.detail_scroll = self.detail_scroll.saturating_add(1);
                    return Action::None;
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    self.detail_scroll = self.detail_scroll.saturating_sub(1);
                    return Action::None;
                }
                KeyCode::PageDown => {
                    self.detail_scroll = self.detail_scroll.saturating_add(10);
                    return Action::None;
                }
                KeyCode::PageUp => {
                    self.detail_scroll = self.detail_scroll.saturating_sub(10);
                    return Action::None;
                }
                KeyCode::Home | KeyCode::Char('g') => {
                    self.detail_scroll = 0;
                    return Action::None;
                }
                _ => {}
            },
            Overlay::None => {}
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Pane::Objects => Pane::Procs,
                    Pane::Procs => Pane::Objects,
                }
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(self.page()),
            KeyCode::PageUp => self.move_by(-self.page()),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            KeyCode::Char('s') | KeyCode::Char('S') => {
                let back = key.code == KeyCode::Char('S');
                match self.focus {
                    Pane::Objects => self.obj_sort = cycle(&OBJECT_SORTS, self.obj_sort, back),
                    Pane::Procs => self.proc_sort = cycle(&PROC_SORTS, self.proc_sort, back),
                }
                self.reselect_top();
            }
            KeyCode::Char('/') => self.editing = true,
            KeyCode::Char('c') => return self.cycle_policy(),
            KeyCode::Char('d') => self.show_changes = !self.show_changes,
            KeyCode::Char('r') => return Action::Rescan,
            KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => self.overlay = Overlay::Help,
            KeyCode::Enter => {
                if let Some(t) = self.target() {
                    self.overlay = Overlay::Detail(t);
                    self.detail_scroll = 0;
                }
            }
            _ => {}
        }
        Action::None
    }

    /// A new order: the selection goes to the first row, as in top.
    fn reselect_top(&mut self) {
        match self.focus {
            Pane::Objects => {
                self.objects.selected = None;
                self.objects.index = 0;
                self.objects.offset.set(0);
            }
            Pane::Procs => {
                self.procs.selected = None;
                self.procs.index = 0;
                self.procs.offset.set(0);
            }
        }
        self.settle();
    }

    fn filter_key(&mut self, key: KeyEvent, ctrl: bool) {
        match key.code {
            KeyCode::Enter => self.editing = false,
            KeyCode::Esc => {
                self.editing = false;
                self.filter.clear();
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char('u') if ctrl => self.filter.clear(),
            KeyCode::Char(c) if !ctrl && !c.is_control() => self.filter.push(c),
            _ => return,
        }
        // The filter applies as it is typed.
        self.settle();
    }

    fn cycle_policy(&mut self) -> Action {
        let old = self.policy;
        self.policy = match old {
            Policy::Owner => Policy::Split,
            Policy::Split => Policy::Touched,
            Policy::Touched => Policy::Owner,
        };
        let have_smaps = self.snapshot.as_ref().is_some_and(|s| s.with_smaps);
        if self.policy.needs_smaps() && !have_smaps {
            // PSS needs smaps: the collector rescans with it; the model keeps the old policy
            // until that scan arrives.
            self.status = Some("reading smaps...".into());
            return Action::Smaps(true);
        }
        self.status = None;
        self.recharge();
        if old.needs_smaps() && !self.policy.needs_smaps() {
            Action::Smaps(false)
        } else {
            Action::None
        }
    }
}
