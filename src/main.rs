use std::io::Write;
use std::process::ExitCode;

// Not `main() -> anyhow::Result`: with RUST_BACKTRACE set that prints a backtrace for every
// user error. One line on stderr and a non-zero exit instead; a closed pipe is success.
fn main() -> ExitCode {
    let cli = shmwho::cli::Cli::from_env();
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
