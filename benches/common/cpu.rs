//! CPU time of this process, from `/proc`: what a bench charges to the side it measures.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// utime + stime of one `stat` line, and its thread name (`comm`).
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    // Fields after the name: state is the 3rd field of the line, utime the 14th, stime the 15th.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU used so far by this process, and by its threads named `exclude` (kept apart: the local
/// cluster's route proxies run in the bench's process, but are no part of a publisher).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub process: Duration,
    pub excluded: Duration,
}

impl CpuSample {
    /// Reads `/proc/self/stat` and each `/proc/self/task/*/stat`.
    pub fn now(exclude: &str) -> CpuSample {
        let hz = ticks_per_second();
        let to_duration = |ticks: u64| Duration::from_micros(ticks * 1_000_000 / hz);
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
            .map_or(0, |(_, t)| t);
        let mut excluded = 0;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                if let Some((comm, ticks)) = parse_stat(&stat) {
                    if comm.starts_with(exclude) {
                        excluded += ticks;
                    }
                }
            }
        }
        CpuSample {
            process: to_duration(process),
            excluded: to_duration(excluded),
        }
    }

    /// CPU between `earlier` and `self`, without the excluded threads.
    pub fn since(&self, earlier: &CpuSample) -> Duration {
        (self.process.saturating_sub(earlier.process))
            .saturating_sub(self.excluded.saturating_sub(earlier.excluded))
    }

    /// The excluded threads' CPU between `earlier` and `self`.
    pub fn excluded_since(&self, earlier: &CpuSample) -> Duration {
        self.excluded.saturating_sub(earlier.excluded)
    }
}

/// The median of `values` (the upper one of an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}
