//! What the harness process itself costs the machine it runs on: CPU time, resident memory and how
//! busy the Tokio runtime's workers are. The per-second sampler turns these into the timeline's
//! `harness_cpu`, `harness_rss_bytes` and `runtime_busy`, so a report can tell a saturated load
//! generator from a saturated cluster (the self-check in `run/selfcheck.rs` judges them).
//!
//! CPU time comes from `getrusage(RUSAGE_SELF)` (every thread of the process, microsecond
//! resolution; `/proc/self/stat` counts in clock ticks of 10 ms, too coarse for one-second deltas at
//! a few percent of a core). Children — the local backend's `nats-server` nodes — are not counted:
//! `RUSAGE_SELF` excludes them, and their CPU is read from their own `/varz`. Resident memory is
//! `/proc/self/statm`'s resident pages. Linux only, like the rest of the harness; anything that
//! cannot be read is `None`, never an error.

use std::time::{Duration, Instant};

/// CPU time (user + system) the whole process has used since it started.
pub fn process_cpu_time() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given; the struct is ours.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and zeroed is a valid rusage anyway).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

/// Resident set size of the process, bytes (`/proc/self/statm`: resident pages × page size).
pub fn process_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page_size > 0).then(|| pages * page_size as u64)
}

/// Cores the process used between two readings: CPU time used / wall time passed (1.0 = one full
/// core, 2.0 = two).
#[derive(Debug)]
pub struct CpuMeter {
    last: Option<(Instant, Duration)>,
}

impl CpuMeter {
    /// A meter whose first [`CpuMeter::cores`] covers the time since now.
    pub fn start() -> Self {
        Self {
            last: process_cpu_time().map(|cpu| (Instant::now(), cpu)),
        }
    }

    /// Cores used since the previous reading (or the start); `None` if the CPU time cannot be read
    /// or no time has passed.
    pub fn cores(&mut self) -> Option<f64> {
        let now = (Instant::now(), process_cpu_time()?);
        let previous = self.last.replace(now)?;
        let wall = now.0.duration_since(previous.0).as_secs_f64();
        let used = now.1.saturating_sub(previous.1).as_secs_f64();
        (wall > 0.0).then(|| used / wall)
    }
}

/// How busy the Tokio runtime's worker threads were between two readings: the workers' busy time
/// / (workers × wall time), 0.0 (idle) to 1.0 (every worker always running a task). A saturated
/// runtime delays every publisher's sends whatever the machine's CPU shows (a runtime with fewer
/// workers than cores saturates below the machine's capacity).
#[derive(Debug)]
pub struct RuntimeBusyMeter {
    handle: tokio::runtime::Handle,
    last: (Instant, Duration),
}

impl RuntimeBusyMeter {
    /// Meters the current runtime; `None` outside one.
    pub fn start() -> Option<Self> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let busy = total_busy(&handle);
        Some(Self {
            handle,
            last: (Instant::now(), busy),
        })
    }

    /// The busy fraction since the previous reading (or the start).
    pub fn busy(&mut self) -> Option<f64> {
        let now = (Instant::now(), total_busy(&self.handle));
        let previous = std::mem::replace(&mut self.last, now);
        let workers = self.handle.metrics().num_workers();
        let wall = now.0.duration_since(previous.0).as_secs_f64() * workers as f64;
        let busy = now.1.saturating_sub(previous.1).as_secs_f64();
        (wall > 0.0).then(|| (busy / wall).min(1.0))
    }
}

/// Busy time summed over every worker of the runtime.
fn total_busy(handle: &tokio::runtime::Handle) -> Duration {
    let metrics = handle.metrics();
    (0..metrics.num_workers())
        .map(|worker| metrics.worker_total_busy_duration(worker))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins for `wall`, keeping one core busy.
    fn spin(wall: Duration) -> u64 {
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < wall {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        x
    }

    #[test]
    fn process_cpu_time_includes_what_this_thread_used() {
        let (before, own) = (process_cpu_time().expect("getrusage"), thread_cpu_time());
        // The machine is shared: spin until this thread has had 200 ms of CPU, however long it takes.
        while thread_cpu_time() - own < Duration::from_millis(200) {
            spin(Duration::from_millis(5));
        }
        let used = thread_cpu_time() - own;
        let after = process_cpu_time().expect("getrusage");
        // Other threads (other tests) may add to it; rusage counts in microseconds.
        assert!(
            after - before + Duration::from_millis(1) >= used,
            "process {before:?} → {after:?}, this thread {used:?}"
        );
    }

    /// CPU time of the calling thread alone.
    fn thread_cpu_time() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes a timespec into the pointer it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    #[test]
    fn the_meter_counts_at_least_the_cpu_this_thread_used() {
        let mut meter = CpuMeter::start();
        let (wall, own) = (Instant::now(), thread_cpu_time());
        // Spin until this thread has had 200 ms of CPU, however long the shared machine takes.
        while thread_cpu_time() - own < Duration::from_millis(200) {
            spin(Duration::from_millis(5));
        }
        let used = thread_cpu_time() - own;
        let cores = meter.cores().expect("cores");
        let elapsed = wall.elapsed().as_secs_f64();
        // The process used at least what this thread did (other tests may add to it), and no more
        // than every core of the machine for the whole time.
        let all = std::thread::available_parallelism().map_or(64, |n| n.get()) as f64;
        assert!(
            cores * elapsed >= used.as_secs_f64() * 0.95 && cores <= all * 1.05,
            "{cores} cores over {elapsed} s; this thread used {used:?}"
        );
    }

    #[test]
    fn rss_is_plausible_and_follows_touched_memory() {
        let before = process_rss_bytes().expect("statm");
        assert!(
            before > 1 << 20 && before < 1 << 40,
            "rss {before} bytes is not plausible"
        );
        // 64 MiB written to (not just reserved), so the pages are resident.
        let block = vec![1u8; 64 << 20];
        let after = process_rss_bytes().expect("statm");
        assert!(
            after >= before + (32 << 20),
            "rss {before} → {after} after touching 64 MiB"
        );
        drop(std::hint::black_box(block));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runtime_busy_is_a_fraction_and_rises_when_a_worker_spins() {
        let mut meter = RuntimeBusyMeter::start().expect("inside a runtime");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let idle = meter.busy().expect("busy");
        assert!((0.0..=1.0).contains(&idle), "idle {idle}");
        // One of two workers spins for 300 ms of the ~400 ms: a quarter of the runtime's time at
        // the least, even if the machine lends it only part of a core (busy time is wall time).
        tokio::spawn(async { spin(Duration::from_millis(300)) })
            .await
            .expect("spin task");
        // A worker hands its busy time to the runtime's metrics when it parks.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let busy = meter.busy().expect("busy");
        assert!(busy > 0.25 && busy <= 1.0, "busy {busy} (idle was {idle})");
    }
}
