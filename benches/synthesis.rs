//! Event synthesis throughput: drawing a subject and learner, stepping the learner's state machine
//! and encoding the JSON envelope, for each domain on one core (no network, no engine).
//!
//! The focus mix is the one that must keep up with class-period bursts: the target is at least
//! 1,000,000 events/s on one core.
//!
//!     cargo bench --bench synthesis
//!     cargo bench --bench synthesis -- --measurement-time 3 --warm-up-time 1   # quicker

use std::hint::black_box;
use std::sync::Arc;

use aivo_load::traffic::population::Population;
use aivo_load::traffic::{build_source, Domain, Mix, Shard, SourceConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use time::{Duration, OffsetDateTime};

fn synthesis(c: &mut Criterion) {
    // A scenario-sized population: 20 schools, 2,000 learners, one publisher owning all of them.
    let population = Arc::new(Population::generate(7, 20, 2_000));
    let mut group = c.benchmark_group("synthesis");
    group.throughput(Throughput::Elements(1));
    let focus_burst = vec![
        ("focus.ping".to_string(), 95),
        ("focus.loss.idle".to_string(), 3),
        ("focus.loss.tab_switch".to_string(), 2),
    ];
    let cases = [
        ("focus", Domain::Focus, Domain::Focus.default_mix()),
        ("focus-burst", Domain::Focus, focus_burst),
        ("learning", Domain::Learning, Domain::Learning.default_mix()),
        ("homework", Domain::Homework, Domain::Homework.default_mix()),
        (
            "recommendation",
            Domain::Recommendation,
            Domain::Recommendation.default_mix(),
        ),
    ];
    for (name, domain, mix) in cases {
        let Ok(mix) = Mix::new(&mix) else {
            panic!("{name}: empty mix");
        };
        let source = build_source(SourceConfig {
            domain,
            mix,
            population: population.clone(),
            run_id: "20270115T080000Z-focus-burst".into(),
            publisher: 0,
            shard: Shard::WHOLE,
            seed: 7,
        });
        let Ok(mut source) = source else {
            panic!("{name}: source refused");
        };
        let start = OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_800_000_000);
        let mut seq = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                // 10,000 events/s of intended times, as a publisher would see them.
                let at = start + Duration::microseconds(seq as i64 * 100);
                black_box(source.next_event(seq, at))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, synthesis);
criterion_main!(benches);
