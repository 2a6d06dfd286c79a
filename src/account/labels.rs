//! Names a person recognises ("PHP opcache", "PostgreSQL main shared memory"), given to objects
//! by rules kept as data: the built-in ones in `labels.toml` next to this file, the user's in
//! `/etc/shmwho/labels.toml` and `$XDG_CONFIG_HOME/shmwho/labels.toml` (docs/labels.md). The
//! first rule that matches names the object; [`labels`] is a pure function of the snapshot.

use crate::model::{Object, ObjectDetail, ObjectKind, Pid, Process, Snapshot};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The built-in rules, parsed at startup like a user's file.
const BUILTIN: &str = include_str!("labels.toml");

/// Where the system-wide rules are; tests point `SHMWHO_SYSTEM_LABELS` elsewhere. Read with
/// the caller's rights (after `privilege::init`), so naming a path gains nothing.
pub const SYSTEM_RULES: &str = "/etc/shmwho/labels.toml";

/// A rules file could not be used: one line naming the file and the line.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct RulesError {
    /// The file.
    pub path: String,
    /// 1-based line of the fault (1 when the parser gave no position).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Whose command and title a rule looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Whose {
    /// The owner, then every holder.
    #[default]
    Any,
    /// The owner only.
    Owner,
    /// The holders only.
    Holder,
}

/// A size in a rules file: bytes, or text such as "8 MiB".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => s
                .parse::<bytesize::ByteSize>()
                .map(|b| Size(b.as_u64()))
                .map_err(|e| serde::de::Error::custom(format!("bad size {s:?}: {e}"))),
        }
    }
}

/// One rule. Every field given must match (an empty list is no condition); within a list,
/// any pattern may match.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The label, with `{comm}`, `{title}`, `{pid}`, `{name}`, `{kind}` and
    /// `{arg:--PREFIX|DEFAULT}` (the value of the matched process's `--PREFIX=` argument).
    label: String,
    /// Kinds it applies to (`anon_shared`, `sysv`, `memfd`, `posix_shm`, `tmpfs`...).
    #[serde(default)]
    kind: Vec<ObjectKind>,
    /// Patterns (`*`, `?`) for the memfd name, the file's path or the SysV key (`0x0052e2c1`).
    #[serde(default)]
    name: Vec<String>,
    /// Patterns for the process's command name (15 characters, as `ps -o comm`).
    #[serde(default)]
    command: Vec<String>,
    /// Patterns for the process's title (its command line).
    #[serde(default)]
    title: Vec<String>,
    /// Whose command and title `command` and `title` look at.
    #[serde(default)]
    process: Whose,
    /// Size at least this.
    min_size: Option<Size>,
    /// Size below this.
    max_size: Option<Size>,
}

/// Rules in the order they are tried.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

impl Rules {
    /// Parses one rules file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Rules, RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            RulesError {
                path: path.to_string(),
                line,
                message: e.message().trim().replace('\n', " "),
            }
        })?;
        for (i, r) in file.rule.iter().enumerate() {
            if let Some(msg) = check_template(&r.label) {
                return Err(RulesError {
                    path: path.to_string(),
                    line: rule_line(text, i),
                    message: msg,
                });
            }
        }
        Ok(Rules { rules: file.rule })
    }

    /// The built-in rules.
    pub fn builtin() -> Rules {
        Rules::parse(BUILTIN, "(built-in labels.toml)").expect("the built-in rules parse")
    }

    /// The user's rules (`$XDG_CONFIG_HOME/shmwho/labels.toml`, then the system file), then
    /// the built-in ones. A missing file is no rules, and so is one in a directory the caller
    /// cannot search (`setpriv`/`su` keep another user's `$HOME`); a file the caller may not read
    /// is skipped with a warning on stderr; any other failure, or a malformed file, is an error.
    pub fn load(system: &Path, user: Option<&Path>) -> Result<Rules, RulesError> {
        let mut all = Vec::new();
        for path in user.into_iter().chain([system]) {
            match std::fs::read_to_string(path) {
                Ok(text) => all.extend(Rules::parse(&text, &path.display().to_string())?.rules),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    // stat needs only search rights on the directories: if it fails too, the
                    // file cannot be the caller's own and is as good as missing.
                    if std::fs::metadata(path).is_ok() {
                        eprintln!(
                            "shmwho: warning: {}: {e}; its label rules are not used",
                            path.display()
                        );
                    }
                }
                Err(e) => {
                    return Err(RulesError {
                        path: path.display().to_string(),
                        line: 1,
                        message: e.to_string(),
                    })
                }
            }
        }
        all.extend(Rules::builtin().rules);
        Ok(Rules { rules: all })
    }

    /// [`Rules::load`] from the usual places: `SHMWHO_SYSTEM_LABELS` or [`SYSTEM_RULES`],
    /// and `$XDG_CONFIG_HOME` or `~/.config`.
    pub fn load_default() -> Result<Rules, RulesError> {
        let system = std::env::var_os("SHMWHO_SYSTEM_LABELS")
            .map_or_else(|| PathBuf::from(SYSTEM_RULES), PathBuf::from);
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        let user = config.map(|c| c.join("shmwho/labels.toml"));
        Rules::load(&system, user.as_deref())
    }
}

