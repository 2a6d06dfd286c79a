//! `shmwho record FILE` and `shmwho diff A B`: what grew overnight.
//!
//! A record is the objects and procs JSON documents of one scan in one file (format in
//! docs/json.md), written atomically. `diff` matches objects by identity (kind, device, inode or
//! shmid, namespace) and processes by pid and command, and reports what appeared, disappeared,
//! grew or shrank.

use crate::account::{self, Policy};
use crate::collect::Options;
use crate::render::units::{bytes, escape};
use crate::render::{self, ObjectFilter, ProcFilter};
use crate::size::parse_size;
use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Version of the record format; bumped only when a field changes meaning or disappears.
pub const RECORD_SCHEMA: u32 = 1;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The file holds {\"schema\":1,\"recorded_at\":...,\"objects\":<shmwho --json>,\"procs\":<shmwho procs --json>}
(docs/json.md). It is written to a temporary file in the same directory and renamed, so a reader
never sees half a record.

Examples:
  sudo shmwho record /var/tmp/shm-evening.json
  sudo shmwho record /var/tmp/shm-morning.json
  shmwho diff /var/tmp/shm-evening.json /var/tmp/shm-morning.json
  sudo shmwho record - | jq '.objects.meminfo_shmem_bytes'")]
pub struct RecordArgs {
    /// Where to write the snapshot (`-` for stdout)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Charging policy of the per-process figures (see `shmwho procs --help`)
    #[arg(long, value_enum, default_value_t = Policy::Owner)]
    pub charge: Policy,
    /// Read procfs from this directory instead of /proc
    #[arg(long, hide = true, default_value = "/proc")]
    pub proc_root: PathBuf,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Objects are matched by identity (kind, device and inode, or SysV shmid and IPC namespace),
processes by pid and command. An object grew or shrank when its resident plus swapped bytes
changed; a process is listed when its charged shared memory changed.

Examples:
  shmwho diff before.json after.json
  shmwho diff before.json after.json --min-change 1M
  shmwho diff before.json after.json --json | jq '.objects[] | select(.change == \"grew\")'")]
pub struct DiffArgs {
    /// The earlier record
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The later record
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Leave out changes smaller than SIZE (e.g. 1M)
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub min_change: u64,
    /// Print JSON (docs/json.md); always in bytes
    #[arg(long)]
    pub json: bool,
    /// Print exact byte counts instead of KiB/MiB/GiB
    #[arg(long)]
    pub bytes: bool,
}

pub fn record(args: RecordArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let snap = crate::privilege::scan_once(&Options {
        paths: crate::collect::HostPaths::with_proc_root(args.proc_root.clone()),
        smaps: args.charge.needs_smaps(),
        cgroups: true,
    })?;
    let acc = account::account(&snap, args.charge);
    let objects: serde_json::Value =
        serde_json::from_str(&render::json::objects(&acc, &ObjectFilter::default()))?;
    let procs: serde_json::Value = serde_json::from_str(&render::json::procs(
        &acc,
        &ProcFilter {
            pids: Vec::new(),
            user: None,
            comm: None,
            by: None,
            sort: crate::cli::ProcSort::Pid,
            top: None,
            pss: snap.with_smaps,
            exact: None,
        },
    ))?;
    let doc = serde_json::json!({
        "schema": RECORD_SCHEMA,
        "recorded_at": std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "hostname": rustix::system::uname().nodename().to_string_lossy(),
        "charge": args.charge.as_str(),
        "objects": objects,
        "procs": procs,
    });
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    if args.file.as_os_str() == "-" {
        out.write_all(text.as_bytes())?;
        return Ok(());
    }
    crate::output_file::write_atomic(&args.file, text.as_bytes(), 0o644)
}

// ---------------------------------------------------------------------------------------------
// Reading records: only the fields diff needs; unknown ones are ignored.

#[derive(Deserialize)]
struct RecordDoc {
    schema: u32,
    recorded_at: Option<u64>,
    hostname: Option<String>,
    objects: ObjectsDoc,
    procs: Option<ProcsDoc>,
}

#[derive(Deserialize)]
struct ObjectsDoc {
    schema: u32,
    meminfo_shmem_bytes: u64,
    objects_resident_bytes: Option<u64>,
    unexplained_bytes: Option<i64>,
    objects: Vec<ObjectRec>,
}

#[derive(Deserialize, Clone)]
struct ObjectRec {
    kind: String,
    id: Option<String>,
    inode: u64,
    dev: Option<String>,
    namespace: Option<u64>,
    size_bytes: u64,
    resident_bytes: u64,
    swap_bytes: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    key: Option<i64>,
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default)]
    owner: Option<PidComm>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
struct PidComm {
    pid: i64,
    comm: String,
}

#[derive(Deserialize)]
struct ProcsDoc {
    charge: String,
    processes: Vec<ProcRec>,
}

#[derive(Deserialize)]
struct ProcRec {
    pid: i64,
    comm: String,
    #[serde(default)]
    user: String,
    shared_charged_bytes: u64,
}

/// A record, or a plain `shmwho --json` objects document.
struct Loaded {
    recorded_at: Option<u64>,
    hostname: Option<String>,
    objects: ObjectsDoc,
    procs: Option<ProcsDoc>,
    /// Byte figures beyond any host's memory, capped on reading.
    capped: usize,
}

fn load(path: &Path) -> anyhow::Result<Loaded> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let capped = crate::collect::bounds::cap_json_bytes(&mut value);
    let is_record = value.get("objects").is_some_and(|o| o.is_object());
    let loaded = if is_record {
        let r: RecordDoc = serde_json::from_value(value)
            .with_context(|| format!("{}: not a shmwho record", path.display()))?;
        if r.schema != RECORD_SCHEMA {
            bail!(
                "{}: record schema {} is not supported (this shmwho reads {RECORD_SCHEMA})",
                path.display(),
                r.schema
            );
        }
        Loaded {
            recorded_at: r.recorded_at,
            hostname: r.hostname,
            objects: r.objects,
            procs: r.procs,
            capped,
        }
    } else {
        let o: ObjectsDoc = serde_json::from_value(value).with_context(|| {
            format!(
                "{}: neither a shmwho record nor `shmwho --json` output",
                path.display()
            )
        })?;
        Loaded {
            recorded_at: None,
            hostname: None,
            objects: o,
            procs: None,
            capped,
        }
    };
    if loaded.objects.schema != render::json::SCHEMA {
        bail!(
            "{}: objects schema {} is not supported (this shmwho reads {})",
            path.display(),
            loaded.objects.schema,
            render::json::SCHEMA
        );
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------------------------
// The difference

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
enum Change {
    Appeared,
    Grew,
    Shrank,
    /// Resident plus swapped unchanged, but the split between them, or the size, moved.
    Changed,
    Disappeared,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Appeared => "appeared",
            Change::Grew => "grew",
            Change::Shrank => "shrank",
            Change::Changed => "changed",
            Change::Disappeared => "disappeared",
        }
    }
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
struct Figures {
    resident_bytes: u64,
    swap_bytes: u64,
    size_bytes: u64,
}

#[derive(Serialize, Debug)]
struct ObjectDiff {
    change: Change,
    kind: String,
    id: String,
    dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<u64>,
    name: String,
    owner: Option<PidComm>,
    a: Option<Figures>,
    b: Option<Figures>,
    resident_delta_bytes: i64,
    swap_delta_bytes: i64,
    size_delta_bytes: i64,
}

impl ObjectDiff {
    /// Resident plus swapped: what the object holds in memory.
    fn held_delta(&self) -> i64 {
        self.resident_delta_bytes + self.swap_delta_bytes
    }
}

#[derive(Serialize, Debug)]
struct ProcDiff {
    change: Change,
    pid: i64,
    comm: String,
    user: String,
    a_bytes: Option<u64>,
    b_bytes: Option<u64>,
    delta_bytes: i64,
}

#[derive(Serialize)]
struct Side {
    file: String,
    recorded_at: Option<u64>,
    hostname: Option<String>,
}

#[derive(Serialize)]
struct Delta {
    a: Option<i64>,
    b: Option<i64>,
    delta: Option<i64>,
}

impl Delta {
    fn new(a: Option<i64>, b: Option<i64>) -> Delta {
        Delta {
            a,
            b,
            delta: a.zip(b).map(|(a, b)| b - a),
        }
    }
}

#[derive(Serialize)]
struct DiffDoc {
    schema: u32,
    a: Side,
    b: Side,
    charge: Option<String>,
    meminfo_shmem_bytes: Delta,
    objects_resident_bytes: Delta,
    unexplained_bytes: Delta,
    objects: Vec<ObjectDiff>,
    /// Null when either file holds no procs document (a plain `shmwho --json`).
    processes: Option<Vec<ProcDiff>>,
    notes: Vec<String>,
}

type Key = (String, Option<String>, String, Option<u64>);

fn key(o: &ObjectRec) -> Key {
    (
        o.kind.clone(),
        o.dev.clone(),
        o.id.clone().unwrap_or_else(|| o.inode.to_string()),
        o.namespace,
    )
}

fn display_name(o: &ObjectRec) -> String {
    match o.kind.as_str() {
        "anon_shared" => "(anonymous)".to_string(),
        "sysv" => o
            .key
            .map(|k| format!("key 0x{:08x}", k as i32 as u32))
            .unwrap_or_default(),
        "memfd" => format!("memfd:{}", o.name.as_deref().unwrap_or("")),
        _ => {
            let p = o.path.clone().unwrap_or_default();
            if o.deleted == Some(true) {
                format!("{p} (deleted)")
            } else {
                p
            }
        }
    }
}

fn figures(o: &ObjectRec) -> Figures {
    Figures {
        resident_bytes: o.resident_bytes,
        swap_bytes: o.swap_bytes,
        size_bytes: o.size_bytes,
    }
}

fn delta(a: Option<u64>, b: Option<u64>) -> i64 {
    b.unwrap_or(0) as i64 - a.unwrap_or(0) as i64
}

fn object_diffs(a: &ObjectsDoc, b: &ObjectsDoc, min_change: u64) -> Vec<ObjectDiff> {
    let before: HashMap<Key, &ObjectRec> = a.objects.iter().map(|o| (key(o), o)).collect();
    let after: HashMap<Key, &ObjectRec> = b.objects.iter().map(|o| (key(o), o)).collect();
    let mut keys: Vec<&Key> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<ObjectDiff> = keys
        .into_iter()
        .filter_map(|k| {
            let (oa, ob) = (before.get(k).copied(), after.get(k).copied());
            let (fa, fb) = (oa.map(figures), ob.map(figures));
            let newest = ob.or(oa)?;
            let d = ObjectDiff {
                change: Change::Changed,
                kind: k.0.clone(),
                id: k.2.clone(),
                dev: k.1.clone(),
                namespace: k.3,
                name: display_name(newest),
                owner: newest.owner.clone(),
                a: fa,
                b: fb,
                resident_delta_bytes: delta(
                    fa.map(|f| f.resident_bytes),
                    fb.map(|f| f.resident_bytes),
                ),
                swap_delta_bytes: delta(fa.map(|f| f.swap_bytes), fb.map(|f| f.swap_bytes)),
                size_delta_bytes: delta(fa.map(|f| f.size_bytes), fb.map(|f| f.size_bytes)),
            };
            let change = match (fa, fb) {
                (None, Some(_)) => Change::Appeared,
                (Some(_), None) => Change::Disappeared,
                (Some(x), Some(y)) if x == y => return None,
                _ if d.held_delta() > 0 => Change::Grew,
                _ if d.held_delta() < 0 => Change::Shrank,
                _ => Change::Changed,
            };
            let biggest = [d.held_delta(), d.resident_delta_bytes, d.size_delta_bytes]
                .iter()
                .map(|v| v.unsigned_abs())
                .max()
                .unwrap_or(0);
            let present = fa.or(fb).map_or(0, |f| f.resident_bytes + f.swap_bytes);
            let magnitude = match change {
                Change::Appeared | Change::Disappeared => present,
                _ => biggest,
            };
            (magnitude >= min_change).then_some(ObjectDiff { change, ..d })
        })
        .collect();
    out.sort_by(|x, y| {
        y.held_delta()
            .unsigned_abs()
            .cmp(&x.held_delta().unsigned_abs())
            .then(x.change.cmp(&y.change))
            .then(x.kind.cmp(&y.kind))
            .then(x.id.cmp(&y.id))
    });
    out
}

fn proc_diffs(a: &ProcsDoc, b: &ProcsDoc, min_change: u64) -> Vec<ProcDiff> {
    // pid and command: a pid reused overnight by another program is another process.
    let index = |d: &ProcsDoc| -> BTreeMap<(i64, String), (u64, String)> {
        d.processes
            .iter()
            .map(|p| {
                (
                    (p.pid, p.comm.clone()),
                    (p.shared_charged_bytes, p.user.clone()),
                )
            })
            .collect()
    };
    let (before, after) = (index(a), index(b));
    let mut keys: Vec<&(i64, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<ProcDiff> = keys
        .into_iter()
        .filter_map(|k| {
            let (pa, pb) = (before.get(k), after.get(k));
            let (ba, bb) = (pa.map(|p| p.0), pb.map(|p| p.0));
            let d = delta(ba, bb);
            let change = match (ba, bb) {
                (None, Some(_)) => Change::Appeared,
                (Some(_), None) => Change::Disappeared,
                _ if d > 0 => Change::Grew,
                _ if d < 0 => Change::Shrank,
                _ => return None,
            };
            // Processes that came or went holding nothing are noise here.
            if d == 0 || d.unsigned_abs() < min_change.max(1) {
                return None;
            }
            Some(ProcDiff {
                change,
                pid: k.0,
                comm: k.1.clone(),
                user: pb.or(pa).map(|p| p.1.clone()).unwrap_or_default(),
                a_bytes: ba,
                b_bytes: bb,
                delta_bytes: d,
            })
        })
        .collect();
    out.sort_by(|x, y| {
        y.delta_bytes
            .unsigned_abs()
            .cmp(&x.delta_bytes.unsigned_abs())
            .then(x.pid.cmp(&y.pid))
    });
    out
}

pub fn diff(args: DiffArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let mut notes = Vec::new();
    for (side, l) in [("A", &a), ("B", &b)] {
        if l.capped > 0 {
            notes.push(format!(
                "{side} holds {} byte figure(s) beyond 8 PiB, more than any host has: capped at 8 PiB",
                l.capped
            ));
        }
    }
    let charge = match (&a.procs, &b.procs) {
        (Some(pa), Some(pb)) if pa.charge != pb.charge => {
            notes.push(format!(
                "the records charge differently ({} then {}): process changes mix policies",
                pa.charge, pb.charge
            ));
            None
        }
        (Some(pa), Some(_)) => Some(pa.charge.clone()),
        _ => None,
    };
    if a.hostname.is_some() && b.hostname.is_some() && a.hostname != b.hostname {
        notes.push(format!(
            "the records come from different hosts ({} and {}): objects cannot match",
            a.hostname.as_deref().unwrap_or(""),
            b.hostname.as_deref().unwrap_or("")
        ));
    }
    if let (Some(ta), Some(tb)) = (a.recorded_at, b.recorded_at) {
        if tb < ta {
            notes.push("B was recorded before A: deltas read backwards".to_string());
        }
    }
    let processes = match (&a.procs, &b.procs) {
        (Some(pa), Some(pb)) => Some(proc_diffs(pa, pb, args.min_change)),
        _ => None,
    };
    let doc = DiffDoc {
        schema: RECORD_SCHEMA,
        a: Side {
            file: args.a.display().to_string(),
            recorded_at: a.recorded_at,
            hostname: a.hostname.clone(),
        },
        b: Side {
            file: args.b.display().to_string(),
            recorded_at: b.recorded_at,
            hostname: b.hostname.clone(),
        },
        charge,
        meminfo_shmem_bytes: Delta::new(
            Some(a.objects.meminfo_shmem_bytes as i64),
            Some(b.objects.meminfo_shmem_bytes as i64),
        ),
        objects_resident_bytes: Delta::new(
            a.objects.objects_resident_bytes.map(|v| v as i64),
            b.objects.objects_resident_bytes.map(|v| v as i64),
        ),
        unexplained_bytes: Delta::new(a.objects.unexplained_bytes, b.objects.unexplained_bytes),
        objects: object_diffs(&a.objects, &b.objects, args.min_change),
        processes,
        notes,
    };
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        s
    } else {
        diff_table(&doc, args.bytes)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn plus(v: i64, exact: bool) -> String {
    let s = bytes(v.unsigned_abs(), exact);
    match v.signum() {
        1 => format!("+{s}"),
        -1 => format!("-{s}"),
        _ => s,
    }
}

/// `2024-05-01 06:00:00 UTC` from seconds since the epoch (proleptic Gregorian, no time zones:
/// records may come from hosts in other zones).
fn utc(secs: u64) -> String {
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

fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h {} min", s / 3600, s / 60 % 60),
        s => format!("{} days {} h", s / 86400, s / 3600 % 24),
    }
}

fn opt_bytes(v: Option<u64>, exact: bool) -> String {
    v.map_or("-".into(), |v| bytes(v, exact))
}

fn diff_table(d: &DiffDoc, exact: bool) -> String {
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
    let _ = writeln!(out, "A: {}", side(&d.a));
    let _ = write!(out, "B: {}", side(&d.b));
    if let (Some(ta), Some(tb)) = (d.a.recorded_at, d.b.recorded_at) {
        let _ = write!(out, ", {} later", span(tb.saturating_sub(ta)));
    }
    out.push_str("\n\n");
    let mut t = table(&["", "A", "B", "DELTA"], &[0]);
    for (label, v) in [
        ("Shmem (/proc/meminfo)", &d.meminfo_shmem_bytes),
        ("objects resident", &d.objects_resident_bytes),
        ("unexplained", &d.unexplained_bytes),
    ] {
        let show =
            |x: Option<i64>| x.map_or("-".into(), |x| crate::render::units::signed_bytes(x, exact));
        t.add_row(vec![
            label.to_string(),
            show(v.a),
            show(v.b),
            v.delta.map_or("-".into(), |x| plus(x, exact)),
        ]);
    }
    out.push_str(&finish(&t));
    out.push('\n');

    if d.objects.is_empty() {
        out.push_str("No object changed.\n");
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
                "SIZE B",
                "OWNER",
            ],
            &[0, 1, 2, 3, 9],
        );
        for o in &d.objects {
            t.add_row(vec![
                o.change.as_str().to_string(),
                o.kind.clone(),
                o.id.clone(),
                escape(&o.name),
                opt_bytes(o.a.map(|f| f.resident_bytes), exact),
                opt_bytes(o.b.map(|f| f.resident_bytes), exact),
                plus(o.resident_delta_bytes, exact),
                plus(o.swap_delta_bytes, exact),
                opt_bytes(o.b.or(o.a).map(|f| f.size_bytes), exact),
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
            out.push_str("\nNo process's charged shared memory changed.\n")
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
                    opt_bytes(p.a_bytes, exact),
                    opt_bytes(p.b_bytes, exact),
                    plus(p.delta_bytes, exact),
                ]);
            }
            out.push_str(&finish(&t));
        }
    }
    for n in &d.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ino: u64, resident: u64) -> ObjectRec {
        ObjectRec {
            kind: kind.into(),
            id: Some(ino.to_string()),
            inode: ino,
            dev: Some("0:1".into()),
            namespace: None,
            size_bytes: 1 << 20,
            resident_bytes: resident,
            swap_bytes: 0,
            name: Some("x".into()),
            path: None,
            key: None,
            deleted: None,
            owner: None,
        }
    }

    fn doc(objects: Vec<ObjectRec>) -> ObjectsDoc {
        ObjectsDoc {
            schema: 1,
            meminfo_shmem_bytes: 0,
            objects_resident_bytes: None,
            unexplained_bytes: None,
            objects,
        }
    }

    #[test]
    fn objects_by_identity() {
        let a = doc(vec![
            obj("memfd", 1, 4096),
            obj("memfd", 2, 8192),
            obj("memfd", 3, 100),
        ]);
        let mut swapped = obj("memfd", 3, 50);
        swapped.swap_bytes = 50;
        let b = doc(vec![
            obj("memfd", 1, 3 * 4096),
            obj("memfd", 4, 4096),
            swapped,
            // Same inode number on another device: another object.
            ObjectRec {
                dev: Some("0:2".into()),
                ..obj("memfd", 2, 8192)
            },
        ]);
        let d = object_diffs(&a, &b, 0);
        let by = |id: &str, dev: &str| {
            d.iter()
                .find(|o| o.id == id && o.dev.as_deref() == Some(dev))
                .unwrap()
        };
        assert_eq!(by("1", "0:1").change, Change::Grew);
        assert_eq!(by("1", "0:1").resident_delta_bytes, 8192);
        assert_eq!(by("2", "0:1").change, Change::Disappeared);
        assert_eq!(by("2", "0:1").resident_delta_bytes, -8192);
        assert_eq!(by("2", "0:2").change, Change::Appeared);
        assert_eq!(by("4", "0:1").change, Change::Appeared);
        assert_eq!(
            by("3", "0:1").change,
            Change::Changed,
            "swapped out, not shrunk"
        );
        assert_eq!(d.len(), 5);
        // Largest change first.
        assert_eq!(d[0].held_delta().unsigned_abs(), 8192);
        // --min-change hides the small ones.
        let d = object_diffs(&a, &b, 8192);
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|o| o.id != "3" && o.id != "4"));
    }

    #[test]
    fn processes_by_pid_and_command() {
        let p = |pid, comm: &str, b| ProcRec {
            pid,
            comm: comm.into(),
            user: "u".into(),
            shared_charged_bytes: b,
        };
        let a = ProcsDoc {
            charge: "owner".into(),
            processes: vec![
                p(1, "init", 0),
                p(10, "php-fpm", 100),
                p(11, "old", 5),
                p(12, "idle", 0),
            ],
        };
        let b = ProcsDoc {
            charge: "owner".into(),
            processes: vec![p(1, "init", 0), p(10, "php-fpm", 300), p(11, "new", 7)],
        };
        let d = proc_diffs(&a, &b, 0);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(
            (d[0].pid, d[0].change, d[0].delta_bytes),
            (10, Change::Grew, 200)
        );
        assert!(d
            .iter()
            .any(|x| x.comm == "old" && x.change == Change::Disappeared));
        assert!(d
            .iter()
            .any(|x| x.comm == "new" && x.change == Change::Appeared));
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(span(3 * 3600 + 120), "3 h 2 min");
    }
}
