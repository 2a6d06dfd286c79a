//! Frames rendered on ratatui's TestBackend from hand-made snapshots: what a user sees at 80x24,
//! growth between two refreshes, and what the keys do.

use super::app::{Action, App, Overlay, Pane};
use super::ui::draw;
use crate::account::tests::{object, process, snapshot};
use crate::account::Policy;
use crate::model::{Meminfo, ObjectDetail, Snapshot, SysvKey, SysvSegment, Via};
use crate::render::units::short;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// A master (pid 100) and two workers holding an anonymous region, a SysV segment nobody
/// attaches, a memfd held as an fd by 300.
fn host(region_resident: u64) -> Snapshot {
    let mut master = process(100, 10);
    master.comm = "php-fpm".into();
    master.user = "www".into();
    master.rss_bytes = 3 * MIB;
    master.rss_anon_bytes = MIB;
    master.rss_shmem_bytes = 2 * MIB;
    let mut w1 = process(101, 20);
    w1.comm = "php-fpm".into();
    w1.rss_bytes = 40 * MIB;
    w1.rss_anon_bytes = 8 * MIB;
    w1.rss_shmem_bytes = 32 * MIB;
    let mut other = process(300, 30);
    other.comm = "wayland".into();
    other.rss_bytes = 5 * MIB;
    other.rss_anon_bytes = 5 * MIB;

    let region = object(4242, region_resident, &[100, 101]);
    let mut seg = object(7, 24 * MIB, &[]);
    seg.id = crate::model::ObjectId::Sysv {
        ipc_ns: 1,
        shmid: 7,
    };
    seg.detail = ObjectDetail::sysv(SysvSegment {
        key: SysvKey(0x1234),
        shmid: 7,
        perms: 0o600,
        size_bytes: 32 * MIB,
        cpid: 55,
        lpid: 55,
        nattch: 0,
        uid: 0,
        cuid: 0,
        ctime: 0,
        rss_bytes: Some(24 * MIB),
        swap_bytes: Some(0),
    });
    let mut memfd = object(5151, 16 * MIB, &[300]);
    memfd.detail = ObjectDetail::Memfd {
        name: "buffer".into(),
    };
    memfd.holders[0].via = Via::Fd { fd: 9 };
    let mut s = snapshot(vec![master, w1, other], vec![region, seg, memfd]);
    s.meminfo = Meminfo {
        mem_total_bytes: 8 << 30,
        shmem_bytes: region_resident + 40 * MIB + 12 * 1024,
        ..Meminfo::default()
    };
    s
}

fn app_with(s: Snapshot) -> App {
    let mut app = App::new(Policy::Owner, Duration::from_secs(2), true);
    app.on_snapshot(s, Duration::from_millis(12));
    app
}

fn terminal(w: u16, h: u16) -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(w, h)).unwrap()
}

