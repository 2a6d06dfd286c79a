//! One pane of the live view for any row type: the objects pane and the processes pane are the
//! same code, driven by the report's column enums ([`ObjectColumn`], [`ProcColumn`]).

use super::rows::{Fig, LiveObject, LiveProc, Trend};
use crate::report::{Align, ObjectColumn, ProcColumn, SortKey};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A value of a top row, before drawing.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text, already escaped for the terminal.
    Text(Cow<'a, str>),
    /// A count or an id.
    Count(u64),
    /// A figure with its change; `estimate` marks a lower bound.
    Fig {
        /// The figure.
        fig: Fig,
        /// Marked `~`.
        estimate: bool,
    },
    /// A figure read only sometimes (PSS): `-` when absent.
    Maybe(Option<u64>),
}

impl Value<'_> {
    /// What sorting compares: figures and counts; 0 for text and absent figures.
    pub fn figure(&self) -> i128 {
        match *self {
            Value::Count(n) => n.into(),
            Value::Fig { fig, .. } => fig.now.into(),
            Value::Maybe(v) => v.unwrap_or(0).into(),
            Value::Text(_) => 0,
        }
    }
}

/// A row type the generic pane can draw and sort.
pub trait PaneRow {
    /// The report's column enum for this row type.
    type Column: crate::report::Column;
    /// The value in a column (columns the live view does not carry are blank).
    fn value(&self, c: Self::Column) -> Value<'_>;
    /// How the row moved since the previous refresh.
    fn trend(&self) -> Trend;
    /// Not in the previous refresh.
    fn is_new(&self) -> bool;
    /// The column whose change the CHANGE column shows and `growth` sorts by.
    const CHANGE_OF: Self::Column;
    /// Header of a column in the pane (narrower than the table's where it must be).
    fn header(c: Self::Column) -> &'static str;
    /// Where a column's text sits.
    fn align(c: Self::Column) -> Align;
    /// 0: always shown; 1: only on terminals at least 100 columns wide.
    fn width_priority(c: Self::Column) -> u8;
    /// The order of two rows by a column sorted ascending (pid, command); None for figures.
    fn ascending(a: &Self, b: &Self, c: Self::Column) -> Option<Ordering>;
}

/// A column of a pane: a report column, or the change of [`PaneRow::CHANGE_OF`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaneColumn<C> {
    /// A report column.
    Data(C),
    /// `CHANGE`.
    Change,
}

/// A sort order of a pane: by a report column, or by growth since the last refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort<C> {
    /// Descending (PID and COMMAND ascending).
    By(C),
    /// Largest change of [`PaneRow::CHANGE_OF`] first (a new row counts whole).
    Growth,
}

/// The objects pane's sort orders, as `s` cycles them.
pub const OBJECT_SORTS: [Sort<ObjectColumn>; 5] = [
    Sort::By(ObjectColumn::Resident),
    Sort::Growth,
    Sort::By(ObjectColumn::Size),
    Sort::By(ObjectColumn::Swap),
    Sort::By(ObjectColumn::Holders),
];

/// The processes pane's sort orders, as `s` cycles them.
pub const PROC_SORTS: [Sort<ProcColumn>; 8] = [
    Sort::By(ProcColumn::Shared),
    Sort::Growth,
    Sort::By(ProcColumn::Total),
    Sort::By(ProcColumn::Shmem),
    Sort::By(ProcColumn::Rss),
    Sort::By(ProcColumn::Swap),
    Sort::By(ProcColumn::Pid),
    Sort::By(ProcColumn::Command),
];

impl Sort<ObjectColumn> {
    /// As the pane's title shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::By(c) => c.sort_name(),
            Sort::Growth => "growth",
        }
    }
}

impl Sort<ProcColumn> {
    /// As the pane's title shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::By(c) => c.sort_name(),
            Sort::Growth => "growth",
        }
    }
}

/// The key a row sorts on, descending.
pub fn sort_key<R: PaneRow>(r: &R, sort: Sort<R::Column>) -> i128 {
    match sort {
        Sort::By(c) => r.value(c).figure(),
        Sort::Growth => match r.value(R::CHANGE_OF) {
            Value::Fig { fig, .. } if !r.is_new() => fig.change.unwrap_or(0).into(),
            v => v.figure(),
        },
    }
}

impl PaneRow for LiveObject {
    type Column = ObjectColumn;
    const CHANGE_OF: ObjectColumn = ObjectColumn::Resident;

