//! Scenario files: the shipped ones are valid and within the laptop's budget, every file of the broken
//! corpus is refused at the expected line with the expected message, and no mutation of a valid file
//! makes the parser panic or point outside the file. No server is needed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use aivo_load::scenario::catalog::BUILT_IN;
use aivo_load::scenario::{parse, Scenario, ScenarioError};
use aivo_load::traffic::Domain;
use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/broken")
}

/// Parses, turning a panic into a test failure that names the file.
fn parse_without_panic(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    match catch_unwind(AssertUnwindSafe(|| parse(file, text))) {
        Ok(result) => result,
        Err(_) => panic!("parsing {file} panicked; text:\n{text}"),
    }
}

/// An error must point inside the file: a real line, and a column within it (or just past its end).
fn assert_located(e: &ScenarioError, text: &str) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        e.line >= 1 && e.line <= lines.len(),
        "line {} outside a {}-line file: {e}",
        e.line,
        lines.len()
    );
    let width = lines[e.line - 1].trim_end_matches('\r').chars().count();
    assert!(
        e.column >= 1 && e.column <= width + 1,
        "column {} outside line {} ({width} characters): {e}",
        e.column,
        e.line
    );
}

#[test]
fn broken_scenarios_give_clear_errors() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/scenarios/broken exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} broken scenarios", files.len());
    for path in files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).expect("readable");
        // First line: `# expect: LINE: fragment of the message`.
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name} does not start with `# expect: LINE: fragment`"));
        let (line, fragment) = expect
            .split_once(": ")
            .unwrap_or_else(|| panic!("{name}: `# expect: LINE: fragment`"));
        let line: usize = line.parse().unwrap_or_else(|_| panic!("{name}: bad line"));
        let e = match parse_without_panic(&name, &text) {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => e,
        };
        assert_eq!(e.line, line, "{name}: wrong line for {e}");
        assert!(
            e.message.contains(fragment),
            "{name}: expected {fragment:?} in the message, got: {e}"
        );
        assert_located(&e, &text);
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{name}:{line}:{}: ", e.column)),
            "{shown}"
        );
    }
}

/// The file with every `[[traffic]]` source of a domain that has no generator yet turned into a focus
/// source (its mix dropped, since subjects are per domain), and the names of the domains replaced.
/// Once every domain has a generator this is the file itself, and the check below is the full one.
fn with_generated_domains_only(text: &str) -> (String, Vec<String>) {
    let mut doc: toml::Table = toml::from_str(text).expect("shipped scenarios are TOML");
    let mut replaced = Vec::new();
    if let Some(toml::Value::Array(sources)) = doc.get_mut("traffic") {
        for source in sources.iter_mut().filter_map(|s| s.as_table_mut()) {
            let Some(domain) = source.get("domain").cloned() else {
                continue;
            };
            let parsed: Domain = domain.clone().try_into().expect("a known domain");
            if parsed.subjects().is_empty() {
                replaced.push(domain.as_str().unwrap_or_default().to_string());
                source.insert("domain".into(), toml::Value::String("focus".into()));
                source.remove("mix");
            }
        }
    }
    (toml::to_string(&doc).expect("serialisable"), replaced)
}

#[test]
fn shipped_scenarios_are_valid() {
    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
    for required in [
        "focus-burst",
        "learning-steady",
        "homework-mix",
        "school-day",
        "soak",
    ] {
        assert!(names.contains(&required), "{required} is not shipped");
    }
    for (name, text) in BUILT_IN {
        let file = format!("built-in:{name}");
        let (checked, replaced) = with_generated_domains_only(text);
        // Naming a domain without a generator is the only error a shipped file may give, and only
        // while that generator is missing.
        match parse_without_panic(&file, text) {
            Ok(_) => assert!(replaced.is_empty()),
            Err(e) => assert!(
                !replaced.is_empty() && e.message.contains("no event generator yet"),
                "{e}"
            ),
        }
        let scenario = parse_without_panic(&file, &checked).unwrap_or_else(|e| panic!("{e}"));
        assert!(!scenario.description.is_empty(), "{name}: no description");
        assert!(!scenario.thresholds.is_empty(), "{name}: no thresholds");
        // The laptop's budget: focus-burst peaks at 10,000/s, durability-compare's 10-second
        // overload (its saturation throughput) at 8,000/s; the others stay at or under ~5,000/s.
        let budget = match *name {
            "focus-burst" => 10_000.0,
            "durability-compare" => 8_000.0,
            _ => 5_000.0,
        };
        let steps = 2000;
        let peak = (0..steps)
            .map(|k| {
                scenario.target_rate_at(scenario.duration.mul_f64(f64::from(k) / f64::from(steps)))
            })
            .fold(0.0, f64::max);
        assert!(peak <= budget, "{name} peaks at {peak}/s");
        // The expectation, not the count: counting a Poisson hour one event at a time is slow here.
        let expected: f64 = scenario
            .traffic
            .iter()
            .map(|t| t.profile.expected_total())
            .sum();
        assert!(expected > 0.0, "{name} sends nothing");
    }
}