fn render(app: &App, t: &mut Terminal<TestBackend>) -> Vec<String> {
    t.draw(|f| draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn screen(app: &App) -> Vec<String> {
    render(app, &mut terminal(80, 24))
}

fn key(app: &mut App, c: KeyCode) -> Action {
    app.on_key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n")))
}

fn row_index(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n")))
}

#[test]
fn short_units() {
    // The tables' format: one number format across every view.
    assert_eq!(short(0), "0 B");
    assert_eq!(short(512), "512 B");
    assert_eq!(short(4096), "4.0 KiB");
    assert_eq!(short(16 * MIB), "16.0 MiB");
    assert_eq!(short(1023 * MIB + 900 * 1024), "1023.9 MiB");
    assert_eq!(short(5 << 29), "2.5 GiB");
}

#[test]
fn frame_at_80x24() {
    let app = app_with(host(48 * MIB));
    let lines = screen(&app);
    assert_eq!(lines.len(), 24);
    assert!(lines.iter().all(|l| l.chars().count() <= 80));
    insta::assert_snapshot!("frame_80x24", lines.join("\n"));

    // The objects, largest resident first, each with its owner.
    let region = line_with(&lines, "4242");
    assert!(region.contains("anon_shared"), "{region}");
    assert!(region.contains("PHP opcache"), "{region}");
    assert!(region.contains("48.0 MiB"), "{region}");
    assert!(region.contains("100 php-fpm"), "{region}");
    let seg = line_with(&lines, "sysv:7");
    assert!(
        seg.contains("24.0 MiB") && seg.trim_end().ends_with('-'),
        "{seg}"
    );
    assert!(row_index(&lines, "4242") < row_index(&lines, "sysv:7"));
    assert!(row_index(&lines, "sysv:7") < row_index(&lines, "5151"));
    // Processes, most shared memory charged first; the master holds the region.
    let master = line_with(&lines, "   100 php-fpm");
    assert!(
        master.contains("48.0 MiB") && master.contains("49.0 MiB"),
        "{master}"
    );
    // The footer reconciles with Shmem: 48 + 40 listed, 12 KiB unexplained.
    let foot = line_with(&lines, "Shmem");
    assert!(
        foot.contains("Shmem 88.0 MiB = objects 88.0 MiB + unexplained 12.0 KiB"),
        "{foot}"
    );
    // The last part does not fit 80 columns: left out whole, never cut (frames_wide has it).
    assert!(foot.ends_with('…') && !foot.contains("owned by"), "{foot}");
    assert!(lines[23].starts_with("q quit"), "{}", lines[23]);
    // No row is marked on the first refresh: there is nothing to compare with.
    assert!(!lines
        .iter()
        .any(|l| l.starts_with('+') || l.starts_with('*')));
}

#[test]
fn growth_is_marked_after_a_second_snapshot() {
    for color in [true, false] {
        let mut app = app_with(host(48 * MIB));
        app.color = color;
        let mut next = host(56 * MIB);
        let mut newcomer = object(6000, MIB, &[300]);
        newcomer.detail = ObjectDetail::Memfd {
            name: "late".into(),
        };
        next.objects.push(newcomer);
        app.on_snapshot(next, Duration::from_millis(10));
        let mut t = terminal(80, 24);
        let lines = render(&app, &mut t);
        let region = line_with(&lines, "4242");
        assert!(region.starts_with('+'), "growth marker: {region}");
        assert!(
            region.contains("56.0 MiB") && region.contains("+8.0 MiB"),
            "{region}"
        );
        let late = line_with(&lines, "memfd:late");
        assert!(late.starts_with('*') && late.contains("new"), "{late}");
        let seg = line_with(&lines, "sysv:7");
        assert!(seg.starts_with(' '), "unchanged: {seg}");
        // The master is charged the growth.
        let master = line_with(&lines, "   100 php-fpm");
        assert!(
            master.starts_with('+') && master.contains("+8.0 MiB"),
            "{master}"
        );
        assert!(line_with(&lines, "Shmem").contains("Shmem 96.0 MiB (+8.0 MiB)"));

        let buf = t.backend().buffer();
        let y = row_index(&lines, "4242") as u16;
        let x = lines[y as usize].find("+8.0 MiB").unwrap() as u16;
        let fg = buf[(x, y)].fg;
        let colored = buf
            .content
            .iter()
            .any(|c| !matches!(c.fg, Color::Reset) || !matches!(c.bg, Color::Reset));
        if color {
            assert_eq!(fg, Color::LightRed, "growth highlighted");
        } else {
            assert!(!colored, "NO_COLOR: no colours at all");
        }
    }
}

#[test]
fn sort_keys_reorder_the_focused_pane() {
    let mut app = app_with(host(48 * MIB));
    let mut next = host(48 * MIB);
    next.objects[2].resident_bytes += 4 * MIB; // the memfd grows
    app.on_snapshot(next, Duration::ZERO);
    let lines = screen(&app);
    assert!(line_with(&lines, "Objects").contains("sort resident"));
    assert!(row_index(&lines, "4242") < row_index(&lines, "5151"));

    assert_eq!(key(&mut app, KeyCode::Char('s')), Action::None);
    let lines = screen(&app);
    assert!(line_with(&lines, "Objects").contains("sort growth"));
    assert!(
        row_index(&lines, "5151") < row_index(&lines, "4242"),
        "the grown one first"
    );

    key(&mut app, KeyCode::Char('s')); // size
    key(&mut app, KeyCode::Char('s')); // swap
    key(&mut app, KeyCode::Char('s')); // holders
    let lines = screen(&app);
    assert!(line_with(&lines, "Objects").contains("sort holders"));
    assert!(row_index(&lines, "4242") < row_index(&lines, "5151"));
    assert!(row_index(&lines, "5151") < row_index(&lines, "sysv:7"));
    key(&mut app, KeyCode::Char('S'));
    assert!(line_with(&screen(&app), "Objects").contains("sort swap"));

    // Tab moves to processes; s sorts them instead.
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Pane::Procs);
    for _ in 0..7 {
        key(&mut app, KeyCode::Char('s'));
    }
    let lines = screen(&app);
    assert!(line_with(&lines, "Processes").contains("sort command"));
    assert!(row_index(&lines, "   101 php-fpm") < row_index(&lines, "   300 wayland"));
    assert!(line_with(&lines, "Objects").contains("sort swap"));
}

#[test]
fn filter_narrows_both_panes() {
    let mut app = app_with(host(48 * MIB));
    key(&mut app, KeyCode::Char('/'));
    for c in "wayl".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let lines = screen(&app);
    assert!(lines[23].starts_with("/wayl_"), "{}", lines[23]);
    // The memfd is held by wayland; the others are not.
    assert!(line_with(&lines, "Objects").contains("Objects 1/3"));
    assert!(lines.iter().any(|l| l.contains("5151")));
    assert!(!lines.iter().any(|l| l.contains("4242")));
    assert!(line_with(&lines, "Processes").contains("Processes 1/3"));
    // q while typing is text, not quit.
    key(&mut app, KeyCode::Enter);
    let lines = screen(&app);
    assert!(lines[0].contains("filter \"wayl\""), "{}", lines[0]);

    key(&mut app, KeyCode::Char('/'));
    for c in "zzz".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let lines = screen(&app);
    assert!(lines.iter().any(|l| l.contains("(none match the filter)")));
    key(&mut app, KeyCode::Esc);
    assert!(app.filter.is_empty());
    assert!(line_with(&screen(&app), "Objects").contains("Objects 3/3"));
}

#[test]
fn charge_policy_cycles_and_touched_waits_for_smaps() {
    let mut app = app_with(host(48 * MIB));
    assert_eq!(key(&mut app, KeyCode::Char('c')), Action::None);
    let lines = screen(&app);
    assert!(line_with(&lines, "Processes").contains("charge split"));
    // Split: 48 MiB between the master and the worker.
    assert!(line_with(&lines, "   101 php-fpm").contains("24.0 MiB"));

    assert_eq!(key(&mut app, KeyCode::Char('c')), Action::Smaps(true));
    let lines = screen(&app);
    assert!(lines[0].contains("charge touched") && lines[0].contains("reading smaps"));
    assert!(
        line_with(&lines, "Processes").contains("charge split"),
        "still split until a scan with smaps arrives"
    );
    // A scan without smaps (started before the switch) keeps split.
    app.on_snapshot(host(48 * MIB), Duration::ZERO);
    assert_eq!(app.model.as_ref().unwrap().policy, Policy::Split);
    let mut with = host(48 * MIB);
    with.with_smaps = true;
    if let Via::Map { pss_bytes, .. } = &mut with.objects[0].holders[1].via {
        *pss_bytes = Some(30 * MIB);
    }
    app.on_snapshot(with, Duration::ZERO);
    let lines = screen(&app);
    assert!(line_with(&lines, "Processes").contains("charge touched"));
    assert!(!lines[0].contains("reading smaps"));
    assert!(line_with(&lines, "   101 php-fpm").contains("30.0 MiB"));
    assert!(line_with(&lines, "   100 php-fpm").contains("18.0 MiB"));

    assert_eq!(key(&mut app, KeyCode::Char('c')), Action::Smaps(false));
    assert_eq!(app.model.as_ref().unwrap().policy, Policy::Owner);
}

#[test]
fn enter_shows_holders_and_charges() {
    let mut app = app_with(host(48 * MIB));
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.overlay, Overlay::Detail(_)));
    let lines = screen(&app);
    let all = lines.join("\n");
    assert!(
        all.contains("anon_shared 4242  PHP opcache · (anonymous)"),
        "{all}"
    );
    assert!(all.contains("resident  48.0 MiB (50331648 bytes)"), "{all}");
    assert!(all.contains("owner     100 php-fpm"), "{all}");
    assert!(
        all.contains("holders   2 process(es), 2 handle(s)"),
        "{all}"
    );
    assert!(all.contains("101 php-fpm"), "{all}");
    assert!(all.contains("charges under 'owner':"), "{all}");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.overlay, Overlay::None);

    // The second object down is the SysV segment: nobody owns it.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    let all = screen(&app).join("\n");
    assert!(all.contains("sysv sysv:7  key 0x00001234"), "{all}");
    assert!(all.contains("owner     nobody"), "{all}");
    key(&mut app, KeyCode::Esc);

    // A process: what it holds and is charged.
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Enter);
    let all = screen(&app).join("\n");
    assert!(all.contains("100 php-fpm  (parent 1, user www)"), "{all}");
    assert!(
        all.contains("anon_shared 4242 PHP opcache · (anonymous)  resident 48.0 MiB, charged"),
        "{all}"
    );
    assert_eq!(key(&mut app, KeyCode::Char('q')), Action::Quit);
}

