//! Prometheus metrics from an accounted snapshot: the OpenMetrics text format for `/metrics`,
//! the 0.0.4 text format for node_exporter's textfile collector (which does not parse
//! OpenMetrics). Pure: snapshot in, text out; the exporter decides when to scan.
//!
//! Cardinality is bounded whatever the host runs: the `top_objects` largest objects get a series
//! each and the rest one `id="other"` series per kind; the `top` processes with the largest
//! charge and the `top` cgroups get a series each and the rest one `other` series.
//! Label values are escaped by prometheus-client (quotes, backslashes and newlines in names);
//! before that, [`terminal_safe`] writes other control characters and bidi overrides as
//! `\xNN` / `\u{NNNN}`, so a terminal printing a scrape is not driven by a process's names.

use crate::account::cgroup::by_cgroup;
use crate::account::Accounted;
use crate::model::{ObjectId, ObjectKind, Pid};
use crate::report::{dev_text, object_id, object_name, select_objects, ObjectQuery};
use crate::size::sum_bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// How many series of each unbounded kind to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Processes, and cgroups, with a series each; the rest are summed into `other`.
    pub top: usize,
    /// Objects with a series each; the rest are summed into one `other` series per kind.
    pub top_objects: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            top: 20,
            top_objects: 100,
        }
    }
}

/// Measured by the exporter around the scan that produced the snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScanInfo {
    /// How long the scan took.
    pub duration_seconds: f64,
    /// When the scan finished, seconds since the epoch.
    pub timestamp_seconds: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// An exposition format.
pub enum Format {
    /// OpenMetrics 1.0 text (ends with `# EOF`), what Prometheus asks for first.
    OpenMetrics,
    /// Prometheus text format 0.0.4, for node_exporter's textfile collector and old clients.
    Prometheus,
}

impl Format {
    /// The HTTP `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The metrics text of one accounted snapshot.
pub fn render(acc: &Accounted, opts: &MetricsOptions, scan: &ScanInfo, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families(acc, opts, scan)));
    let mut out = String::new();
    let encoded = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    encoded.expect("writing to a String cannot fail");
    out
}

