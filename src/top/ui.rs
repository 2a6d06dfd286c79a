//! Drawing: `draw(frame, &app)` renders the whole screen from the app state, nothing else. Each
//! widget is a small function: status line, one generic pane (the objects and processes panes
//! only list their columns), footer, help, detail.
//!
//! Fits 80x24: narrow terminals drop the columns the detail view repeats (size, user, objects
//! owned). Text is ASCII apart from names, so it reads the same over any ssh session.

use super::app::{App, Overlay, Pane, PaneState};
use super::detail;
use super::pane::{PaneColumn, PaneRow, Value};
use super::rows::{Fig, Model, Trend};
use crate::render::units::{short, short_change};
use crate::report::{Align, ObjectColumn, ProcColumn};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

/// The text of a change column for a row.
fn change_text(f: &Fig, new: bool) -> String {
    if new {
        "new".into()
    } else {
        f.change.map(short_change).unwrap_or_default()
    }
}

/// Styles, or none of their colours when NO_COLOR is set (modifiers stay: they are not colour).
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
    fn grew(&self) -> Style {
        self.fg(Color::LightRed).add_modifier(Modifier::BOLD)
    }
    fn shrank(&self) -> Style {
        self.fg(Color::Green)
    }
    fn new_row(&self) -> Style {
        self.fg(Color::Cyan)
    }
    fn header(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    fn bar(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    fn figure(&self, f: &Fig) -> Style {
        if f.grew() {
            self.grew()
        } else if f.shrank() {
            self.shrank()
        } else {
            Style::new()
        }
    }
}

/// The row marker: readable without colour (NO_COLOR, monochrome terminals).
fn marker(t: Trend) -> &'static str {
    match t {
        Trend::New => "*",
        Trend::Grew => "+",
        Trend::Shrank => "-",
        Trend::Same => " ",
    }
}

/// The first cell of a row: its trend mark, coloured unless NO_COLOR.
fn marker_cell(t: Trend, theme: &Theme) -> Cell<'static> {
    let style = match t {
        Trend::New => theme.new_row(),
        Trend::Grew => theme.grew(),
        Trend::Shrank => theme.shrank(),
        Trend::Same => Style::new(),
    };
    Cell::from(Span::styled(marker(t), style))
}

fn right(s: String, style: Style) -> Cell<'static> {
    Cell::from(Line::from(Span::styled(s, style)).right_aligned())
}

/// Draws the whole screen from the app state.
pub fn draw(frame: &mut Frame, app: &App) {
    let theme = Theme { color: app.color };
    let area = frame.area();
    let [top, middle, foot1, foot2] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);

    status_line(frame, app, &theme, top);
    match &app.model {
        None => {
            let text = app
                .status
                .clone()
                .unwrap_or_else(|| "scanning /proc...".into());
            frame.render_widget(Paragraph::new(text), middle);
        }
        Some(m) => {
            // Too short for both panes: the focused one only.
            if middle.height < 8 {
                match app.focus {
                    Pane::Objects => objects_pane(frame, app, m, &theme, middle),
                    Pane::Procs => procs_pane(frame, app, m, &theme, middle),
                }
            } else {
                let [a, b] =
                    Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(middle);
                objects_pane(frame, app, m, &theme, a);
                procs_pane(frame, app, m, &theme, b);
            }
            frame.render_widget(reconciliation_line(m, foot1.width), foot1);
        }
    }
    frame.render_widget(last_line(app), foot2);

    match app.overlay {
        Overlay::None => {}
        Overlay::Help => help(frame, &theme, middle),
        Overlay::Detail(t) => {
            let lines = match &app.model {
                Some(m) => detail::lines(m, t),
                None => vec![],
            };
            let title = match t {
                super::app::Target::Object(_) => " Object ",
                super::app::Target::Process(_) => " Process ",
            };
            popup(
                frame,
                &theme,
                middle,
                title,
                " Esc closes, Up/Down scroll ",
                lines,
                app.detail_scroll,
            );
        }
    }
}

