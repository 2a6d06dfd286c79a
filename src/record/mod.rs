//! `shmwho record FILE` and `shmwho diff A B`: what grew overnight.
//!
//! A record is the objects and procs JSON documents of one scan in one file (format in
//! docs/json.md), written atomically. `diff` matches objects by identity (kind, device, inode or
//! shmid, namespace) and processes by pid and command, and reports what appeared, disappeared,
//! grew or shrank.
//!
//! The documents are the [`crate::schema`] types: `record` writes them, `diff` reads them back
//! ([`load`]), compares them ([`diff::compare`], pure) and prints ([`text`]).

pub mod diff;
#[cfg(test)]
mod tests;
pub mod text;

use crate::account::{self, Policy};
use crate::collect::Options;
use crate::render::{self, units::Units};
use crate::report::{ObjectQuery, ProcQuery};
use crate::schema::{ObjectsDoc, RecordDoc, SCHEMA};
use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};

pub use crate::schema::RECORD_SCHEMA;

/// What `shmwho record` was asked for.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Where to write (`-`: stdout).
    pub file: PathBuf,
    /// Charging policy of the per-process figures.
    pub charge: Policy,
    /// Where procfs and the host's files are.
    pub paths: crate::collect::HostPaths,
}

/// What `shmwho diff` was asked for.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// The earlier record.
    pub a: PathBuf,
    /// The later record.
    pub b: PathBuf,
    /// Leave out changes smaller than this many bytes.
    pub min_change: u64,
    /// JSON instead of text.
    pub json: bool,
    /// Human units or exact byte counts.
    pub units: Units,
}

/// `shmwho record FILE`: one scan, written atomically.
pub fn record(args: RecordOptions, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    crate::privilege::check_paths(&args.paths)?;
    let snap = crate::privilege::scan_once(&Options {
        paths: args.paths.clone(),
        smaps: args.charge.needs_smaps(),
        cgroups: true,
        bpf: true,
        repeated: false,
        counters: true,
        titles: true,
        pss_totals_only: false,
    })?;
    let acc = account::account(&snap, args.charge);
    let doc = record_doc(
        &acc,
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        &rustix::system::uname().nodename().to_string_lossy(),
    );
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    if args.file.as_os_str() == "-" {
        out.write_all(text.as_bytes())?;
        return Ok(());
    }
    crate::output_file::write_atomic(&args.file, text.as_bytes(), 0o644)
}

/// The record document of one accounted scan.
pub fn record_doc(acc: &account::Accounted<'_>, recorded_at: u64, hostname: &str) -> RecordDoc {
    let procs = render::json::procs_doc(acc, &ProcQuery::all(acc.snapshot.with_smaps));
    RecordDoc {
        schema: RECORD_SCHEMA,
        recorded_at: Some(recorded_at),
        hostname: Some(hostname.to_string()),
        charge: Some(acc.policy.as_str().to_string()),
        objects: render::json::objects_doc(acc, &ObjectQuery::default()),
        procs: Some(procs),
    }
}

/// Reads a record, or a plain `shmwho --json` objects document (as a record without
/// processes, time or host), and how many byte figures beyond any host's memory were capped.
pub fn load(path: &Path) -> anyhow::Result<(RecordDoc, usize)> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let capped = crate::collect::bounds::cap_json_bytes(&mut value);
    let is_record = value.get("objects").is_some_and(|o| o.is_object());
    let loaded = if is_record {
        let schema = value.get("schema").and_then(|s| s.as_u64());
        if schema != Some(u64::from(RECORD_SCHEMA)) {
            bail!(
                "{}: record schema {} is not supported (this shmwho reads {RECORD_SCHEMA})",
                path.display(),
                schema.map_or("(none)".to_string(), |s| s.to_string())
            );
        }
        serde_json::from_value::<RecordDoc>(value)
            .with_context(|| format!("{}: not a shmwho record", path.display()))?
    } else {
        let objects: ObjectsDoc = serde_json::from_value(value).with_context(|| {
            format!(
                "{}: neither a shmwho record nor `shmwho --json` output",
                path.display()
            )
        })?;
        RecordDoc {
            schema: RECORD_SCHEMA,
            recorded_at: None,
            hostname: None,
            charge: None,
            objects,
            procs: None,
        }
    };
    if loaded.objects.schema != SCHEMA {
        bail!(
            "{}: objects schema {} is not supported (this shmwho reads {SCHEMA})",
            path.display(),
            loaded.objects.schema,
        );
    }
    Ok((loaded, capped))
}

/// `shmwho diff A B`: reads both, compares, prints.
pub fn diff(args: DiffOptions, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let (a, capped_a) = load(&args.a)?;
    let (b, capped_b) = load(&args.b)?;
    let mut doc = diff::compare(
        &a,
        &args.a.display().to_string(),
        &b,
        &args.b.display().to_string(),
        args.min_change,
    );
    let capped = [("A", capped_a), ("B", capped_b)]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(side, n)| {
            format!(
                "{side} holds {n} byte figure(s) beyond 8 PiB, more than any host has: capped at 8 PiB"
            )
        });
    doc.notes.splice(0..0, capped);
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        s
    } else {
        text::table(&doc, args.units)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
