//! The value of each threshold metric a scenario may name (`publish.*`, tagged by subject or
//! stream, `indexer.*`, `dlq.*`), in the unit `checks::thresholds` gives it: used by the load's
//! abort-on-fail checks every second and by the report at the end.

use crate::checks::dlq::DlqCheck;
use crate::checks::thresholds::Tag;
use crate::load::metrics::SubjectTable;
use crate::report::{Counts, IndexerReport, LatencyReport};
use crate::traffic::Domain;

/// The value of a threshold metric, in the unit `checks::thresholds` gives it.
pub(super) fn metric_value(metric: &str, counts: &Counts, latency: &LatencyReport) -> Option<f64> {
    let mut parts = metric.splitn(3, '.');
    let (Some("publish"), Some(name)) = (parts.next(), parts.next()) else {
        return None;
    };
    let stat = parts.next();
    Some(match (name, stat) {
        ("latency", Some(stat)) => latency.corrected.get(stat)?,
        ("service_time", Some(stat)) => latency.service_time.get(stat)?,
        ("send_delay", Some(stat)) => latency.send_delay.get(stat)?,
        ("error_rate", None) => counts.error_rate(),
        ("achieved_ratio", None) => counts.achieved_ratio(),
        ("attempted", None) => counts.attempted as f64,
        ("acked", None) => counts.acked as f64,
        ("failed", None) => counts.failed as f64,
        ("unknown", None) => counts.unknown as f64,
        ("never_sent", None) => counts.never_sent as f64,
        _ => return None,
    })
}

/// The value of a metric narrowed to a subject or a stream, from the per-subject figures.
pub(super) fn tagged_value(metric: &str, tag: &Tag, table: &SubjectTable) -> Option<f64> {
    let mut merged = SubjectTable::default();
    for stats in &table.subjects {
        let selected = match tag {
            Tag::Subject(subject) => &stats.subject == subject,
            Tag::Stream(stream) => Domain::ALL
                .iter()
                .any(|d| d.stream() == stream && d.subjects().contains(&stats.subject.as_str())),
        };
        if selected {
            let index = merged.index_of("selected");
            let mut renamed = stats.clone();
            renamed.subject = "selected".into();
            merged.subjects[index].merge(&renamed);
        }
    }
    let stats = merged.subjects.first()?;
    match metric.strip_prefix("publish.latency.") {
        Some(stat) => stats.latency.summary().get(stat),
        None => match metric {
            "publish.acked" => Some(stats.acked as f64),
            "publish.attempted" => Some(stats.attempted as f64),
            "publish.error_rate" if stats.attempted > 0 => {
                Some(stats.attempted.saturating_sub(stats.acked) as f64 / stats.attempted as f64)
            }
            "publish.error_rate" => Some(0.0),
            _ => None,
        },
    }
}

/// The value of an `indexer.*` metric, in ms.
pub(super) fn indexer_value(metric: &str, indexer: Option<&IndexerReport>) -> Option<f64> {
    let indexer = indexer?;
    match metric {
        "indexer.catch_up" => indexer.catch_up_s.map(|s| s * 1000.0),
        "indexer.recovery" => indexer.recovery_s.map(|s| s * 1000.0),
        _ => indexer
            .end_to_end
            .get(metric.strip_prefix("indexer.end_to_end.")?),
    }
}

/// The value of a `dlq.*` metric (a count).
pub(super) fn dlq_value(metric: &str, dlq: Option<&DlqCheck>) -> Option<f64> {
    let dlq = dlq?;
    Some(match metric {
        "dlq.missing" => dlq.missing,
        "dlq.unexpected" => dlq.unexpected,
        "dlq.entries" => dlq.entries,
        "dlq.injected" => dlq.injected,
        _ => return None,
    } as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tagged_metrics_use_the_selected_subjects_only() {
        let mut table = SubjectTable::default();
        for (subject, acked, latency_ms) in [
            ("focus.ping", 10, 5),
            ("focus.loss.idle", 10, 50),
            ("learning.session.started", 10, 500),
        ] {
            let i = table.index_of(subject);
            for _ in 0..acked {
                table.subjects[i].record_size(100);
                table.subjects[i].acked += 1;
                table.subjects[i]
                    .latency
                    .record(Duration::from_millis(latency_ms));
            }
        }
        table.subjects[0].record_size(100); // one focus.ping never acked
        let p99 = |tag| tagged_value("publish.latency.p99", &tag, &table).expect("value");
        assert!((p99(Tag::Subject("focus.ping".into())) - 5.0).abs() < 0.1);
        assert!((p99(Tag::Stream("FOCUS".into())) - 50.0).abs() < 1.0);
        assert!((p99(Tag::Stream("LEARNING".into())) - 500.0).abs() < 10.0);
        let rate = tagged_value(
            "publish.error_rate",
            &Tag::Subject("focus.ping".into()),
            &table,
        )
        .expect("value");
        assert!((rate - 1.0 / 11.0).abs() < 1e-9);
        assert_eq!(
            tagged_value("publish.acked", &Tag::Stream("HOMEWORK".into()), &table),
            None
        );
    }
}