fn status_line(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let mut s = format!(
        " shmwho top  every {}s  charge {}",
        secs(app.interval),
        app.policy.as_str()
    );
    // The status (a scan under way, a failed scan) first: it matters more than the counters.
    if let Some(st) = &app.status {
        s.push_str(&format!(" ({st})"));
    }
    if let Some(m) = &app.model {
        s.push_str(&format!("  scan #{} {} ms", m.seq, m.scan.as_millis()));
    }
    if !app.filter.is_empty() && !app.editing {
        s.push_str(&format!("  filter \"{}\"", app.filter));
    }
    if app.show_changes {
        s.push_str("  [changes]");
    }
    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(8)]).areas(area);
    frame.render_widget(Paragraph::new(s).style(theme.bar()), left);
    frame.render_widget(
        Paragraph::new("? help ").right_aligned().style(theme.bar()),
        right,
    );
}

fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

fn pane_block(app: &App, theme: &Theme, pane: Pane, title: String) -> Block<'static> {
    let focused = app.focus == pane;
    let style = if focused {
        theme.header().add_modifier(Modifier::REVERSED)
    } else {
        theme.header()
    };
    Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(title, style))
}

fn figure_text(app: &App, f: &Fig, new: bool, estimate: bool) -> String {
    if app.show_changes {
        // "0 B" rather than blank: in this mode every figure says how it moved.
        match f.change {
            Some(0) if !new => short(0),
            _ => change_text(f, new),
        }
    } else {
        format!("{}{}", if estimate { "~" } else { "" }, short(f.now))
    }
}

/// The text of a right-aligned cell (a figure, a count, an id, a change); `None` for text
/// columns, which are elided instead.
fn right_text<R: PaneRow>(app: &App, r: &R, c: PaneColumn<R::Column>) -> Option<String> {
    let new = r.is_new();
    Some(match c {
        PaneColumn::Data(c) => match r.value(c) {
            Value::Text(_) if R::align(c) == Align::Left => return None,
            Value::Text(t) => t.into_owned(),
            Value::Count(n) => n.to_string(),
            Value::Fig { fig, estimate } => figure_text(app, &fig, new, estimate),
            Value::Maybe(v) => v.map_or("-".into(), short),
        },
        PaneColumn::Change => match r.value(R::CHANGE_OF) {
            Value::Fig { fig, .. } => change_text(&fig, new),
            _ => String::new(),
        },
    })
}

/// The objects pane: which report columns, how wide; [`pane`] draws them.
fn objects_pane(frame: &mut Frame, app: &App, m: &Model, theme: &Theme, area: Rect) {
    use ObjectColumn::*;
    use PaneColumn::Data;
    let vis = app.visible_objects();
    let wide = area.width >= 100;
    let title = format!(
        " Objects {}/{}  sort {} ",
        vis.len(),
        m.objects.len(),
        app.obj_sort.as_str()
    );
    // Columns as wide as their widest visible entry, so the name gets the rest.
    let fit = |c, min, max| Constraint::Length(text_width(&m.objects, &vis, c, min, max));
    let columns = vec![
        (Data(Kind), fit(Kind, 4, 11)),
        (Data(Id), fit(Id, 2, 24)),
        (Data(Name), Constraint::Fill(1)),
        (Data(Size), Constraint::Length(8)),
        (Data(Resident), Constraint::Length(8)),
        (PaneColumn::Change, Constraint::Length(8)),
        (Data(Swap), Constraint::Length(7)),
        (Data(Holders), Constraint::Length(3)),
        (Data(Owner), fit(Owner, 5, if wide { 24 } else { 16 })),
    ];
    let view = PaneView {
        pane: Pane::Objects,
        title,
        rows: &m.objects,
        visible: &vis,
        columns,
        wide,
    };
    pane(frame, app, theme, area, view, &app.objects);
}

/// The processes pane: which report columns, how wide; [`pane`] draws them.
fn procs_pane(frame: &mut Frame, app: &App, m: &Model, theme: &Theme, area: Rect) {
    use PaneColumn::Data;
    use ProcColumn::*;
    let vis = app.visible_procs();
    let title = format!(
        " Processes {}/{}  sort {}  charge {} ",
        vis.len(),
        m.procs.len(),
        app.proc_sort.as_str(),
        m.policy.as_str()
    );
    let fig = Constraint::Length(8);
    let mut columns = vec![
        (Data(Pid), Constraint::Length(7)),
        (Data(Command), Constraint::Fill(1)),
        (Data(User), Constraint::Length(10)),
        (Data(Rss), fig),
        (Data(Shmem), fig),
        (Data(Swap), fig),
        (Data(Shared), fig),
        (PaneColumn::Change, fig),
        (Data(Total), fig),
    ];
    if m.with_smaps {
        columns.push((Data(Pss), fig));
    }
    columns.push((Data(Owned), Constraint::Length(3)));
    let view = PaneView {
        pane: Pane::Procs,
        title,
        rows: &m.procs,
        visible: &vis,
        columns,
        wide: area.width >= 100,
    };
    pane(frame, app, theme, area, view, &app.procs);
}

