//! `shmwho diff` as text: the host-wide figures, then the objects and processes that changed.

use crate::render::units::{escape, Units};
use crate::schema::{DiffDoc, Side};
use std::fmt::Write as _;

/// `2024-05-01 06:00:00 UTC` from seconds since the epoch (proleptic Gregorian, no time zones:
/// records may come from hosts in other zones).
pub(super) fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

pub(super) fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h {} min", s / 3600, s / 60 % 60),
        s => format!("{} days {} h", s / 86400, s / 3600 % 24),
    }
}

fn opt_bytes(v: Option<u64>, units: Units) -> String {
    v.map_or("-".into(), |v| units.bytes(v))
}

/// The diff as tables for people, in `units`.
pub fn table(d: &DiffDoc, units: Units) -> String {
    use crate::render::table::{finish_lines as finish, plain_table};
    let table = |header: &[&str], left: &[usize]| plain_table(header, |i| !left.contains(&i));
    let mut out = String::new();
    let side = |s: &Side| {
        let when = s
            .recorded_at
            .map(utc)
            .unwrap_or_else(|| "time unknown".into());
        format!("{} ({when})", escape(&s.file))
    };
    // recorded_at is in whole seconds: two records of the same second are compared as given.
    let order = match (d.a.recorded_at, d.b.recorded_at) {
        (Some(ta), Some(tb)) if ta == tb => Some(("", "the same second: compared as given".into())),
        (Some(ta), Some(tb)) => Some((", the older", format!("{} later", span(tb - ta)))),
        _ => None,
    };
    let _ = writeln!(
        out,
        "A: {}{}",
        side(&d.a),
        order.as_ref().map_or("", |o| o.0)
    );
    let _ = write!(out, "B: {}", side(&d.b));
    if let Some((_, later)) = &order {
        let _ = write!(out, ", {later}");
    }
    out.push_str("\n\n");
    let mut t = table(&["", "A", "B", "DELTA"], &[0]);
    for (label, v) in [
        ("Shmem (/proc/meminfo)", &d.meminfo_shmem_bytes),
        ("objects resident", &d.objects_resident_bytes),
        ("unexplained", &d.unexplained_bytes),
    ] {
        let show = |x: Option<i64>| x.map_or("-".into(), |x| units.signed(x));
        t.add_row(vec![
            label.to_string(),
            show(v.a),
            show(v.b),
            v.delta.map_or("-".into(), |x| units.delta(x)),
        ]);
    }
    out.push_str(&finish(&t));
    out.push('\n');

    let under = if d.min_change_bytes > 0 {
        format!(" by {} or more", units.bytes(d.min_change_bytes))
    } else {
        String::new()
    };
    if d.objects.is_empty() {
        let _ = writeln!(out, "No object changed{under}.");
    } else {
        let mut t = table(
            &[
                "CHANGE",
                "KIND",
                "ID",
                "NAME",
                "RESIDENT A",
                "RESIDENT B",
                "DELTA",
                "SWAP DELTA",
                "SIZE",
                "OWNER",
            ],
            &[0, 1, 2, 3, 9],
        );
        for o in &d.objects {
            t.add_row(vec![
                o.change.as_str().to_string(),
                o.kind.as_str().to_string(),
                o.id.clone(),
                escape(&o.name),
                opt_bytes(o.a.map(|f| f.resident_bytes), units),
                opt_bytes(o.b.map(|f| f.resident_bytes), units),
                units.delta(o.resident_delta_bytes),
                units.delta(o.swap_delta_bytes),
                opt_bytes(o.b.or(o.a).map(|f| f.size_bytes), units),
                o.owner
                    .as_ref()
                    .map_or("-".into(), |p| format!("{} {}", p.pid, escape(&p.comm))),
            ]);
        }
        out.push_str(&finish(&t));
    }
    match &d.processes {
        None => out.push_str("\n(no process figures: a file is not a `shmwho record`)\n"),
        Some(ps) if ps.is_empty() => {
            let _ = writeln!(out, "\nNo process's charged shared memory changed{under}.");
        }
        Some(ps) => {
            let _ = writeln!(
                out,
                "\nProcesses whose charged shared memory changed (charge '{}'):",
                d.charge.as_deref().unwrap_or("mixed")
            );
            let mut t = table(
                &[
                    "CHANGE", "PID", "USER", "COMMAND", "SHARED A", "SHARED B", "DELTA",
                ],
                &[0, 2, 3],
            );
            for p in ps {
                t.add_row(vec![
                    p.change.as_str().to_string(),
                    p.pid.to_string(),
                    escape(&p.user),
                    escape(&p.comm),
                    opt_bytes(p.a_bytes, units),
                    opt_bytes(p.b_bytes, units),
                    units.delta(p.delta_bytes),
                ]);
            }
            out.push_str(&finish(&t));
        }
    }
    if d.left_out > 0 {
        let _ = writeln!(
            out,
            "{} smaller change(s) left out by --min-change {}.",
            d.left_out,
            units.bytes(d.min_change_bytes)
        );
    }
    for n in &d.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}