#[derive(Clone, Copy, Debug)]
enum Value {
    U(u64),
    I(i64),
    F(f64),
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Family {
    /// Without the unit suffix, which the encoder appends.
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    fn new(name: &'static str, unit: Option<Unit>, help: &'static str) -> Family {
        Family {
            name,
            help,
            unit,
            samples: Vec::new(),
        }
    }

    fn bytes(name: &'static str, help: &'static str) -> Family {
        Family::new(name, Some(Unit::Bytes), help)
    }

    fn one(mut self, v: Value) -> Family {
        self.samples.push((Vec::new(), v));
        self
    }

    fn add(&mut self, mut labels: Labels, v: Value) {
        for (_, value) in &mut labels {
            if let Some(safe) = terminal_safe(value) {
                *value = safe;
            }
        }
        self.samples.push((labels, v));
    }
}

/// A label value with control characters other than newline (which the formats escape
/// themselves) written `\xNN`, and the bidirectional overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069, which reorder what a terminal shows) written `\u{NNNN}`; None when the value
/// holds none.
fn terminal_safe(s: &str) -> Option<String> {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(|c| (c.is_control() && c != '\n') || bidi(c)) {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if bidi(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The collect-on-scrape collector: built from one snapshot, encoded once.
#[derive(Debug)]
struct Families(Vec<Family>);

fn encode_value(
    v: Value,
    enc: prometheus_client::encoding::MetricEncoder,
) -> Result<(), std::fmt::Error> {
    match v {
        Value::U(v) => ConstGauge::new(v).encode(enc),
        Value::I(v) => ConstGauge::new(v).encode(enc),
        Value::F(v) => ConstGauge::new(v).encode(enc),
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut me =
                encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), MetricType::Gauge)?;
            if let [(labels, v)] = f.samples.as_slice() {
                if labels.is_empty() {
                    encode_value(*v, me)?;
                    continue;
                }
            }
            for (labels, v) in &f.samples {
                encode_value(*v, me.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

fn families(acc: &Accounted, opts: &MetricsOptions, scan: &ScanInfo) -> Families {
    let snap = acc.snapshot;
    let r = &acc.reconciliation;
    let policy = acc.policy.as_str();
    let comm = |pid: Pid| snap.process(pid).map_or("", |p| p.comm.as_str());

    // Objects: the largest `top_objects` by resident bytes, the rest per kind.
    let mut resident = Family::bytes(
        "shmwho_object_resident",
        "Bytes of the object in RAM (st_blocks or SysV rss; pages no process maps included)",
    );
    let mut swap = Family::bytes("shmwho_object_swap", "Bytes of the object in swap");
    let mut size = Family::bytes(
        "shmwho_object_size",
        "Size of the object (st_size or SysV size)",
    );
    let order = select_objects(acc, &ObjectQuery::default());
    let (top, rest) = order.split_at(order.len().min(opts.top_objects));
    for &i in top {
        let o = &snap.objects[i];
        let (dev, ns) = match o.id {
            ObjectId::Inode { dev, .. } => (dev_text(dev), o.foreign_ns),
            ObjectId::Sysv { .. } => (String::new(), o.foreign_ns),
        };
        let labels: Labels = vec![
            ("kind", o.kind().as_str().to_string()),
            ("dev", dev),
            ("id", object_id(o)),
            ("ns", ns.map(|n| n.to_string()).unwrap_or_default()),
            ("name", object_name(o)),
            ("owner", acc.owners[i].map(comm).unwrap_or("").to_string()),
            ("exact", o.is_exact().to_string()),
        ];
        resident.add(labels.clone(), Value::U(o.resident_bytes));
        swap.add(labels.clone(), Value::U(o.swap_bytes));
        size.add(labels, Value::U(o.size_bytes));
    }
    for kind in ObjectKind::ALL {
        let of_kind: Vec<_> = rest
            .iter()
            .map(|&i| &snap.objects[i])
            .filter(|o| o.kind() == kind)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        let labels: Labels = vec![
            ("kind", kind.as_str().to_string()),
            ("dev", String::new()),
            ("id", "other".to_string()),
            ("ns", String::new()),
            ("name", String::new()),
            ("owner", String::new()),
            ("exact", of_kind.iter().all(|o| o.is_exact()).to_string()),
        ];
        let sum = |f: fn(&&crate::model::Object) -> u64| sum_bytes(of_kind.iter().map(f));
        resident.add(labels.clone(), Value::U(sum(|o| o.resident_bytes)));
        swap.add(labels.clone(), Value::U(sum(|o| o.swap_bytes)));
        size.add(labels, Value::U(sum(|o| o.size_bytes)));
    }
    let mut count = Family::new(
        "shmwho_objects",
        None,
        "Shared-memory objects on the host, by kind (all of them, not only those with a series)",
    );
    for kind in ObjectKind::ALL {
        let n = snap.objects.iter().filter(|o| o.kind() == kind).count() as u64;
        count.add(vec![("kind", kind.as_str().to_string())], Value::U(n));
    }
    let estimated = snap.objects.iter().filter(|o| !o.is_exact()).count() as u64;

    // Processes: the `top` largest charges, the rest in `other`.
    let mut charged: Vec<(Pid, u64)> = acc
        .per_process
        .iter()
        .filter(|(_, &b)| b > 0)
        .map(|(&p, &b)| (p, b))
        .collect();
    charged.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let split = charged.len().min(opts.top);
    let mut procs = Family::bytes(
        "shmwho_process_shared_charged",
        "Shared memory charged to the process under the charge policy (top processes; the rest summed in pid=other)",
    );
    for &(pid, bytes) in &charged[..split] {
        let p = snap.process(pid);
        let cgroup = p.and_then(|p| p.cgroup.clone()).unwrap_or_default();
        // From the cgroup label's value: no more series than before.
        let w = crate::collect::container::parse(&cgroup);
        procs.add(
            vec![
                ("pid", pid.to_string()),
                ("comm", comm(pid).to_string()),
                ("user", p.map(|p| p.user.clone()).unwrap_or_default()),
                ("cgroup", cgroup),
                ("pod_uid", w.pod_uid.unwrap_or_default()),
                ("container_id", w.container_id.unwrap_or_default()),
                ("unit", w.unit.unwrap_or_default()),
                ("charge", policy.to_string()),
            ],
            Value::U(bytes),
        );
    }
    procs.add(
        vec![
            ("pid", "other".to_string()),
            ("comm", String::new()),
            ("user", String::new()),
            ("cgroup", String::new()),
            ("pod_uid", String::new()),
            ("container_id", String::new()),
            ("unit", String::new()),
            ("charge", policy.to_string()),
        ],
        Value::U(sum_bytes(charged[split..].iter().map(|c| c.1))),
    );

    // Cgroups: shmwho's charge against the kernel's memory.stat shmem.
    let cgroups = by_cgroup(acc);
    let split = cgroups.len().min(opts.top);
    let mut cg_charged = Family::bytes(
        "shmwho_cgroup_shared_charged",
        "Shared memory charged to the processes of a memory cgroup under the charge policy",
    );
    let mut cg_kernel = Family::bytes(
        "shmwho_cgroup_kernel_shmem",
        "shmem of the memory cgroup's memory.stat: pages charged to it by the kernel, which charges the cgroup of the process that first touched a page",
    );
    // The cgroup and what its path names: as many series as cgroups.
    let cg_labels = |p: &Option<String>| -> Labels {
        let path = p.clone().unwrap_or_else(|| "-".to_string());
        let w = crate::collect::container::parse(&path);
        vec![
            ("cgroup", path),
            ("pod_uid", w.pod_uid.unwrap_or_default()),
            ("container_id", w.container_id.unwrap_or_default()),
            ("unit", w.unit.unwrap_or_default()),
        ]
    };
    let with_charge = |mut l: Labels| {
        l.push(("charge", policy.to_string()));
        l
    };
    for c in &cgroups[..split] {
        cg_charged.add(with_charge(cg_labels(&c.path)), Value::U(c.charged_bytes));
        if let Some(k) = c.kernel_shmem_bytes {
            cg_kernel.add(cg_labels(&c.path), Value::U(k));
        }
    }
    if split < cgroups.len() {
        let rest = &cgroups[split..];
        let other = || -> Labels {
            let mut l = cg_labels(&None);
            l[0].1 = "other".to_string();
            l
        };
        cg_charged.add(
            with_charge(other()),
            Value::U(sum_bytes(rest.iter().map(|c| c.charged_bytes))),
        );
        cg_kernel.add(
            other(),
            Value::U(sum_bytes(rest.iter().filter_map(|c| c.kernel_shmem_bytes))),
        );
    }

    let [pod_charged, pod_kernel, pod_used, pod_size] = pod_families(acc, opts.top);

    let skipped = |reason: &str, n: u32| (vec![("reason", reason.to_string())], Value::U(n.into()));
    let mut skipped_f = Family::new(
        "shmwho_processes_skipped",
        None,
        "Processes the scan skipped: exited during it (vanished) or not readable (unreadable)",
    );
    for (labels, v) in [
        skipped("vanished", snap.notes.vanished),
        skipped("unreadable", snap.notes.unreadable),
    ] {
        skipped_f.add(labels, v);
    }

    Families(vec![
        resident,
        swap,
        size,
        count,
        Family::new(
            "shmwho_objects_estimated",
            None,
            "Objects whose figures are estimates (lower bounds): run as root for exact figures",
        )
        .one(Value::U(estimated)),
        Family::bytes(
            "shmwho_unheld",
            "Resident bytes of objects owned by nobody (no holder, no living SysV creator)",
        )
        .one(Value::U(acc.unheld_bytes)),
        procs,
        Family::new(
            "shmwho_stuck_processes",
            None,
            "Processes whose memory map is locked: a read that takes their mmap_lock did not answer in time (their series are left out or carry partial figures)",
        )
        .one(Value::U(snap.notes.stuck.len() as u64)),
        cg_charged,
        cg_kernel,
        pod_charged,
        pod_kernel,
        pod_used,
        pod_size,
        Family::bytes("shmwho_meminfo_shmem", "Shmem from /proc/meminfo").one(Value::U(r.shmem_bytes)),
        Family::bytes(
            "shmwho_shmem_explained",
            "Part of Shmem explained: resident bytes of the objects plus files on tmpfs mounts nobody holds",
        )
        .one(Value::U(r.explained_bytes)),
        Family::bytes(
            "shmwho_shmem_unexplained",
            "Shmem minus the explained part (per-CPU counter drift, memfds in flight, GPU buffers); may be negative",
        )
        .one(Value::I(r.unexplained_bytes)),
        Family::new("shmwho_processes", None, "Processes the scan listed")
            .one(Value::U(snap.processes.len() as u64)),
        skipped_f,
        Family::new(
            "shmwho_scan_mappings_reused",
            None,
            "Processes whose mappings the scan took unchanged from the previous one, without walking them",
        )
        .one(Value::U(snap.notes.mappings_reused.into())),
        Family::new(
            "shmwho_scan_duration",
            Some(Unit::Seconds),
            "Time the scan behind these figures took",
        )
        .one(Value::F(scan.duration_seconds)),
        Family::new(
            "shmwho_scan_timestamp",
            Some(Unit::Seconds),
            "When the scan behind these figures finished (seconds since the epoch)",
        )
        .one(Value::F(scan.timestamp_seconds)),
    ])
}

/// Per pod: charged and kernel shmem for the `top` pods (the rest in `pod_uid="other"`), and
/// the memory-backed volumes of those pods, used and size limit.
fn pod_families(acc: &Accounted, top: usize) -> [Family; 4] {
    let policy = acc.policy.as_str();
    let pods = crate::account::pods::by_pod(acc);
    let split = pods.len().min(top);
    let mut charged = Family::bytes(
        "shmwho_pod_shared_charged",
        "Shared memory charged to the processes of a Kubernetes pod under the charge policy",
    );
    let mut kernel = Family::bytes(
        "shmwho_pod_kernel_shmem",
        "shmem of the memory.stat of a pod's cgroup, its containers' included: what the pod pays",
    );
    let mut used = Family::bytes(
        "shmwho_pod_volume_used",
        "Bytes in use on a pod's memory-backed volume (/dev/shm, emptyDir medium Memory), from statfs",
    );
    let mut size = Family::bytes(
        "shmwho_pod_volume_size",
        "Size limit of a pod's memory-backed volume: writes past it fail (could not resize shared memory segment)",
    );
    for p in &pods[..split] {
        let uid = || ("pod_uid", p.pod_uid.clone());
        charged.add(
            vec![uid(), ("charge", policy.to_string())],
            Value::U(p.charged_bytes),
        );
        if let Some(k) = p.kernel_shmem_bytes {
            kernel.add(vec![uid()], Value::U(k));
        }
        for v in &p.volumes {
            let labels = vec![
                uid(),
                ("mount_point", v.mount_point.to_string_lossy().into_owned()),
                ("dev", crate::report::dev_text(v.dev)),
                ("empty_dir", v.empty_dir.clone().unwrap_or_default()),
            ];
            if let Some(u) = v.used_bytes {
                used.add(labels.clone(), Value::U(u));
            }
            if let Some(s) = v.size_bytes {
                size.add(labels, Value::U(s));
            }
        }
    }
    if split < pods.len() {
        let rest = &pods[split..];
        charged.add(
            vec![
                ("pod_uid", "other".to_string()),
                ("charge", policy.to_string()),
            ],
            Value::U(sum_bytes(rest.iter().map(|p| p.charged_bytes))),
        );
        kernel.add(
            vec![("pod_uid", "other".to_string())],
            Value::U(sum_bytes(rest.iter().filter_map(|p| p.kernel_shmem_bytes))),
        );
    }
    [charged, kernel, used, size]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, process, snapshot};
    use crate::account::{account, Policy};
    use crate::model::{CgroupMem, CgroupVersion, Meminfo, Snapshot};
    use std::collections::BTreeMap;

    fn host() -> Snapshot {
        let mut procs: Vec<_> = (10..16).map(|pid| process(pid, pid as u64)).collect();
        for p in &mut procs {
            p.cgroup = Some(format!("/unit{}.service", p.pid % 2));
            p.user = "www-data".into();
        }
        let mut hostile = object(7, 65536, &[12]);
        hostile.detail = crate::model::ObjectDetail::Memfd {
            name: "a\"b\\c\nd".into(),
        };
        let mut objs = vec![hostile];
        for i in 0..6 {
            objs.push(object(100 + i, 4096 * (i + 1), &[10 + i as Pid]));
        }
        let mut snap = snapshot(procs, objs);
        snap.meminfo = Meminfo {
            shmem_bytes: 1_000_000,
            ..Meminfo::default()
        };
        snap.cgroups = vec![
            CgroupMem {
                path: "/unit0.service".into(),
                version: CgroupVersion::V1,
                shmem_bytes: Some(65536),
            },
            CgroupMem {
                path: "/unit1.service".into(),
                version: CgroupVersion::V1,
                shmem_bytes: None,
            },
        ];
        snap.notes.vanished = 3;
        snap
    }

    const SCAN: ScanInfo = ScanInfo {
        duration_seconds: 0.25,
        timestamp_seconds: 1700000000.5,
    };

    /// name → [(labels, value)] from exposition text; understands the escapes we emit.
    type Parsed = BTreeMap<String, Vec<(BTreeMap<String, String>, String)>>;

    fn parse(text: &str) -> Parsed {
        let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, rest) = match line.find('{') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => {
                    let (n, v) = line.split_once(' ').unwrap();
                    out.entry(n.into())
                        .or_default()
                        .push((BTreeMap::new(), v.into()));
                    continue;
                }
            };
            let mut labels = BTreeMap::new();
            let mut chars = rest.chars().peekable();
            loop {
                let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "in {line}");
                let mut val = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next().unwrap() {
                            'n' => val.push('\n'),
                            c => val.push(c),
                        },
                        '"' => break,
                        c => val.push(c),
                    }
                }
                labels.insert(key.trim_start_matches(',').to_string(), val);
                if chars.peek() == Some(&'}') {
                    chars.next();
                    break;
                }
            }
            let value: String = chars.collect::<String>().trim().to_string();
            out.entry(name.into()).or_default().push((labels, value));
        }
        out
    }

    #[test]
    fn label_values_are_terminal_safe() {
        assert_eq!(terminal_safe("plain name\nline"), None);
        assert_eq!(
            terminal_safe("a\x1b]0;owned\x07b\tc\u{7f}\u{9b}").as_deref(),
            Some("a\\x1b]0;owned\\x07b\\x09c\\x7f\\x9b")
        );
        assert_eq!(
            terminal_safe("evil\u{202e}gpj.exe\u{2066}x\u{2069}").as_deref(),
            Some("evil\\u{202e}gpj.exe\\u{2066}x\\u{2069}")
        );
    }

    #[test]
    fn openmetrics_series_bounded_and_escaped() {
        let snap = host();
        let acc = account(&snap, Policy::Owner);
        let opts = MetricsOptions {
            top: 2,
            top_objects: 3,
        };
        let text = render(&acc, &opts, &SCAN, Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# UNIT shmwho_object_resident_bytes bytes\n"));
        // The hostile name, escaped on the wire: one line, parsed back intact.
        assert!(
            text.contains(r#"name="memfd:a\"b\\c\nd""#),
            "escaped name missing:\n{text}"
        );
        let m = parse(&text);
        let res = &m["shmwho_object_resident_bytes"];
        assert_eq!(res.len(), 3 + 1, "top 3 and one other (all anon_shared)");
        let hostile = res
            .iter()
            .find(|(l, _)| l["kind"] == "memfd")
            .expect("memfd series");
        assert_eq!(hostile.0["name"], "memfd:a\"b\\c\nd");
        assert_eq!(hostile.0["id"], "7");
        assert_eq!(hostile.0["dev"], "0:1");
        assert_eq!(hostile.0["owner"], "p12");
        assert_eq!(hostile.1, "65536");
        let other = res.iter().find(|(l, _)| l["id"] == "other").unwrap();
        assert_eq!(other.0["kind"], "anon_shared");
        // 6 anon objects of 4096·(1..=6); the two largest (24576, 20480) have series.
        assert_eq!(other.1, (4096 * (1 + 2 + 3 + 4)).to_string());
        let total: u64 = res.iter().map(|(_, v)| v.parse::<u64>().unwrap()).sum();
        assert_eq!(
            total,
            65536 + 4096 * 21,
            "series plus other add up to every object"
        );

        let procs = &m["shmwho_process_shared_charged_bytes"];
        assert_eq!(procs.len(), 2 + 1);
        assert_eq!(procs[0].0["pid"], "12", "owns the memfd and one region");
        assert_eq!(procs[0].1, (65536 + 12288).to_string());
        assert_eq!(procs[0].0["cgroup"], "/unit0.service");
        assert_eq!(procs[0].0["user"], "www-data");
        assert_eq!(procs[1].0["pid"], "15");
        assert_eq!(procs[0].0["charge"], "owner");
        assert_eq!(procs[2].0["pid"], "other");
        let sum: u64 = procs.iter().map(|(_, v)| v.parse::<u64>().unwrap()).sum();
        assert_eq!(sum, 65536 + 4096 * 21);

        let kernel = &m["shmwho_cgroup_kernel_shmem_bytes"];
        assert_eq!(kernel.len(), 1, "unit1's memory.stat was unreadable");
        assert_eq!(kernel[0].0["cgroup"], "/unit0.service");
        assert_eq!(kernel[0].1, "65536");
        assert_eq!(m["shmwho_cgroup_shared_charged_bytes"].len(), 2);
        assert_eq!(m["shmwho_meminfo_shmem_bytes"][0].1, "1000000");
        assert_eq!(
            m["shmwho_shmem_unexplained_bytes"][0].1,
            (1_000_000 - 65536 - 4096 * 21).to_string()
        );
        let skipped = &m["shmwho_processes_skipped"];
        assert!(skipped
            .iter()
            .any(|(l, v)| l["reason"] == "vanished" && v == "3"));
        assert_eq!(m["shmwho_scan_duration_seconds"][0].1, "0.25");
        assert_eq!(m["shmwho_objects"].len(), ObjectKind::ALL.len());
    }

    #[test]
    fn prometheus_text_for_the_textfile_collector() {
        let snap = host();
        let acc = account(&snap, Policy::Split);
        let text = render(&acc, &MetricsOptions::default(), &SCAN, Format::Prometheus);
        assert!(!text.contains("# EOF"), "0.0.4 has no EOF marker");
        assert!(!text.contains("# UNIT"), "0.0.4 has no UNIT lines");
        assert!(text.contains("# TYPE shmwho_object_resident_bytes gauge\n"));
        let m = parse(&text);
        assert_eq!(
            m["shmwho_object_resident_bytes"].len(),
            7,
            "all under the default bound"
        );
        assert!(m["shmwho_process_shared_charged_bytes"]
            .iter()
            .all(|(l, _)| l["charge"] == "split"));
    }

    #[test]
    fn empty_host_still_names_every_family() {
        let snap = snapshot(vec![], vec![]);
        let acc = account(&snap, Policy::Owner);
        let text = render(&acc, &MetricsOptions::default(), &SCAN, Format::OpenMetrics);
        let m = parse(&text);
        assert_eq!(
            m["shmwho_process_shared_charged_bytes"][0].0["pid"],
            "other"
        );
        assert!(!m.contains_key("shmwho_object_resident_bytes"));
        assert!(text.contains("# TYPE shmwho_object_resident_bytes gauge"));
    }

    /// Every metric the dashboard queries is one the exporter emits.
    #[test]
    fn grafana_dashboard_queries_existing_metrics() {
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/grafana-dashboard.json"))
                .expect("docs/grafana-dashboard.json is valid JSON");
        let snap = host();
        let text = render(
            &account(&snap, Policy::Owner),
            &MetricsOptions::default(),
            &SCAN,
            Format::OpenMetrics,
        );
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let mut exprs = Vec::new();
        fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v) {
                            ("expr" | "query", serde_json::Value::String(s)) => out.push(s),
                            _ => walk(v, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&dash, &mut exprs);
        assert!(exprs.len() >= 5, "the dashboard has queries");
        let mut used = 0;
        for e in exprs {
            let bytes = e.as_bytes();
            let mut i = 0;
            while let Some(at) = e[i..].find("shmwho_") {
                let start = i + at;
                let end = start
                    + e[start..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(e.len() - start);
                let name = &e[start..end];
                let preceded = start > 0
                    && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
                if !preceded {
                    assert!(
                        names.contains(&name),
                        "dashboard queries {name}, not exported"
                    );
                    used += 1;
                }
                i = end;
            }
        }
        assert!(used >= 5);
    }
}