/// Columns of a pane that fit `width` cells (the border excluded), as the tables do: ratatui
/// squeezes columns that do not fit and cuts right-aligned figures from the left (pid 18170
/// as "170"), so the least important columns are left out first until every fixed column
/// gets its whole width and each growing text column at least [`MIN_FILL`]. Returns them with
/// the width each text column gets, for eliding with `…`.
fn fit_pane<R: PaneRow>(
    mut columns: Vec<(PaneColumn<R::Column>, Constraint)>,
    width: u16,
) -> FittedPane<R::Column> {
    use crate::report::Column as _;
    let fixed = |c: &[(PaneColumn<R::Column>, Constraint)]| -> (usize, usize) {
        let mut sum = 1; // the trend marker
        let mut fills = 0;
        for (_, w) in c {
            match w {
                Constraint::Length(n) => sum += usize::from(*n),
                _ => fills += 1,
            }
        }
        // One space between columns, the marker included.
        (sum + c.len() + fills * MIN_FILL, fills)
    };
    let priority = |c: &PaneColumn<R::Column>| match c {
        PaneColumn::Data(c) => c.priority(),
        // The change of SHARED or RESIDENT: less than the figure, more than the rest.
        PaneColumn::Change => 95,
    };
    while fixed(&columns).0 > usize::from(width) {
        let victim = columns
            .iter()
            .enumerate()
            .filter(|(_, (c, _))| priority(c) < crate::report::KEEP)
            .min_by_key(|(i, (c, _))| (priority(c), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                columns.remove(i);
            }
            None => break,
        }
    }
    let (need, fills) = fixed(&columns);
    let spare = usize::from(width).saturating_sub(need);
    let each = MIN_FILL + spare / fills.max(1);
    let fill = columns
        .iter()
        .filter_map(|(c, w)| match (c, w) {
            (PaneColumn::Data(c), Constraint::Fill(_)) => Some((*c, each)),
            (PaneColumn::Data(c), Constraint::Length(n)) => Some((*c, usize::from(*n))),
            _ => None,
        })
        .collect();
    (columns, fill)
}

/// The columns kept with their widths, and the width of each text column.
type FittedPane<C> = (Vec<(PaneColumn<C>, Constraint)>, Vec<(C, usize)>);

/// The narrowest a growing text column (name, command) gets before columns are left out.
const MIN_FILL: usize = 8;

