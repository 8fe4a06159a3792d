//! What the whole-process benchmarks (`harness = false`) share: their knobs from the environment and
//! their entry point.

use std::future::Future;

/// The environment variable `name` as a number, or `default` when unset or not a number.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `bench` on a multi-threaded runtime, unless the command line names another benchmark:
/// `cargo bench` passes `--bench`, and a filter that does not name `name` was meant for another one.
pub fn run<F>(name: &str, bench: impl FnOnce() -> F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !name.contains(a.as_str()))
    {
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}