#[test]
fn school_day_and_soak_cover_all_domains() {
    let domains_of = |name: &str| -> Vec<String> {
        let text = BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .expect("shipped");
        let doc: toml::Table = toml::from_str(text).expect("TOML");
        let mut domains: Vec<String> = doc["traffic"]
            .as_array()
            .expect("traffic")
            .iter()
            .filter_map(|s| s.get("domain")?.as_str().map(str::to_string))
            .collect();
        domains.sort();
        domains
    };
    let all = ["focus", "homework", "learning", "recommendation"];
    assert_eq!(domains_of("school-day"), all);
    assert_eq!(domains_of("soak"), all);

    let text = BUILT_IN
        .iter()
        .find(|(n, _)| *n == "school-day")
        .map(|(_, t)| *t)
        .expect("shipped");
    let (checked, _) = with_generated_domains_only(text);
    let day = parse("school-day", &checked).expect("valid");
    assert!(day.duration.as_secs() <= 5 * 60, "a few minutes long");
    let shape = day.traffic[0].profile.shape().to_string();
    assert!(shape.starts_with("school day ×"), "{shape}");
    let phases: Vec<&str> = day.traffic[0]
        .profile
        .phases()
        .iter()
        .map(|(_, n)| n.as_str())
        .collect();
    for phase in [
        "morning ramp",
        "period 1",
        "passing",
        "lunch",
        "evening homework",
    ] {
        assert!(phases.contains(&phase), "no {phase} in {phases:?}");
    }

    let text = BUILT_IN
        .iter()
        .find(|(n, _)| *n == "soak")
        .map(|(_, t)| *t)
        .expect("shipped");
    let (checked, _) = with_generated_domains_only(text);
    let soak = parse("soak", &checked).expect("valid");
    assert!(soak.duration.as_secs() >= 3600);
    let short = soak
        .adjusted(Some(std::time::Duration::from_secs(60)), 1.0, None)
        .expect("overridable");
    assert_eq!(short.duration.as_secs(), 60);
    assert!(short.intended_total() < 100_000);
}

#[test]
fn seeds_fix_poisson_arrivals() {
    let text = r#"
name = "p"
duration = "20s"
seed = 5
[[traffic]]
domain = "focus"
rate = "500/s"
arrivals = "poisson"
[[traffic]]
domain = "focus"
rate = "500/s"
arrivals = "poisson"
"#;
    let times = |s: &Scenario, i: usize| -> Vec<std::time::Duration> {
        aivo_load::traffic::arrival::PublisherArrivals::new(
            std::sync::Arc::new(s.traffic[i].profile.clone()),
            0,
            1,
        )
        .collect()
    };
    let a = parse("p", text).expect("valid");
    let b = parse("p", text).expect("valid");
    assert_eq!(times(&a, 0), times(&b, 0), "same seed, same arrivals");
    assert_ne!(times(&a, 0), times(&a, 1), "sources draw independently");
    let reseeded = b.adjusted(None, 1.0, Some(6)).expect("valid");
    assert_ne!(times(&a, 0), times(&reseeded, 0), "--seed redraws arrivals");
    assert_eq!(
        a.intended_total(),
        times(&a, 0).len() as u64 + times(&a, 1).len() as u64
    );
}