/// The widest text of column `c` among the visible rows, within `min..=max`.
fn text_width<R: PaneRow>(rows: &[R], vis: &[usize], c: R::Column, min: usize, max: usize) -> u16 {
    let w = vis
        .iter()
        .map(|&i| match rows[i].value(c) {
            Value::Text(t) => t.chars().count(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    w.clamp(min, max) as u16
}

/// What one pane shows.
struct PaneView<'a, R: PaneRow> {
    pane: Pane,
    title: String,
    rows: &'a [R],
    /// Indices into `rows`, filtered and sorted.
    visible: &'a [usize],
    /// Columns after the trend marker, with their widths; those of width priority 1 only when
    /// `wide`.
    columns: Vec<(PaneColumn<R::Column>, Constraint)>,
    wide: bool,
}

/// One pane, for any row type: a trend marker, then each column's value or change.
fn pane<R: PaneRow, K>(
    frame: &mut Frame,
    app: &App,
    theme: &Theme,
    area: Rect,
    view: PaneView<R>,
    state: &PaneState<K>,
) {
    let columns: Vec<_> = view
        .columns
        .into_iter()
        .filter(|(c, _)| match c {
            PaneColumn::Data(c) => view.wide || R::width_priority(*c) == 0,
            PaneColumn::Change => true,
        })
        .collect();
    // A right-aligned column as wide as its widest visible entry (and its header): ratatui
    // would cut a longer figure from the left.
    let columns: Vec<_> = columns
        .into_iter()
        .map(|(c, w)| match w {
            Constraint::Length(n) => {
                let header = match c {
                    PaneColumn::Data(c) => R::header(c).chars().count(),
                    PaneColumn::Change => "CHANGE".len(),
                };
                let widest = view
                    .visible
                    .iter()
                    .filter_map(|&i| right_text(app, &view.rows[i], c))
                    .map(|t| t.chars().count())
                    .max()
                    .unwrap_or(0);
                let n = usize::from(n).max(header).max(widest);
                (c, Constraint::Length(u16::try_from(n).unwrap_or(u16::MAX)))
            }
            w => (c, w),
        })
        .collect();
    let (columns, fill) = fit_pane::<R>(columns, area.width.saturating_sub(2));
    let mut header = vec![Line::from("")];
    let mut widths = vec![Constraint::Length(1)];
    for &(c, w) in &columns {
        header.push(match c {
            PaneColumn::Data(c) if R::align(c) == Align::Left => Line::from(R::header(c)),
            PaneColumn::Data(c) => Line::from(R::header(c)).right_aligned(),
            PaneColumn::Change => Line::from("CHANGE").right_aligned(),
        });
        widths.push(w);
    }
    let rows = view.visible.iter().map(|&i| {
        let r = &view.rows[i];
        let trend = r.trend();
        let mut cells = vec![marker_cell(trend, theme)];
        for &(c, _) in &columns {
            let style = match c {
                PaneColumn::Data(c) => match r.value(c) {
                    Value::Fig { fig, .. } => theme.figure(&fig),
                    _ => Style::new(),
                },
                PaneColumn::Change => match r.value(R::CHANGE_OF) {
                    Value::Fig { fig, .. } => theme.figure(&fig),
                    _ => Style::new(),
                },
            };
            cells.push(match (c, right_text(app, r, c)) {
                (_, Some(t)) => right(t, style),
                (PaneColumn::Data(c), None) => match r.value(c) {
                    Value::Text(t) => Cell::from(crate::render::fit::elide(
                        &t,
                        fill.iter().find(|f| f.0 == c).map_or(usize::MAX, |f| f.1),
                    )),
                    _ => Cell::from(""),
                },
                (PaneColumn::Change, None) => Cell::from(""),
            });
        }
        let row = Row::new(cells);
        if trend == Trend::New {
            row.style(theme.new_row())
        } else {
            row
        }
    });
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header()))
        .block(pane_block(app, theme, view.pane, view.title))
        .column_spacing(1);
    render_table(
        frame,
        table,
        area,
        app,
        view.pane,
        view.visible.len(),
        state,
    );
}

fn render_table<K>(
    frame: &mut Frame,
    table: Table,
    area: Rect,
    app: &App,
    pane: Pane,
    rows: usize,
    state: &PaneState<K>,
) {
    let focused = app.focus == pane;
    let table = if focused {
        table.row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    } else {
        table
    };
    let selected = if focused {
        app.selected_index(pane)
    } else {
        None
    };
    // Rows on screen: the area less the border line and the header.
    let page = usize::from(area.height.saturating_sub(2));
    // Never scrolled further than needed to fill the pane (rows may have gone since).
    let offset = state.offset.get().min(rows.saturating_sub(page));
    let mut ts = TableState::default()
        .with_offset(offset)
        .with_selected(selected);
    frame.render_stateful_widget(table, area, &mut ts);
    state.offset.set(ts.offset());
    state.page.set(page);
    if rows == 0 && area.height >= 3 {
        let msg = if app.filter.is_empty() {
            "none"
        } else {
            "none match the filter"
        };
        let r = Rect {
            y: area.y + 2,
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(format!("  ({msg})")), r);
    }
}