/// The line where rule `i` (0-based) starts, for errors found after parsing.
fn rule_line(text: &str, i: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[rule]]"))
        .nth(i)
        .map_or(1, |(n, _)| n + 1)
}

/// What is wrong with a label template, if anything.
fn check_template(t: &str) -> Option<String> {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Some(format!("unclosed '{{' in label {t:?}"));
        };
        let field = &rest[open + 1..open + close];
        let known = matches!(field, "comm" | "title" | "pid" | "name" | "kind")
            || field.starts_with("arg:");
        if !known {
            return Some(format!(
                "unknown field {{{field}}} in label {t:?} (comm, title, pid, name, kind, arg:--PREFIX|DEFAULT)"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    None
}

static ACTIVE: OnceLock<Rules> = OnceLock::new();

/// Makes `rules` the ones [`active`] returns (the CLI, once, after loading the files).
pub fn install(rules: Rules) {
    let _ = ACTIVE.set(rules);
}

/// The installed rules; the built-in ones when none were installed (tests, the library).
pub fn active() -> &'static Rules {
    ACTIVE.get_or_init(Rules::builtin)
}

/// `*` (any run) and `?` (one character) glob, on whole strings. On bytes where both are
/// ASCII: the exporter matches every rule against every holder's command on each scrape, and
/// collecting both into `Vec<char>` was ~4% of a scrape's CPU at 10,000 holders (`perf`).
pub fn glob(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return glob_in(pattern.as_bytes(), text.as_bytes(), b'?', b'*');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_in(&p, &t, '?', '*')
}

/// [`glob`] over characters of any kind, `one` and `run` being its wildcards.
fn glob_in<C: Copy + PartialEq>(p: &[C], t: &[C], one: C, run: C) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == run {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == run)
}

/// The text `name` patterns match: memfd name, path, or SysV key.
fn name_text(o: &Object) -> Option<String> {
    match &o.detail {
        ObjectDetail::AnonShared => None,
        ObjectDetail::Sysv { key, .. } => key.map(|k| k.to_string()),
        ObjectDetail::Memfd { name } => Some(name.clone()),
        ObjectDetail::PosixShm(f) | ObjectDetail::Tmpfs(f) | ObjectDetail::Hugetlbfs(f) => {
            Some(f.path.to_string_lossy().into_owned())
        }
    }
}

fn any(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| glob(p, text))
}

impl Rule {
    /// The label for `o` owned by `owner`, when this rule matches.
    fn apply(&self, snap: &Snapshot, o: &Object, owner: Option<Pid>) -> Option<String> {
        if !self.kind.is_empty() && !self.kind.contains(&o.kind()) {
            return None;
        }
        if self.min_size.is_some_and(|s| o.size_bytes < s.0)
            || self.max_size.is_some_and(|s| o.size_bytes >= s.0)
        {
            return None;
        }
        let name = name_text(o);
        if !self.name.is_empty() && !name.as_deref().is_some_and(|n| any(&self.name, n)) {
            return None;
        }
        let wants_process = !self.command.is_empty() || !self.title.is_empty();
        let process_ok = |p: &Process| {
            (self.command.is_empty() || any(&self.command, &p.comm))
                && (self.title.is_empty()
                    || p.title.as_deref().is_some_and(|t| any(&self.title, t)))
        };
        let owners = owner.filter(|_| self.process != Whose::Holder);
        let holders = o
            .holder_pids()
            .into_iter()
            .filter(|_| self.process != Whose::Owner);
        let matched = owners
            .into_iter()
            .chain(holders)
            .filter_map(|pid| snap.process(pid))
            .find(|p| process_ok(p));
        if wants_process && matched.is_none() {
            return None;
        }
        Some(expand(&self.label, o, name.as_deref(), matched))
    }
}

