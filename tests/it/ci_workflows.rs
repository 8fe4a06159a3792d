//! The nightly soak's CI files, `ci/nightly-soak.yml` (GitHub Actions) and
//! `ci/nightly-soak.gitlab-ci.yml` (GitLab CI): parsed, their structure checked (triggers, inputs,
//! timeouts, artifacts kept on failure, junit), and every `aivo-load` invocation in their shell
//! steps checked against the real binary: each verb and subcommand exists, every flag appears in
//! that command's `--help`, the number of arguments fits its usage line and the scenario it names
//! is one `scenarios list` knows. A renamed flag then fails the test suite instead of the night.
//!
//! The check knows no verb: it follows the binary's help (a `Commands:` section means the next word
//! is a subcommand; `--flag <VALUE>` takes a value; the usage line names the positionals).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{output_within, text, BIN};

const GITHUB: &str = "ci/nightly-soak.yml";
const GITLAB: &str = "ci/nightly-soak.gitlab-ci.yml";

/// One of the repository's files, parsed as YAML into a JSON value (its keys are all strings).
pub(crate) fn load(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer}"))
}

fn minutes(duration: &str) -> f64 {
    aivo_load::units::parse_duration(duration)
        .unwrap_or_else(|e| panic!("{duration:?}: {e}"))
        .as_secs_f64()
        / 60.0
}

// --- what the binary says -------------------------------------------------------------------

/// `aivo-load <path> --help`, or why there is none.
fn help(path: &[String]) -> Result<String, String> {
    let mut command = Command::new(BIN);
    command.args(path).arg("--help").env_remove("RUST_LOG");
    let output = output_within(command, Duration::from_secs(30));
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`aivo-load {} --help` failed: {}",
            path.join(" "),
            text(&output).trim()
        ))
    }
}