/// `Shmem` and what explains it, as the footer of `shmwho objects`, in whole parts that fit
/// `width` (a part that does not fit is left out with `…`, never cut inside a number).
fn reconciliation_line(m: &Model, width: u16) -> Paragraph<'static> {
    let mut parts = vec![format!(
        "Shmem {}{}",
        short(m.shmem.now),
        m.shmem
            .change
            .filter(|&c| c != 0)
            .map(|c| format!(" ({})", short_change(c)))
            .unwrap_or_default()
    )];
    parts.push(format!(
        " = objects {}{}",
        if m.objects_estimate { "~" } else { "" },
        short(m.objects_bytes)
    ));
    if m.unheld_files > 0 {
        parts.push(format!(" + unheld files {}", short(m.unheld_files)));
    }
    let u = m.unexplained;
    parts.push(format!(
        " {} unexplained {}",
        if u < 0 { "-" } else { "+" },
        short(u.unsigned_abs())
    ));
    if m.unowned > 0 {
        parts.push(format!("; owned by nobody {}", short(m.unowned)));
    }
    let width = usize::from(width);
    let mut s = String::new();
    for (i, p) in parts.iter().enumerate() {
        let room = if i + 1 == parts.len() {
            width
        } else {
            width.saturating_sub(1)
        };
        if s.chars().count() + p.chars().count() > room {
            s.push('…');
            break;
        }
        s.push_str(p);
    }
    Paragraph::new(s)
}

/// The filter prompt, the scan notes, or the key hints.
fn last_line(app: &App) -> Paragraph<'static> {
    if app.editing {
        return Paragraph::new(format!(
            "/{}_   (Enter keeps it, Esc clears it)",
            app.filter
        ));
    }
    let mut notes: Vec<String> = Vec::new();
    if let Some(m) = &app.model {
        let n = &m.notes;
        let est: u32 = n.estimates.iter().map(|e| e.1).sum();
        if est > 0 {
            notes.push(format!("~ {est} estimated (Enter: why)"));
        }
        if n.unreadable > 0 {
            notes.push(format!("{} procs unreadable", n.unreadable));
        }
        if n.hidepid {
            notes.push("hidepid".into());
        }
        if n.vanished > 0 {
            notes.push(format!("{} exited mid-scan", n.vanished));
        }
        if n.foreign_ipc_ns > 0 {
            notes.push(format!("{} IPC ns not entered", n.foreign_ipc_ns));
        }
        if m.objects_gone > 0 {
            notes.push(format!("{} objects gone", m.objects_gone));
        }
    }
    if notes.is_empty() {
        Paragraph::new(
            "q quit  Tab pane  s sort  / filter  c charge  d changes  Enter details  ? help",
        )
    } else {
        Paragraph::new(format!("note: {}", notes.join(", ")))
    }
}

const HELP: &[&str] = &[
    "Keys",
    "  q Esc Ctrl-C   quit",
    "  Tab            switch between objects and processes",
    "  Up Down j k    select; PgUp PgDn Home End",
    "  Enter          details of the selected object or process",
    "  s S            next / previous sort order of this pane",
    "  /              filter both panes by text (Esc clears)",
    "  c              charge policy: owner, split, touched",
    "  d              figures show their change instead of value",
    "  r              scan now",
    "",
    "Every figure is measured from the kernel; ~ marks a lower bound.",
    "K M G = KiB MiB GiB. CHANGE: since the last refresh, of",
    "RESIDENT (objects) and SHARED (processes). Row marks: + grew,",
    "- shrank, * new since the last refresh.",
    "SHARED: shared memory charged under the policy; TOTAL: private",
    "anonymous RSS + SHARED; SHMEM: RssShmem of /proc/PID/status.",
    "touched reads smaps (a page-table walk) while it is selected.",
];

fn help(frame: &mut Frame, theme: &Theme, area: Rect) {
    let lines: Vec<Line> = HELP.iter().map(|l| Line::from(*l)).collect();
    popup(frame, theme, area, " Help ", " any key closes ", lines, 0);
}

fn popup(
    frame: &mut Frame,
    theme: &Theme,
    area: Rect,
    title: &str,
    bottom: &str,
    lines: Vec<Line<'static>>,
    scroll: u16,
) {
    let w = area.width.min(76);
    let h = area.height;
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y,
        width: w,
        height: h,
    };
    frame.render_widget(Clear, r);
    let p = Paragraph::new(lines)
        .block(
            Block::bordered()
                .title(Span::styled(title.to_string(), theme.header()))
                .title_bottom(bottom.to_string()),
        )
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0));
    frame.render_widget(p, r);
}