/// The label template filled in.
fn expand(t: &str, o: &Object, name: Option<&str>, p: Option<&Process>) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let field = &rest[open + 1..close];
        match field {
            "comm" => out.push_str(p.map_or("", |p| &p.comm)),
            "title" => out.push_str(p.map_or("", |p| p.label())),
            "pid" => out.push_str(&p.map_or(String::new(), |p| p.pid.to_string())),
            "name" => out.push_str(name.unwrap_or("")),
            "kind" => out.push_str(o.kind().as_str()),
            f => {
                if let Some(spec) = f.strip_prefix("arg:") {
                    let (prefix, default) = spec.split_once('|').unwrap_or((spec, ""));
                    let value = p
                        .and_then(|p| p.title.as_deref())
                        .and_then(|t| {
                            t.split(' ')
                                .find_map(|a| a.strip_prefix(prefix)?.strip_prefix('='))
                        })
                        .unwrap_or(default);
                    out.push_str(value);
                }
            }
        }
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The label of every object (by index), from the first matching rule.
pub fn labels(snap: &Snapshot, owners: &[Option<Pid>], rules: &Rules) -> Vec<Option<String>> {
    snap.objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let owner = owners.get(i).copied().flatten();
            rules.rules.iter().find_map(|r| r.apply(snap, o, owner))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, process, snapshot};
    use crate::model::FileDetail;

    fn titled(pid: Pid, start: u64, comm: &str, title: &str) -> Process {
        Process {
            comm: comm.into(),
            title: Some(title.into()),
            ..process(pid, start)
        }
    }

    #[test]
    fn builtin_rules_parse_and_glob_works() {
        assert!(Rules::builtin().rules.len() > 10);
        assert!(glob("php-fpm*", "php-fpm8.2"));
        assert!(glob(
            "/dev/shm/PostgreSQL.*",
            "/dev/shm/PostgreSQL.1804289383"
        ));
        assert!(!glob("postgres", "postgres2"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("?", "é"));
        assert!(!glob("?", "ab") && glob("a?c", "abc") && glob("*", ""));
        assert!(glob("é*", "été") && !glob("e*", "été"));
    }

    #[test]
    fn php_fpm_opcache_and_scoreboard() {
        let mut big = object(1, 64 << 20, &[10, 11]);
        big.size_bytes = 128 << 20;
        let small = object(2, 4096, &[10, 11]);
        let snap = snapshot(
            vec![
                titled(
                    10,
                    100,
                    "php-fpm8.2",
                    "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
                ),
                titled(11, 200, "php-fpm8.2", "php-fpm: pool www"),
            ],
            vec![big, small],
        );
        let l = labels(&snap, &[Some(10), Some(10)], &Rules::builtin());
        assert_eq!(l[0].as_deref(), Some("PHP opcache"));
        assert_eq!(l[1].as_deref(), Some("PHP-FPM scoreboard"));
        // Owned by something else: no label.
        let l = labels(&snap, &[None, None], &Rules::builtin());
        assert_eq!(l, vec![None, None]);
    }

    #[test]
    fn chromium_type_from_the_holder_title_and_postgres_dsm() {
        let mut memfd = object(1, 4096, &[20]);
        memfd.detail = ObjectDetail::Memfd {
            name: "shared-memory-region".into(),
        };
        let mut dsm = object(2, 4096, &[30]);
        dsm.detail = ObjectDetail::PosixShm(FileDetail {
            path: "/dev/shm/PostgreSQL.2103551364".into(),
            deleted: false,
            mount_point: Some("/dev/shm".into()),
        });
        let snap = snapshot(
            vec![
                titled(
                    20,
                    1,
                    "chrome",
                    "/opt/google/chrome/chrome --type=renderer --lang=en",
                ),
                titled(30, 1, "postgres", "postgres: checkpointer"),
            ],
            vec![memfd, dsm],
        );
        let l = labels(&snap, &[Some(20), Some(30)], &Rules::builtin());
        assert_eq!(l[0].as_deref(), Some("Chromium shared memory (renderer)"));
        assert_eq!(l[1].as_deref(), Some("PostgreSQL dynamic shared memory"));
    }

    #[test]
    fn user_rules_come_first_and_templates_expand() {
        let user = Rules::parse(
            r#"
[[rule]]
label = "cache of {title} ({pid}, {kind})"
title = ["myapp *"]
min_size = 4096
"#,
            "u.toml",
        )
        .unwrap();
        let rules = Rules {
            rules: user
                .rules
                .into_iter()
                .chain(Rules::builtin().rules)
                .collect(),
        };
        let snap = snapshot(
            vec![titled(5, 1, "myapp", "myapp --serve")],
            vec![object(1, 8192, &[5])],
        );
        let l = labels(&snap, &[Some(5)], &rules);
        assert_eq!(
            l[0].as_deref(),
            Some("cache of myapp --serve (5, anon_shared)")
        );
    }

    #[test]
    fn missing_files_are_no_rules() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("none.toml");
        let r = Rules::load(&none, Some(&dir.path().join("nor/this.toml"))).unwrap();
        assert_eq!(r.rules.len(), Rules::builtin().rules.len());
        let user = dir.path().join("u.toml");
        std::fs::write(&user, "[[rule]]\nlabel = \"mine\"\n").unwrap();
        let r = Rules::load(&none, Some(&user)).unwrap();
        assert_eq!(r.rules[0].label, "mine");
        std::fs::write(&user, "[[rule]]\nlabel = \"{nope}\"\n").unwrap();
        assert!(Rules::load(&none, Some(&user)).is_err());
    }

    #[test]
    fn malformed_files_name_file_and_line() {
        let e = Rules::parse(
            "[[rule]]\nlabel = \"x\"\nkind = [\"nope\"]\n",
            "/etc/x.toml",
        )
        .unwrap_err();
        assert_eq!((e.path.as_str(), e.line), ("/etc/x.toml", 3), "{e}");
        let e = Rules::parse("[[rule]]\nlabel = \"x\"\ncolour = 1\n", "f").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().starts_with("f:3: "), "{e}");
        let e = Rules::parse(
            "[[rule]]\nlabel = \"x\"\n[[rule]]\nlabel = \"{bad}\"\n",
            "f",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = Rules::parse("[[rule]]\nlabel = \"x\"\nmin_size = \"lots\"\n", "f").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = Rules::parse("[[rule]\n", "f").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }
}