#[test]
fn selection_follows_its_row_and_quit_keys() {
    let mut app = app_with(host(48 * MIB));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.selected_index(Pane::Objects), Some(2));
    // The memfd (selected) becomes the largest: the selection moves with it.
    let mut next = host(48 * MIB);
    next.objects[2].resident_bytes = 100 * MIB;
    app.on_snapshot(next, Duration::ZERO);
    assert_eq!(app.selected_index(Pane::Objects), Some(0));

    key(&mut app, KeyCode::Char('?'));
    assert_eq!(app.overlay, Overlay::Help);
    assert!(screen(&app).join("\n").contains("any key closes"));
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(key(&mut app, KeyCode::Esc), Action::Quit);
    assert_eq!(
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
    assert_eq!(key(&mut app, KeyCode::Char('r')), Action::Rescan);
}

#[test]
fn odd_sizes_do_not_panic() {
    let mut app = app_with(host(48 * MIB));
    for (w, h) in [(1, 1), (20, 5), (40, 10), (80, 8), (200, 60)] {
        let mut t = terminal(w, h);
        render(&app, &mut t);
        key(&mut app, KeyCode::Enter);
        render(&app, &mut t);
        key(&mut app, KeyCode::Esc);
    }
    // Before the first scan.
    let empty = App::new(Policy::Owner, Duration::from_secs(2), false);
    let lines = screen(&empty);
    assert!(lines[1].contains("scanning /proc"), "{}", lines[1]);
}