/// Valid files to mutate: the shipped scenarios (restricted to generated domains) and one that uses
/// every field.
fn valid_seeds() -> Vec<String> {
    let mut seeds: Vec<String> = BUILT_IN
        .iter()
        .map(|(_, text)| with_generated_domains_only(text).0)
        .collect();
    seeds.extend(BUILT_IN.iter().map(|(_, text)| text.to_string()));
    seeds.push(
        r#"name = "everything"
description = "every field"
duration = "2m"
seed = 3

[population]
tenants = 4
learners = 400

[publishers]
count = 2
in_flight = 64
ack_timeout = "2s"

[[traffic]]
domain = "focus"
mix = { "focus.ping" = 9, "focus.restored" = 1 }
rate = [ { at = "0s", rate = "2/learner/min", phase = "calm" }, { at = "30s", rate = "100/s", ramp = "10s" } ]
bursts = [ { at = "50s", rate = "500/s", ramp = "2s", for = "5s", phase = "spike" } ]
arrivals = "poisson"

[[traffic]]
domain = "focus"
school_day = { peak = "1/learner/s", compression = 1440, start = "07:30", evening = 0.5 }

[streams.FOCUS]
max_age = "90s"
max_bytes = "8MiB"
max_msgs = 100000
replicas = 3

[thresholds]
"publish.latency.p99" = "< 250ms"
"publish.error_rate" = "< 0.5%"
"#
        .to_string(),
    );
    seeds
}

/// One edit of a file.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at a position.
    SetByte(usize, u8),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Remove a range of bytes.
    Delete(usize, usize),
    /// Replace a line by another line of the same file.
    CopyLine(usize, usize),
    /// Remove a line.
    DropLine(usize),
    /// Replace a line by one of a few troublesome lines.
    Splice(usize, usize),
}

/// Lines that TOML accepts in many places and the scenario model rarely does.
const TROUBLE: &[&str] = &[
    "rate = \"1e308/s\"",
    "duration = \"99999999999d\"",
    "at = \"-1s\"",
    "[[traffic]]",
    "[streams.FOCUS]",
    "compression = 1e-300",
    "learners = 4294967295",
    "rate = [ { at = \"0s\", rate = \"NaN/s\" } ]",
    "bursts = [ { at = \"0s\", rate = \"1/s\", for = \"1h\" } ]",
    "school_day = { peak = \"1000000/learner/s\", compression = 86400 }",
    "duration = \"0.0000001s\"",
    "\"publish.latency.p99\" = \"< \"",
    "x = \u{1F600}",
    "",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::SetByte(at, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::CopyLine(a, b)),
        any::<usize>().prop_map(Mutation::DropLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Splice(a, b)),
    ]
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = bytes.len().max(1);
    match mutation {
        Mutation::SetByte(at, b) => {
            if !bytes.is_empty() {
                bytes[at % n] = *b;
            }
        }
        Mutation::Insert(at, new) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Delete(at, len) => {
            let at = at % n;
            let end = (at + len).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::CopyLine(from, to) => {
            let (from, to) = (from % lines.len(), to % lines.len());
            lines[to] = lines[from].clone();
            return lines.join("\n");
        }
        Mutation::DropLine(at) => {
            let at = at % lines.len();
            lines.remove(at);
            return lines.join("\n");
        }
        Mutation::Splice(at, which) => {
            let at = at % lines.len();
            lines[at] = TROUBLE[which % TROUBLE.len()].to_string();
            return lines.join("\n");
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Mutated scenarios never panic: they parse, or they give an error located inside the file.
    #[test]
    fn mutated_scenarios_never_panic(
        seed in 0usize..64,
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let seeds = valid_seeds();
        let mut text = seeds[seed % seeds.len()].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        match parse_without_panic("mutated.toml", &text) {
            Ok(scenario) => {
                // A file that parses gives a usable schedule.
                let _ = scenario.intended_between(std::time::Duration::ZERO, scenario.duration);
                prop_assert!(scenario.duration > std::time::Duration::ZERO);
            }
            Err(e) => assert_located(&e, &text),
        }
    }
}
