use std::io::Write;
use std::process::ExitCode;

// Not `main() -> anyhow::Result`: with RUST_BACKTRACE set that prints a backtrace for every
// user error. One line on stderr and a non-zero exit instead; a closed pipe is success.
fn main() -> ExitCode {
    let cli = shmwho::cli::Cli::from_env();
    raise_nofile();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = shmwho::cli::run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "shmwho: {e:#}");
            if e.downcast_ref::<shmwho::privilege::Refused>().is_some()
                || e.downcast_ref::<shmwho::cli::UsageError>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Raises the soft limit on open files to the hard one: a scan keeps a directory open per
/// process (`collect` uses up to half the soft limit), and a soft limit of 1024 would leave
/// most processes of a large host to the slower path.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