#[test]
fn wide_terminals_add_columns() {
    let app = app_with(host(48 * MIB));
    let lines = render(&app, &mut terminal(120, 30));
    let hdr = line_with(&lines, "KIND");
    assert!(hdr.contains("SIZE"), "{hdr}");
    let hdr = line_with(&lines, "COMMAND");
    assert!(hdr.contains("USER") && hdr.contains("OWN"), "{hdr}");
    assert!(line_with(&lines, "   100 php-fpm").contains("www"));
}

#[test]
fn a_shorter_list_is_not_left_scrolled() {
    let mut s = host(48 * MIB);
    for pid in 400..440 {
        let mut p = process(pid, 50);
        p.comm = if pid < 403 {
            "few".into()
        } else {
            "many".into()
        };
        s.processes.push(p);
    }
    s.processes.sort_by_key(|p| p.pid);
    let mut app = app_with(s);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::End);
    let lines = screen(&app);
    assert!(line_with(&lines, "Processes").contains("43/43"));
    assert!(app.procs.offset.get() > 0, "scrolled to the end");
    key(&mut app, KeyCode::Char('/'));
    for c in "few".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let lines = screen(&app);
    for pid in ["400 few", "401 few", "402 few"] {
        assert!(
            lines.iter().any(|l| l.contains(pid)),
            "{pid} hidden:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn changes_mode_shows_every_figure_as_a_change() {
    let mut app = app_with(host(48 * MIB));
    app.on_snapshot(host(50 * MIB), Duration::ZERO);
    key(&mut app, KeyCode::Char('d'));
    let lines = screen(&app);
    assert!(lines[0].contains("[changes]"), "{}", lines[0]);
    let region = line_with(&lines, "4242");
    // RESIDENT and CHANGE both +2.0 MiB, SWAP unchanged.
    assert_eq!(region.matches("+2.0 MiB").count(), 2, "{region}");
    assert!(region.contains(" 0 B"), "{region}");
}

#[test]
fn estimates_are_marked() {
    let mut s = host(48 * MIB);
    s.objects[0].accuracy =
        crate::model::Accuracy::Estimate(crate::model::EstimateReason::MapFilesDenied);
    s.notes.estimates = vec![(crate::model::EstimateReason::MapFilesDenied, 1)];
    let mut app = app_with(s);
    let lines = screen(&app);
    assert!(line_with(&lines, "4242").contains("~48.0 MiB"));
    assert!(line_with(&lines, "   100 php-fpm").contains("~48.0 MiB"));
    assert!(line_with(&lines, "   100 php-fpm").contains("~49.0 MiB"));
    assert!(!line_with(&lines, "   300 wayland").contains('~'));
    assert!(line_with(&lines, "Shmem").contains("objects ~88.0 MiB"));
    assert!(lines[23].contains("~ 1 estimated"), "{}", lines[23]);
    key(&mut app, KeyCode::Enter);
    assert!(screen(&app)
        .join("\n")
        .contains("~ estimate: a lower bound"));
}

/// A wide terminal with smaps read, after a second scan and under each sort order: every
/// column, the change column and the order of both panes (guards the generic pane).
#[test]
fn frames_wide_with_changes_and_sorts() {
    let mut s1 = host(48 * MIB);
    s1.with_smaps = true;
    for p in &mut s1.processes {
        p.smaps = Some(crate::model::SmapsTotals {
            pss_bytes: p.rss_bytes / 2,
            uss_bytes: p.rss_anon_bytes,
        });
    }
    let mut app = App::new(Policy::Touched, Duration::from_secs(2), false);
    app.on_snapshot(s1.clone(), Duration::from_millis(12));
    let mut s2 = s1;
    s2.objects[0].resident_bytes = 56 * MIB;
    s2.objects[2].resident_bytes = 8 * MIB;
    app.on_snapshot(s2, Duration::from_millis(12));
    let mut frames = Vec::new();
    for _ in 0..5 {
        for _ in 0..8 {
            frames.push(render(&app, &mut terminal(130, 16)).join("\n"));
            key(&mut app, KeyCode::Char('s'));
            if app.focus == Pane::Objects {
                break;
            }
        }
        key(&mut app, KeyCode::Tab);
    }
    app.show_changes = true;
    frames.push(render(&app, &mut terminal(130, 16)).join("\n"));
    insta::assert_snapshot!("frames_wide", frames.join("\n=====\n"));
}

/// Tokens that begin with a digit and are not elided: the figures and ids on screen.
fn numbers(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '│' || c == '─'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_digit()) && !w.contains('…'))
        .map(str::to_string)
        .collect()
}

/// At 60x20 and 30x8 every number on screen is one of the wide screen's, whole: columns that
/// do not fit are left out, never cut from the left (pid 18170 as "170", 48.0 MiB as "8.0 MiB").
#[test]
fn small_terminals_never_cut_numbers() {
    let mut s = host(48 * MIB);
    for p in &mut s.processes {
        p.pid += 18_000;
    }
    for o in &mut s.objects {
        for h in &mut o.holders {
            h.pid += 18_000;
        }
    }
    let app = app_with(s);
    let wide = numbers(&render(&app, &mut terminal(200, 40)));
    for (w, h) in [(60, 20), (30, 8), (45, 12)] {
        let lines = render(&app, &mut terminal(w, h));
        for n in numbers(&lines) {
            assert!(
                wide.contains(&n),
                "{w}x{h}: {n:?} is not a whole number of the wide screen\n{}",
                lines.join("\n")
            );
        }
        // The answer is still there.
        assert!(
            lines.iter().any(|l| l.contains("48.0 MiB")),
            "{w}x{h}\n{}",
            lines.join("\n")
        );
    }
}
