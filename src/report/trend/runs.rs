//! Which runs `report trend` reads, and in what order: each argument is a run directory (or its
//! `report.json`), a directory whose children are run directories (`reports/`), or a glob pattern
//! the shell left unexpanded (`'reports/*-chaos-soak'`, quoted so that CI shells without a match do
//! not pass it on half-expanded). Runs are sorted oldest first by the report's `run.started_at`,
//! else by the UTC time that starts a run directory's name, else by name.

use std::path::{Path, PathBuf};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::exit::AppError;
use crate::report::figures::load;

/// One run's report, found.
pub(super) struct Run {
    /// The run directory's name (`20261127T112426Z-chaos-soak`).
    pub(super) name: String,
    /// When the run started, if the report or the directory's name says.
    pub(super) started: Option<OffsetDateTime>,
    pub(super) report: Value,
}

/// The runs that `inputs` name, oldest first, each once.
pub(super) fn find(inputs: &[PathBuf]) -> Result<Vec<Run>, AppError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for input in inputs {
        for file in report_files(input)? {
            // The same run named twice (a directory and a glob over it) is read once.
            let key = file.canonicalize().unwrap_or_else(|_| file.clone());
            if !files
                .iter()
                .any(|f| f.canonicalize().unwrap_or_else(|_| f.clone()) == key)
            {
                files.push(file);
            }
        }
    }
    let mut runs = Vec::with_capacity(files.len());
    for file in files {
        let report = load(&file)?;
        let mut name = file.parent().and_then(Path::file_name).map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        // A checkpoint of a run that died (or still goes) covers only part of its load; a
        // recovered one was finished by `report recover`. The name says so wherever it shows.
        match report.pointer("/run/state").and_then(Value::as_str) {
            Some("running") => name.push_str(" (incomplete)"),
            Some("recovered") => name.push_str(" (recovered)"),
            _ => {}
        }
        let started = report
            .pointer("/run/started_at")
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .or_else(|| time_in_name(&name));
        runs.push(Run {
            name,
            started,
            report,
        });
    }
    // Undated runs (neither field nor name says when) sort first, by name.
    runs.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.name.cmp(&b.name)));
    Ok(runs)
}

/// The `report.json` files one argument names.
fn report_files(input: &Path) -> Result<Vec<PathBuf>, AppError> {
    let text = input.to_string_lossy();
    if !input.exists() && text.contains(['*', '?']) {
        let matched: Vec<PathBuf> = expand(input)
            .into_iter()
            .filter_map(|path| run_report(&path))
            .collect();
        if matched.is_empty() {
            return Err(AppError::usage(anyhow::anyhow!(
                "no run directory with a report.json matches {text} (a run directory is \
                 reports/<UTC time>-<scenario>/)"
            )));
        }
        return Ok(matched);
    }
    if let Some(file) = run_report(input) {
        return Ok(vec![file]);
    }
    if !input.is_dir() {
        return Err(AppError::usage(anyhow::anyhow!(
            "{text}: no such run directory or report.json"
        )));
    }
    let children = std::fs::read_dir(input)
        .map_err(|e| AppError::usage(anyhow::anyhow!("cannot list {text}: {e}")))?;
    let mut files: Vec<PathBuf> = children
        .flatten()
        .filter_map(|entry| run_report(&entry.path()))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(AppError::usage(anyhow::anyhow!(
            "no report.json in {text} nor in any directory directly under it (give run \
             directories, their parent such as reports/, or a pattern such as 'reports/*-chaos-soak')"
        )));
    }
    Ok(files)
}

/// `path`'s report: the file itself, or `report.json` in the directory.
fn run_report(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let file = path.join("report.json");
    file.is_file().then_some(file)
}

/// The paths a pattern matches, component by component (`*` and `?` within one component, as a
/// shell does; a name starting with `.` only where the pattern's component does).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        if !part.contains(['*', '?']) {
            for path in &mut paths {
                path.push(component);
            }
            continue;
        }
        let mut next = Vec::new();
        for path in &paths {
            let dir = if path.as_os_str().is_empty() {
                Path::new(".")
            } else {
                path.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| wildcard_match(&part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| path.join(name)));
        }
        paths = next;
    }
    paths
}

