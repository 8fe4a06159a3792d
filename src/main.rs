//! `aivo-load`: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = aivo_load::cli::parse();
    aivo_load::init_tracing(cli.verbose);
    let outcome = aivo_load::cli::into_command(cli).and_then(aivo_load::execute);
    match outcome {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            err.exit_status().into()
        }
    }
}
