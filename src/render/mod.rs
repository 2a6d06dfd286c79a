//! Front ends: each takes an accounted snapshot and the report's rows and returns text. Units
//! and escaping live only here.

pub mod cgroups;
pub mod fit;
pub mod json;
pub mod metrics;
pub mod pods;
pub mod table;
pub mod units;

#[cfg(test)]
mod tests;

use crate::account::Accounted;
use crate::report::{ObjectQuery, ProcQuery};

/// How the text views print figures and hints.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Human units or exact byte counts.
    pub units: units::Units,
    /// Effective uid, to word the privilege hint.
    pub euid: u32,
    /// Width the tables must fit ([`fit::terminal_width`]); none: full rows.
    pub width: Option<usize>,
    /// Leave out the header line (`--no-headings`).
    pub no_headings: bool,
    /// `-o`: the objects table's columns.
    pub object_columns: Option<Vec<crate::report::ObjectColumn>>,
    /// `-o`: the procs table's columns.
    pub proc_columns: Option<Vec<crate::report::ProcColumn>>,
}

/// A way of printing the listing views, as ripgrep's printers or hyperfine's exporters: a new
/// format is one implementation of this trait and one arm in [`output`].
pub trait Output {
    /// The objects view.
    fn objects(&self, acc: &Accounted, query: &ObjectQuery) -> String;
    /// The procs view.
    fn procs(&self, acc: &Accounted, query: &ProcQuery) -> String;
}

/// Aligned text tables for a terminal.
pub struct TableOutput(pub RenderOptions);

impl Output for TableOutput {
    fn objects(&self, acc: &Accounted, query: &ObjectQuery) -> String {
        table::objects(acc, query, &self.0)
    }

    fn procs(&self, acc: &Accounted, query: &ProcQuery) -> String {
        table::procs(acc, query, &self.0)
    }
}

/// JSON documents, schema 1 (docs/json.md): always bytes.
pub struct JsonOutput;

impl Output for JsonOutput {
    fn objects(&self, acc: &Accounted, query: &ObjectQuery) -> String {
        json::objects(acc, query)
    }

    fn procs(&self, acc: &Accounted, query: &ProcQuery) -> String {
        json::procs(acc, query)
    }
}

/// The output `--json` asks for, else a table.
pub fn output(json: bool, opts: RenderOptions) -> Box<dyn Output> {
    if json {
        Box::new(JsonOutput)
    } else {
        Box::new(TableOutput(opts))
    }
}

/// A deadline as people write it: `2 s`, `500 ms`.
pub(crate) fn duration(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