/// The scenarios `aivo-load scenarios list` names.
fn scenario_names() -> Vec<String> {
    let mut command = Command::new(BIN);
    command.args(["scenarios", "list"]);
    let output = output_within(command, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The subcommands a help text lists under `Commands:` (clap's layout), `help` left out.
fn subcommands(help: &str) -> Vec<String> {
    let Some(start) = help.find("\nCommands:\n") else {
        return Vec::new();
    };
    help[start + "\nCommands:\n".len()..]
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("     "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .filter(|name| name != "help")
        .collect()
}

/// Whether `flag` (`--name` or `-v`) is one the help text documents: the flag followed by a
/// character that cannot continue its name.
fn documents(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        before.is_none_or(|c| c.is_whitespace() || c == '[' || c == ',')
            && after.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

/// Whether the help text shows `flag` taking a value (`--name <VALUE>`).
fn takes_value(help: &str, flag: &str) -> bool {
    help.lines().any(|line| {
        line.split(", ")
            .any(|part| part.trim_start().starts_with(&format!("{flag} <")))
    })
}

/// The positionals of the usage line, e.g. `[SCENARIO]`, `<A>`, `<DIR>...` → (name, repeats).
fn positionals(help: &str) -> Vec<(String, bool)> {
    let usage = help
        .lines()
        .find_map(|line| line.strip_prefix("Usage: "))
        .unwrap_or_default();
    usage
        .split_whitespace()
        .filter(|word| {
            (word.starts_with('<') || word.starts_with('['))
                && !word.contains("OPTIONS")
                && !word.contains("COMMAND")
        })
        .map(|word| {
            let repeats = word.ends_with("...");
            let name = word
                .trim_end_matches("...")
                .trim_matches(|c| "<>[]".contains(c));
            (name.to_string(), repeats)
        })
        .collect()
}

// --- reading shell ----------------------------------------------------------------------------

/// Shell words of one script, quotes removed, with `|`, `||`, `&&`, `;`, `)` and redirections as
/// words of their own (so an invocation ends there), comments dropped and `\` line continuations
/// joined. Enough shell for CI steps; variables stay as written (`$DURATION`).
fn shell_words(script: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let mut quote: Option<char> = None;
    let end = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => match chars.next() {
                Some('\n') | None => {}
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
            },
            (None, '#') if !in_word => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            (None, '\n') => {
                end(&mut word, &mut in_word, &mut words);
                words.push(";".into());
            }
            (None, c) if c.is_whitespace() => end(&mut word, &mut in_word, &mut words),
            (None, '|' | '&' | ';' | '>' | '<' | ')' | '(') => {
                end(&mut word, &mut in_word, &mut words);
                let mut op = c.to_string();
                while chars.peek().is_some_and(|&n| n == c) {
                    op.push(c);
                    chars.next();
                }
                words.push(op);
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end(&mut word, &mut in_word, &mut words);
    words
}

/// Every `aivo-load ...` command in a script: the words after the program up to the end of its
/// command (an operator or the end of the line).
fn invocations(script: &str) -> Vec<Vec<String>> {
    let words = shell_words(script);
    let is_operator = |w: &String| w.chars().all(|c| "|&;<>()".contains(c));
    let mut found = Vec::new();
    for (at, word) in words.iter().enumerate() {
        if word == "aivo-load" || word.ends_with("/aivo-load") {
            let args = words[at + 1..]
                .iter()
                .take_while(|w| !is_operator(w))
                .cloned()
                .collect();
            found.push(args);
        }
    }
    found
}

/// Checks one invocation's words (after `aivo-load`) against the binary's help, as `help` gives
/// it for a command path, and the scenarios it knows. The error names the flag, subcommand,
/// argument or scenario that is wrong.
fn check_invocation(
    args: &[String],
    help: &dyn Fn(&[String]) -> Result<String, String>,
    scenarios: &[String],
) -> Result<(), String> {
    let shown = format!("aivo-load {}", args.join(" "));
    let mut path: Vec<String> = Vec::new();
    let mut text = help(&path)?;
    let mut rest = args;
    // Down the subcommands while the help lists some; a flag before a subcommand (`-v`) must be
    // one of the command it follows.
    loop {
        let commands = subcommands(&text);
        if commands.is_empty() {
            break;
        }
        while let Some((flag, tail)) = rest.split_first().filter(|(w, _)| w.starts_with('-')) {
            if !documents(&text, flag) {
                return Err(format!(
                    "{shown}: `aivo-load {} --help` has no {flag}",
                    path.join(" ")
                ));
            }
            rest = tail;
        }
        let Some((next, tail)) = rest.split_first() else {
            return Err(format!(
                "{shown}: a subcommand is missing (one of {commands:?})"
            ));
        };
        if !commands.contains(next) {
            return Err(format!(
                "{shown}: no subcommand {next:?} under `aivo-load {}` (one of {commands:?})",
                path.join(" ")
            ));
        }
        path.push(next.clone());
        text = help(&path)?;
        rest = tail;
    }
    let mut given = Vec::new();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        if word.starts_with('-') && word.len() > 1 && !word.starts_with("-$") {
            let flag = word.split('=').next().unwrap_or(word);
            if !documents(&text, flag) {
                return Err(format!(
                    "{shown}: `aivo-load {} --help` has no {flag}",
                    path.join(" ")
                ));
            }
            if !word.contains('=') && takes_value(&text, flag) && words.next().is_none() {
                return Err(format!("{shown}: {flag} needs a value"));
            }
        } else {
            given.push(word.clone());
        }
    }
    let expected = positionals(&text);
    let repeats = expected.last().is_some_and(|(_, r)| *r);
    if given.len() > expected.len() && !repeats {
        return Err(format!(
            "{shown}: `aivo-load {}` takes {} argument(s) ({expected:?}), given {given:?}",
            path.join(" "),
            expected.len()
        ));
    }
    for ((name, _), value) in expected.iter().zip(&given) {
        let literal = !value.contains('$');
        if name == "SCENARIO" && literal && !value.ends_with(".toml") && !scenarios.contains(value)
        {
            return Err(format!(
                "{shown}: no scenario {value:?} (`aivo-load scenarios list`: {scenarios:?})"
            ));
        }
    }
    Ok(())
}

/// Checks one invocation given as its words after the binary (an exec-form command, a
/// Kubernetes container's `args`), the error prefixed with `step`.
pub(crate) fn check_words(step: &str, args: &[String]) -> Result<(), String> {
    check_invocation(args, &help, &scenario_names()).map_err(|e| format!("{step}: {e}"))
}

/// Checks every invocation of every script, each error with the step it came from.
pub(crate) fn check_all(scripts: &[(String, String)]) -> (usize, Vec<String>) {
    let scenarios = scenario_names();
    let mut count = 0;
    let mut errors = Vec::new();
    for (step, script) in scripts {
        for args in invocations(script) {
            count += 1;
            if let Err(e) = check_invocation(&args, &help, &scenarios) {
                errors.push(format!("{step}: {e}"));
            }
        }
    }
    (count, errors)
}

// --- GitHub Actions ---------------------------------------------------------------------------

fn github_steps(doc: &Value) -> &Vec<Value> {
    doc.pointer("/jobs/soak/steps")
        .and_then(Value::as_array)
        .expect("jobs.soak.steps")
}

fn step_using<'a>(steps: &'a [Value], action: &str) -> Vec<&'a Value> {
    steps
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .collect()
}

#[test]
fn the_github_workflow_runs_nightly_and_by_hand_with_a_duration_and_a_seed() {
    let doc = load(GITHUB);
    let cron = str_at(&doc, "/on/schedule/0/cron");
    assert_eq!(cron.split_whitespace().count(), 5, "cron {cron:?}");
    let duration = str_at(&doc, "/on/workflow_dispatch/inputs/duration/default");
    let seed = str_at(&doc, "/on/workflow_dispatch/inputs/seed/default");
    assert!(seed.parse::<u64>().is_ok(), "seed {seed:?}");
    // Scheduled runs have no inputs: the env falls back to the same defaults.
    assert!(
        str_at(&doc, "/env/DURATION").contains(&format!("'{duration}'")),
        "DURATION falls back to the input's default"
    );
    assert!(str_at(&doc, "/env/SEED").contains(&format!("'{seed}'")));

    // The job outlives the soak step, which outlives the soak, so the steps after it still run.
    let job_minutes = doc
        .pointer("/jobs/soak/timeout-minutes")
        .and_then(Value::as_f64)
        .expect("jobs.soak.timeout-minutes");
    let steps = github_steps(&doc);
    let soak = steps
        .iter()
        .find(|s| s["id"] == "soak")
        .expect("a step with id soak");
    let soak_minutes = soak["timeout-minutes"].as_f64().expect("soak timeout");
    assert!(
        minutes(duration) + 10.0 < soak_minutes && soak_minutes + 10.0 <= job_minutes,
        "duration {duration}, soak step {soak_minutes} min, job {job_minutes} min"
    );
    let run = soak["run"].as_str().expect("soak run");
    assert!(
        run.contains("aivo-load run chaos-soak --duration \"$DURATION\" --seed \"$SEED\""),
        "{run}"
    );
    assert!(
        run.contains("exit \"$code\""),
        "the soak's exit code fails the job: {run}"
    );

    // Everything after the soak runs whatever it returned.
    let soak_at = steps.iter().position(|s| s["id"] == "soak").unwrap_or(0);
    for step in &steps[soak_at + 1..] {
        assert_eq!(step["if"], "always()", "{step}");
    }
    let uploads = step_using(steps, "actions/upload-artifact@");
    assert!(
        uploads.iter().any(|s| s["with"]["path"]
            .as_str()
            .is_some_and(|p| p.contains("soak-reports"))),
        "the run dir is uploaded: {uploads:?}"
    );
    let junit = step_using(steps, "mikepenz/action-junit-report@");
    assert_eq!(junit.len(), 1, "one junit step");
    assert!(str_at(junit[0], "/with/report_paths").ends_with("junit.xml"));
    // The history: restored before the soak, saved after it under a rolling key.
    let restore = step_using(steps, "actions/cache/restore@");
    let save = step_using(steps, "actions/cache/save@");
    assert_eq!((restore.len(), save.len()), (1, 1));
    assert_eq!(
        str_at(restore[0], "/with/path"),
        str_at(save[0], "/with/path")
    );
    assert!(str_at(restore[0], "/with/key").contains("${{ github.run_id }}"));
    assert!(restore[0]["with"]["restore-keys"].is_string());
    assert!(
        steps[..soak_at].iter().any(|s| s == restore[0]),
        "the history is restored before the soak"
    );
    let trend = steps
        .iter()
        .find(|s| s["id"] == "trend")
        .and_then(|s| s["run"].as_str())
        .expect("a trend step");
    assert!(trend.contains("aivo-load report trend"), "{trend}");
}

#[test]
fn every_aivo_load_command_in_the_github_workflow_exists_with_its_flags() {
    let doc = load(GITHUB);
    let scripts: Vec<(String, String)> = github_steps(&doc)
        .iter()
        .filter_map(|s| {
            let run = s["run"].as_str()?;
            Some((
                s["name"].as_str().unwrap_or("a step").to_string(),
                run.to_string(),
            ))
        })
        .collect();
    let (count, errors) = check_all(&scripts);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // run chaos-soak, report trend.
    assert!(count >= 2, "{count} aivo-load invocations found");
}

// --- GitLab CI --------------------------------------------------------------------------------

fn gitlab_job(doc: &Value) -> &Value {
    doc.get("nightly-soak").expect("a nightly-soak job")
}

/// The job's shell: before_script, script and after_script, one entry each a script.
fn gitlab_scripts(job: &Value) -> Vec<(String, String)> {
    ["before_script", "script", "after_script"]
        .iter()
        .flat_map(|key| {
            job[*key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|line| line.as_str())
                .map(|line| (key.to_string(), line.to_string()))
        })
        .collect()
}

#[test]
fn the_gitlab_job_runs_on_a_schedule_or_from_the_web_and_keeps_its_artifacts() {
    let doc = load(GITLAB);
    let duration = str_at(&doc, "/variables/DURATION/value");
    let seed = str_at(&doc, "/variables/SEED/value");
    assert!(seed.parse::<u64>().is_ok(), "seed {seed:?}");
    assert!(doc.pointer("/variables/DURATION/description").is_some());
    let job = gitlab_job(&doc);
    let rules: Vec<&str> = job["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["if"].as_str())
        .collect();
    assert!(
        rules.contains(&"$CI_PIPELINE_SOURCE == \"schedule\""),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"$CI_PIPELINE_SOURCE == \"web\""),
        "{rules:?}"
    );
    let timeout = str_at(job, "/timeout").replace(' ', "");
    assert!(
        minutes(duration) + 20.0 < minutes(&timeout),
        "duration {duration}, job timeout {timeout}"
    );
    assert_eq!(job["artifacts"]["when"], "always");
    let paths = job["artifacts"]["paths"].to_string();
    assert!(paths.contains("soak-reports"), "{paths}");
    assert!(str_at(job, "/artifacts/reports/junit").ends_with("junit.xml"));
    // The nights' history survives failed nights too.
    let caches = job["cache"].as_array().expect("cache list");
    assert!(
        caches
            .iter()
            .any(|c| c["when"] == "always" && c["paths"].to_string().contains("soak-history")),
        "{caches:?}"
    );
    let script = gitlab_scripts(job)
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        script.contains("aivo-load run chaos-soak --duration \"$DURATION\" --seed \"$SEED\""),
        "{script}"
    );
    assert!(
        script.contains("exit \"$code\""),
        "the soak's exit code fails the job"
    );
    assert!(script.contains("aivo-load report trend"), "{script}");
}

#[test]
fn every_aivo_load_command_in_the_gitlab_job_exists_with_its_flags() {
    let doc = load(GITLAB);
    let (count, errors) = check_all(&gitlab_scripts(gitlab_job(&doc)));
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(count >= 2, "{count} aivo-load invocations found");
}

// --- the checker itself -----------------------------------------------------------------------

#[test]
fn the_invocation_check_catches_a_misspelled_flag_a_subcommand_and_a_scenario() {
    let scenarios = scenario_names();
    let check = |script: &str| {
        let found = invocations(script);
        assert_eq!(found.len(), 1, "{script}: {found:?}");
        check_invocation(&found[0], &help, &scenarios)
    };
    // What the workflows write passes: quoted values, a continuation, a pipe after it.
    check(
        "code=0\naivo-load run chaos-soak --duration \"$DURATION\" \\\n  --seed 61 --reports-dir=out || code=$?",
    )
    .expect("a real invocation");
    check("target/release/aivo-load scenarios show chaos-soak | tee x # --not-a-flag")
        .expect("a path to the binary, a comment after it");
    check("aivo-load -v report compare a b").expect("a global flag");

    let err = check("aivo-load run chaos-soak --durration 2h").expect_err("misspelled");
    assert!(err.contains("has no --durration"), "{err}");
    let err = check("aivo-load run chaos-soak --seed").expect_err("no value");
    assert!(err.contains("--seed needs a value"), "{err}");
    let err = check("aivo-load run chaos-sok --seed 1").expect_err("no such scenario");
    assert!(err.contains("no scenario \"chaos-sok\""), "{err}");
    let err = check("aivo-load report comprae a b").expect_err("no such subcommand");
    assert!(err.contains("no subcommand \"comprae\""), "{err}");
    let err = check("aivo-load report").expect_err("no subcommand");
    assert!(err.contains("a subcommand is missing"), "{err}");
    let err = check("aivo-load run chaos-soak focus-burst").expect_err("two scenarios");
    assert!(err.contains("takes 1 argument"), "{err}");
    let err = check("aivo-load soak --duration 2h").expect_err("no such verb");
    assert!(err.contains("no subcommand \"soak\""), "{err}");
}

#[test]
fn shell_words_split_operators_quotes_comments_and_continuations() {
    let words = shell_words("a \"b c\" 'd $e' \\\n f|g||h>i # j\nk");
    let expected = [
        "a", "b c", "d $e", "f", "|", "g", "||", "h", ">", "i", ";", "k",
    ];
    assert_eq!(words, expected, "{words:?}");
}
