//! Command-line behaviour: errors, help, exact-byte tables.

mod common;

use common::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_pid_is_one_line_error() {
    for args in [
        &["procs", "--pid", "999999999"][..],
        &["--pid", "999999999"][..],
        &["procs", "--json", "--pid", "999999999"][..],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_ne!(out.status.code(), Some(2), "not a usage error: {args:?}");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("shmwho:"), "{args:?}: {err:?}");
        assert!(err.contains("999999999"), "{err:?}");
        assert!(out.stdout.is_empty(), "nothing on stdout on error");
    }
}

#[test]
fn unknown_flag_is_usage_error() {
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--bogus"));
    let out = run(&["procs", "--charge", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_has_examples() {
    for args in [&["--help"][..], &["procs", "--help"][..]] {
        let out = run(args);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples"), "{args:?}:\n{text}");
    }
    let text = String::from_utf8_lossy(&run(&["procs", "--help"]).stdout).into_owned();
    for policy in ["owner", "split", "touched"] {
        assert!(text.contains(policy), "procs --help names policy {policy}");
    }
}

/// `--bytes` prints our object's exact size and resident as integers in its row.
#[test]
fn bytes_table_shows_exact_figures() {
    let pg = page();
    let (n, k) = (47u64, 19u64);
    let name = format!("shmwho-cli-{}", unique());
    let m = Memfd::new(&name, n * pg + 5);
    pwrite_pages(m.raw(), 1, k);
    let (_, ino) = m.identity();
    let out = run(&["--bytes", "--kind", "memfd"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!("memfd:{name}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().any(|t| t == needle))
        .unwrap_or_else(|| panic!("no row for {needle}:\n{text}"));
    let t: Vec<&str> = line.split_whitespace().collect();
    let me = my_pid().to_string();
    // KIND ID NAME SIZE RESIDENT SWAP HOLDERS OWNER
    assert_eq!(t[0], "memfd", "{line}");
    assert_eq!(t[1], ino.to_string(), "{line}");
    assert_eq!(t[3], (n * pg + 5).to_string(), "{line}");
    assert_eq!(t[4], (k * pg).to_string(), "{line}");
    assert_eq!(t[5], "0", "{line}");
    assert_eq!(t[6], "1", "{line}");
    assert_eq!(t[7], me, "{line}");
    assert!(!line.contains("iB"), "no human units with --bytes: {line}");

    // Without --bytes the same row is in human units.
    let out = run(&["--kind", "memfd"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().any(|t| t == needle))
        .expect("row");
    assert!(line.contains("KiB"), "{line}");
}
