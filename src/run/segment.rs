//! `--segment I/N`: one worker's slice of a scenario, so that N workers on N machines together send
//! exactly the events one very large machine would have sent.
//!
//! **The partition.** A scenario has `[publishers] count` publishers per traffic source; each owns a
//! shard of the learners (its learners' lifecycles stay in order) and every `count`-th arrival of the
//! source's schedule. Segment `I/N` runs the publishers whose index within their source is
//! `I-1 mod N`, under the numbers the whole run gives them. Nothing is re-sharded, so:
//! - each learner's events come from one publisher, hence from one worker, in order;
//! - the rates divide by themselves (a publisher's schedule is already its share of the source's);
//! - the union of the N segments' events is the whole run's: the same `run/publisher/seq`
//!   identities, payloads and event ids, none twice (`tests` below, for several N).
//!
//! Hence `N` is at most the scenario's publishers per source (a larger N would leave a worker
//! without a publisher: refused). Identities stay globally unique across workers because every
//! worker is given the same run id (`--run-id`, or derived from `--start-at`) and keeps the whole
//! run's publisher numbers. Chaos is run by segment 1 only (faults go to the one shared cluster).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The I-th of N slices (1-based), or the whole scenario (1/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub index: u32,
    pub count: u32,
}

impl Segment {
    /// The whole scenario.
    pub const WHOLE: Segment = Segment { index: 1, count: 1 };

    /// Whether this segment runs the publisher with `index` within its traffic source.
    pub fn owns(&self, index_in_source: u32) -> bool {
        index_in_source % self.count == self.index - 1
    }

    /// Whether this is the whole scenario.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether this segment runs the scenario's chaos (segment 1: faults go to the shared cluster
    /// once).
    pub fn runs_chaos(&self) -> bool {
        self.index == 1
    }

    /// Refuses a segment that would own no publisher of a scenario with `publishers` per source.
    pub fn fits(&self, publishers: u32) -> Result<(), String> {
        if self.count > publishers {
            return Err(format!(
                "--segment {self}: the scenario has {publishers} publisher(s) per traffic source, so \
                 it splits into at most {publishers} segments (raise [publishers] count or use fewer \
                 workers)"
            ));
        }
        Ok(())
    }

    /// `--segment-from-env VAR/N`: the segment whose 0-based index the environment variable `VAR`
    /// holds (`lookup` reads it), i.e. segment `$VAR + 1` of `N`. Kubernetes gives each pod of an
    /// Indexed Job its index as `JOB_COMPLETION_INDEX` (0..completions-1); an image without a
    /// shell cannot do the `+ 1` itself, so the binary does. Every way it can go wrong names the
    /// variable and what was expected.
    pub fn from_index_variable(
        spec: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Segment, String> {
        let bad_spec = || {
            format!(
                "expected VAR/N, the variable holding a 0-based index and the number of segments \
                 (e.g. JOB_COMPLETION_INDEX/3), found \"{spec}\""
            )
        };
        let (name, count) = spec.trim().rsplit_once('/').ok_or_else(bad_spec)?;
        let name = name.trim();
        let count: u32 = count.trim().parse().map_err(|_| bad_spec())?;
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name || count == 0 {
            return Err(bad_spec());
        }
        let value = lookup(name).ok_or_else(|| {
            format!(
                "{name} is not set (Kubernetes sets JOB_COMPLETION_INDEX in each pod of a Job with \
                 completionMode: Indexed; elsewhere give --segment I/N)"
            )
        })?;
        let index: u32 = value.trim().parse().map_err(|_| {
            format!(
                "{name} is \"{value}\", not a 0-based index (0..={})",
                count - 1
            )
        })?;
        if index >= count {
            return Err(format!(
                "{name} is {index}, out of range for {count} segments (0..={}): the Job's \
                 completions and the N given here must be equal",
                count - 1
            ));
        }
        Ok(Segment {
            index: index + 1,
            count,
        })
    }

    /// The name of this segment's directory among the partial reports: `segment-2-of-3`.
    pub fn dir_name(&self) -> String {
        format!("segment-{}-of-{}", self.index, self.count)
    }
}

impl Default for Segment {
    fn default() -> Self {
        Segment::WHOLE
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Segment {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("expected I/N with 1 <= I <= N (e.g. 2/3), found \"{text}\"");
        let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Segment { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_parse_and_refuse_what_is_not_a_slice() {
        assert_eq!("2/3".parse::<Segment>(), Ok(Segment { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            let error = bad.parse::<Segment>().expect_err(bad);
            assert!(error.contains("I/N"), "{error}");
        }
        let error = Segment { index: 1, count: 5 }.fits(4).expect_err("5 > 4");
        assert!(error.contains("at most 4 segments"), "{error}");
    }

    #[test]
    fn a_segment_from_a_zero_based_index_variable_is_that_index_plus_one_or_a_clear_error() {
        let env = |value: Option<&str>| {
            let value = value.map(str::to_owned);
            move |name: &str| {
                (name == "JOB_COMPLETION_INDEX")
                    .then(|| value.clone())
                    .flatten()
            }
        };
        let from = |spec: &str, value: Option<&str>| Segment::from_index_variable(spec, env(value));
        assert_eq!(
            from("JOB_COMPLETION_INDEX/3", Some("0")),
            Ok(Segment { index: 1, count: 3 })
        );
        assert_eq!(
            from("JOB_COMPLETION_INDEX/3", Some("2")),
            Ok(Segment { index: 3, count: 3 })
        );
        let error = from("JOB_COMPLETION_INDEX/3", None).expect_err("unset");
        assert!(error.contains("JOB_COMPLETION_INDEX is not set"), "{error}");
        let error = from("JOB_COMPLETION_INDEX/3", Some("3")).expect_err("out of range");
        assert!(
            error.contains("is 3, out of range for 3 segments (0..=2)"),
            "{error}"
        );
        let error = from("JOB_COMPLETION_INDEX/3", Some("-1")).expect_err("negative");
        assert!(error.contains("not a 0-based index"), "{error}");
        let error = from("JOB_COMPLETION_INDEX/3", Some("one")).expect_err("a word");
        assert!(error.contains("\"one\", not a 0-based index"), "{error}");
        for spec in [
            "JOB_COMPLETION_INDEX",
            "/3",
            "JOB_COMPLETION_INDEX/0",
            "1X/3",
            "A-B/3",
        ] {
            let error = from(spec, Some("0")).expect_err(spec);
            assert!(error.contains("expected VAR/N"), "{spec}: {error}");
        }
    }

    #[test]
    fn every_publisher_belongs_to_exactly_one_segment() {
        for count in 1..=6 {
            for publisher in 0..12 {
                let owners = (1..=count)
                    .filter(|index| {
                        Segment {
                            index: *index,
                            count,
                        }
                        .owns(publisher)
                    })
                    .count();
                assert_eq!(owners, 1, "publisher {publisher} of {count} segments");
            }
        }
    }
}