    fn value(&self, c: ObjectColumn) -> Value<'_> {
        let fig = |fig| Value::Fig {
            fig,
            estimate: !self.exact,
        };
        match c {
            ObjectColumn::Kind => Value::Text(self.kind.as_str().into()),
            ObjectColumn::Id => Value::Text(self.id.as_str().into()),
            // The name carries the label in the live view.
            ObjectColumn::Name | ObjectColumn::Label => Value::Text(self.name.as_str().into()),
            ObjectColumn::Size => fig(self.size),
            ObjectColumn::Resident => fig(self.resident),
            ObjectColumn::Swap => fig(self.swap),
            ObjectColumn::Holders => Value::Count(self.holder_pids as u64),
            ObjectColumn::Owner => Value::Text(match &self.owner {
                Some((pid, comm)) => format!("{pid} {comm}").into(),
                None => "-".into(),
            }),
        }
    }

    fn trend(&self) -> Trend {
        LiveObject::trend(self)
    }

    fn is_new(&self) -> bool {
        self.new
    }

    fn header(c: ObjectColumn) -> &'static str {
        match c {
            ObjectColumn::Holders => "HLD",
            c => c.header(),
        }
    }

    fn align(c: ObjectColumn) -> Align {
        c.align()
    }

    fn width_priority(c: ObjectColumn) -> u8 {
        // The detail view repeats the size.
        u8::from(c == ObjectColumn::Size)
    }

    fn ascending(_: &Self, _: &Self, _: ObjectColumn) -> Option<Ordering> {
        None
    }
}

impl PaneRow for LiveProc {
    type Column = ProcColumn;
    const CHANGE_OF: ProcColumn = ProcColumn::Shared;

    fn value(&self, c: ProcColumn) -> Value<'_> {
        let fig = |fig, estimate| Value::Fig { fig, estimate };
        // Charged from an object only estimated: a lower bound, marked ~ like the object.
        let est = self.shared_estimate;
        match c {
            ProcColumn::Pid => Value::Count(self.pid as u64),
            ProcColumn::Ppid => Value::Count(self.ppid as u64),
            ProcColumn::Procs => Value::Count(1),
            ProcColumn::User => Value::Text(self.user.as_str().into()),
            ProcColumn::Command | ProcColumn::Title => Value::Text(self.comm.as_str().into()),
            ProcColumn::Cgroup | ProcColumn::Pod | ProcColumn::Container | ProcColumn::Unit => {
                Value::Text("".into())
            }
            ProcColumn::Rss => fig(self.rss, false),
            ProcColumn::Anon => fig(self.anon, false),
            ProcColumn::File => fig(self.file, false),
            ProcColumn::Shmem => fig(self.shmem, false),
            ProcColumn::Swap => fig(self.swap, false),
            ProcColumn::Shared => fig(self.shared, est),
            ProcColumn::Total => fig(self.total, est),
            ProcColumn::Owned => Value::Count(u64::from(self.owned)),
            ProcColumn::Pss => Value::Maybe(self.pss),
            ProcColumn::Uss | ProcColumn::Unique | ProcColumn::FreedIfGone => Value::Maybe(None),
        }
    }

    fn trend(&self) -> Trend {
        LiveProc::trend(self)
    }

    fn is_new(&self) -> bool {
        self.new
    }

    fn header(c: ProcColumn) -> &'static str {
        match c {
            ProcColumn::Owned => "OWN",
            c => c.header(),
        }
    }

    fn align(c: ProcColumn) -> Align {
        c.align()
    }

    fn width_priority(c: ProcColumn) -> u8 {
        // The detail view repeats the user, PSS and the objects owned.
        u8::from(matches!(
            c,
            ProcColumn::User | ProcColumn::Pss | ProcColumn::Owned
        ))
    }

    fn ascending(a: &Self, b: &Self, c: ProcColumn) -> Option<Ordering> {
        match (c, c.sort_key()) {
            (ProcColumn::Command, _) => Some(a.comm.cmp(&b.comm).then(a.pid.cmp(&b.pid))),
            (_, SortKey::Ascending) => Some(a.pid.cmp(&b.pid)),
            (_, SortKey::Descending) => None,
        }
    }
}

/// Indices of `rows` that match the filter, sorted by `sort`; ties by `tie` (descending) then
/// by `id` (ascending). The two panes differ only in the arguments.
pub fn visible<R: PaneRow, T: Ord, I: Ord>(
    rows: &[R],
    needle_lower: &str,
    matches: impl Fn(&R, &str) -> bool,
    sort: Sort<R::Column>,
    tie: impl Fn(&R) -> T,
    id: impl Fn(&R) -> I,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len())
        .filter(|&i| matches(&rows[i], needle_lower))
        .collect();
    idx.sort_by(|&a, &b| {
        let (ra, rb) = (&rows[a], &rows[b]);
        if let Sort::By(c) = sort {
            if let Some(o) = R::ascending(ra, rb, c) {
                return o;
            }
        }
        sort_key(rb, sort)
            .cmp(&sort_key(ra, sort))
            .then(tie(rb).cmp(&tie(ra)))
            .then(id(ra).cmp(&id(rb)))
    });
    idx
}
