//! `shmwho man` and `shmwho completions SHELL`: the man page and shell completion scripts,
//! generated from the same clap definition that parses the command line, so they cannot drift
//! from it. Packaging (packaging/build-deb.sh) runs these to produce the files the .deb installs.

use clap::CommandFactory as _;
use std::io::Write;

/// Shells `shmwho completions` writes a script for.
pub use clap_complete::Shell;

/// Writes the roff man page (section 1) to `out`: the top-level page, then a COMMANDS section
/// with each subcommand's synopsis, options and examples, so `man shmwho` documents every flag.
pub fn man(out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    // Building sets each subcommand's bin name ("shmwho procs") for its synopsis.
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut buf = Vec::new();
    page.render_title(&mut buf)?;
    page.render_name_section(&mut buf)?;
    page.render_synopsis_section(&mut buf)?;
    page.render_description_section(&mut buf)?;
    page.render_options_section(&mut buf)?;
    // clap_mangen heads after_help "EXTRA"; ours is examples and a note on privileges.
    buf.extend_from_slice(b".SH EXAMPLES\n");
    buf.extend_from_slice(after_help(&page)?.as_bytes());
    buf.extend_from_slice(b".SH COMMANDS\n");
    subcommands(&cmd, &mut buf)?;
    page.render_version_section(&mut buf)?;
    out.write_all(&buf)?;
    Ok(())
}

/// The after_help text without its heading, unfilled: its examples are aligned in columns.
fn after_help(page: &clap_mangen::Man) -> anyhow::Result<String> {
    let mut extra = Vec::new();
    page.render_extra_section(&mut extra)?;
    let extra = String::from_utf8(extra)?;
    let body: Vec<&str> = extra.lines().filter(|l| !l.starts_with(".SH ")).collect();
    Ok(format!(".nf\n{}\n.fi\n", body.join("\n")))
}

/// One `.SS` subsection per visible subcommand, depth first (`lab pool` after `lab`).
fn subcommands(cmd: &clap::Command, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let name = sub.get_bin_name().unwrap_or(sub.get_name());
        let page = clap_mangen::Man::new(sub.clone());
        let mut part = Vec::new();
        page.render_synopsis_section(&mut part)?;
        page.render_description_section(&mut part)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            page.render_options_section(&mut part)?;
        }
        if sub.get_after_help().is_some() {
            part.extend_from_slice(b".PP\n");
            part.extend_from_slice(after_help(&page)?.as_bytes());
        }
        writeln!(buf, ".SS \"{name}\"")?;
        // The parts' own section headings (SYNOPSIS, OPTIONS, EXTRA) would end the
        // subsection: a paragraph break instead.
        for line in String::from_utf8(part)?.lines() {
            if line.starts_with(".SH ") {
                writeln!(buf, ".PP")?;
            } else {
                writeln!(buf, "{line}")?;
            }
        }
        subcommands(sub, buf)?;
    }
    Ok(())
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    // Into a buffer first: clap_complete panics on a write error (a closed pipe), and a
    // half-written script is worse than none.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "shmwho", &mut buf);
    out.write_all(&buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_names_every_subcommand() {
        let mut out = Vec::new();
        man(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{}", &page[..80]);
        assert!(page.contains(".TH shmwho 1"), "no .TH header");
        // Flags of subcommands and of a nested one are documented, not only the top level's.
        for flag in ["\\-\\-textfile", "\\-\\-charge", "\\-\\-workers"] {
            assert!(page.contains(flag), "man page lacks {flag}");
        }
        for sub in [
            "objects", "procs", "show", "top", "export", "record", "diff", "lab",
        ] {
            assert!(
                page.contains(&format!(".SS \"shmwho {sub}\"")),
                "man page lacks {sub}"
            );
        }
    }

    #[test]
    fn completions_for_every_shell() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            // A flag of a subcommand, so the script covers more than the top level.
            assert!(script.contains("textfile"), "{shell}: no export --textfile");
            assert!(script.contains("shmwho"), "{shell}");
        }
    }
}