/// Whether `name` matches `pattern` with `*` (any run of characters) and `?` (one character).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Greedy with one backtrack point, the last `*`: linear enough for file names.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The UTC time a run directory's name starts with (`20261127T112426Z-…`).
fn time_in_name(name: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = name.get(..16)?;
    PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_run(dir: &Path, name: &str, started_at: Option<&str>) {
        let run = dir.join(name);
        std::fs::create_dir_all(&run).expect("run dir");
        let report = match started_at {
            Some(t) => serde_json::json!({"run": {"started_at": t}}),
            None => serde_json::json!({"run": {}}),
        };
        std::fs::write(run.join("report.json"), report.to_string()).expect("report.json");
    }

    fn names(runs: &[Run]) -> Vec<&str> {
        runs.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn a_checkpoint_or_recovered_run_says_so_in_its_name() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (name, state) in [("a", "running"), ("b", "recovered"), ("c", "finished")] {
            let run = tmp.path().join(name);
            std::fs::create_dir_all(&run).expect("run dir");
            let report = serde_json::json!({"run": {"started_at": format!("2026-01-0{}T00:00:00Z", name.len() + (name.as_bytes()[0] - b'a') as usize), "state": state}});
            std::fs::write(run.join("report.json"), report.to_string()).expect("report.json");
        }
        let runs = find(&[tmp.path().to_path_buf()]).expect("runs");
        assert_eq!(names(&runs), ["a (incomplete)", "b (recovered)", "c"]);
    }

    #[test]
    fn wildcards_match_within_a_name() {
        assert!(wildcard_match(
            "*-chaos-soak",
            "20261127T112426Z-chaos-soak"
        ));
        assert!(wildcard_match("2026*Z-*", "20261127T112426Z-x"));
        assert!(wildcard_match("run?", "run4"));
        assert!(!wildcard_match("run?", "run42"));
        assert!(!wildcard_match(
            "*-chaos-soak",
            "20261127T112426Z-focus-burst"
        ));
        assert!(!wildcard_match("*", ".hidden"));
        assert!(wildcard_match("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn runs_come_from_dirs_parents_and_patterns_oldest_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let reports = tmp.path().join("reports");
        // Names out of time order: the report's start time decides.
        write_run(&reports, "b-soak", Some("2026-01-01T02:00:00Z"));
        write_run(&reports, "a-soak", Some("2026-01-03T02:00:00.5Z"));
        // No start time in the report: the time in the name.
        write_run(&reports, "20260102T020000Z-soak", None);
        write_run(&reports, "c-burst", Some("2026-01-05T02:00:00Z"));
        std::fs::create_dir_all(reports.join("not-a-run")).expect("dir");

        let parent = find(std::slice::from_ref(&reports)).expect("parent dir");
        assert_eq!(
            names(&parent),
            ["b-soak", "20260102T020000Z-soak", "a-soak", "c-burst"]
        );
        let pattern = find(&[reports.join("*-soak"), reports.join("b-soak")]).expect("pattern");
        assert_eq!(
            names(&pattern),
            ["b-soak", "20260102T020000Z-soak", "a-soak"],
            "a run named twice is read once"
        );
        let file = find(&[reports.join("c-burst/report.json")]).expect("the file itself");
        assert_eq!(names(&file), ["c-burst"]);
    }

    #[test]
    fn nothing_to_read_is_a_usage_error_naming_the_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(empty.join("child")).expect("dirs");
        for (input, says) in [
            (empty.clone(), "no report.json in"),
            (tmp.path().join("missing"), "no such run directory"),
            (tmp.path().join("*-soak"), "matches"),
        ] {
            let err = find(std::slice::from_ref(&input)).err().expect("an error");
            assert_eq!(err.exit_status(), crate::exit::ExitStatus::Usage);
            let text = err.to_string();
            assert!(text.contains(&*input.to_string_lossy()), "{text}");
            assert!(text.contains(says), "{text}");
        }
        let bad = tmp.path().join("bad");
        std::fs::create_dir_all(&bad).expect("dir");
        std::fs::write(bad.join("report.json"), "{ not json").expect("write");
        let err = find(std::slice::from_ref(&bad)).err().expect("not JSON");
        assert!(err.to_string().contains("is not a report.json"), "{err}");
    }
}
