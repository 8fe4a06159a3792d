//! The reference consumers against a real 3-node cluster and a real (embedded) Postgres: exactly once
//! in `events` across a kill -9 of the indexer, poison to the DLQ with the right headers, a Postgres
//! outage, max-deliveries routing and `dlq replay`.

use std::sync::Arc;
use std::time::Duration;

use aivo_load::consumers::dlq::{self, DlqFilter};
use aivo_load::consumers::{
    self, ConsumerProcess, ConsumerProcessSpec, ConsumerStats, EmbeddedPostgres, ServiceConfig,
    ServiceKind,
};
use aivo_load::topology::{self, Topology};
use async_nats::jetstream::{self, consumer, AckKind};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::support::{wait_for, TestCluster};

/// Bound for one step (start, apply, a publish batch).
const STEP: Duration = Duration::from_secs(90);
/// Bound for the indexer to catch up; covers one ack wait (30 s) for redeliveries after a kill.
const CATCH_UP: Duration = Duration::from_secs(150);

struct Env {
    cluster: TestCluster,
    postgres: EmbeddedPostgres,
    js: jetstream::Context,
}

impl Env {
    async fn start(replicas: usize) -> Env {
        Self::start_with(Topology::seed(replicas)).await
    }

    async fn start_with(topology: Topology) -> Env {
        let cluster = TestCluster::start().await;
        let postgres =
            tokio::time::timeout(STEP, EmbeddedPostgres::start(&cluster.dir().join("pg")))
                .await
                .expect("postgres start timed out")
                .unwrap_or_else(|e| panic!("embedded postgres: {e}"));
        let js = tokio::time::timeout(STEP, topology::connect(&cluster.endpoints().server_list()))
            .await
            .expect("connect timed out")
            .expect("connect to the test cluster");
        // Right after formation the first JetStream calls are now and then lost: retry.
        wait_for("topology applied", STEP, || {
            let (js, topology) = (js.clone(), topology.clone());
            async move { topology::apply(&js, &topology).await.ok() }
        })
        .await;
        Env {
            cluster,
            postgres,
            js,
        }
    }

    fn server(&self) -> String {
        self.cluster.endpoints().server_list()
    }

    async fn pg(&self) -> tokio_postgres::Client {
        consumers::connect_postgres(&self.postgres.url())
            .await
            .expect("connect to the embedded postgres")
    }

    /// Runs a consumer service in this process until the token is cancelled.
    fn run_in_process(
        &self,
        kind: ServiceKind,
    ) -> (
        Arc<ConsumerStats>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let mut config = ServiceConfig::new(kind, &self.server(), &self.postgres.url());
        config.status_every = None;
        let stats = Arc::new(ConsumerStats::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (stats, cancel) = (stats.clone(), cancel.clone());
            async move {
                consumers::run_service(config, stats, cancel)
                    .await
                    .expect("consumer service");
            }
        });
        (stats, cancel, task)
    }

    async fn events(&self) -> i64 {
        let pg = self.pg().await;
        pg.query_one("SELECT count(*) FROM events", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1)
    }
}

/// A valid focus event: (event id, payload).
fn focus_event(subject: &str, run: &str, publisher: u32, seq: u64) -> (String, String) {
    let id = uuid::Uuid::now_v7().to_string();
    let data = if subject == "focus.ping" {
        r#"{"focused":true,"surface":"lesson","interval_ms":5000,"input_events":3}"#
    } else {
        r#"{"idle_ms":60000,"surface":"quiz"}"#
    };
    let payload = format!(
        r#"{{"event_id":"{id}","type":"{subject}","tenant_id":"t{t}","learner_id":"l{l}","occurred_at":"2027-01-15T08:00:{s:02}.000Z","producer":{{"run":"{run}","publisher":{publisher},"seq":{seq}}},"data":{data}}}"#,
        t = seq % 3,
        l = seq % 17,
        s = seq % 60,
    );
    (id, payload)
}

/// Publishes (subject, msg id, payload) and waits for every ack. The ledger identity rides in the
/// payload's `producer` (the msg ids here are not of the `<run>/<publisher>/<seq>` shape).
async fn publish_all(js: &jetstream::Context, messages: Vec<(String, String, String)>) {
    for chunk in messages.chunks(500) {
        let mut acks = Vec::with_capacity(chunk.len());
        for (subject, id, payload) in chunk {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            let ack = tokio::time::timeout(
                STEP,
                js.publish_with_headers(subject.clone(), headers, payload.clone().into()),
            )
            .await
            .expect("publish timed out")
            .expect("publish");
            acks.push(ack);
        }
        for ack in acks {
            tokio::time::timeout(STEP, ack)
                .await
                .expect("ack timed out")
                .expect("ack");
        }
    }
}

fn valid_batch(
    run: &str,
    publisher: u32,
    seqs: std::ops::RangeInclusive<u64>,
) -> Vec<(String, String, String)> {
    seqs.map(|seq| {
        let subject = if seq % 10 == 0 {
            "focus.loss.idle"
        } else {
            "focus.ping"
        };
        let (id, payload) = focus_event(subject, run, publisher, seq);
        (subject.to_string(), id, payload)
    })
    .collect()
}

/// The same events under other message ids (`<id>-again`): what a publisher retry after a lost ack,
/// a replay or a redelivery looks like to a consumer, which must not count them twice.
fn under_new_ids(events: &[(String, String, String)]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|(s, id, p)| (s.clone(), format!("{id}-again"), p.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_writes_every_event_exactly_once_across_a_kill_and_redeliveries() {
    let env = Env::start(3).await;
    let run = "run-once";
    let first = valid_batch(run, 1, 1..=3000);
    // The same events again under other message ids: what a publisher retry after a lost ack or a
    // replay looks like to the indexer. They must not become rows of their own.
    let again = under_new_ids(&first[..200]);
    publish_all(&env.js, first).await;
    publish_all(&env.js, again).await;

    let dir = env.cluster.dir().to_path_buf();
    let spec = ConsumerProcessSpec {
        kind: ServiceKind::Indexer,
        exe: env!("CARGO_BIN_EXE_aivo-load").into(),
        server: env.server(),
        postgres_url: env.postgres.url(),
        log: dir.join("indexer.log"),
        extra_args: vec![
            "--status-every".into(),
            "1s".into(),
            "--batch".into(),
            "200".into(),
        ],
        auth: Default::default(),
    };
    let mut indexer = ConsumerProcess::spawn(&spec).await.expect("spawn indexer");
    wait_for("the indexer to write some rows", STEP, || async {
        (env.events().await > 0).then_some(())
    })
    .await;
    // Mid-way: a crash. What it pulled but had not acknowledged comes back after the ack wait.
    indexer.kill();
    let at_kill = env.events().await;
    publish_all(&env.js, valid_batch(run, 1, 3001..=5000)).await;
    let mut indexer = ConsumerProcess::spawn(&spec)
        .await
        .expect("respawn indexer");

    wait_for("all 5000 events in Postgres", CATCH_UP, || async {
        (env.events().await >= 5000).then_some(())
    })
    .await;
    wait_for("the indexer to catch up", CATCH_UP, || async {
        let lag = consumers::read_lag(&env.js, "indexer", &["FOCUS"])
            .await
            .ok()?;
        lag.is_caught_up().then_some(())
    })
    .await;
    let pg = env.pg().await;
    let back = consumers::read_events_for_run(&pg, run)
        .await
        .expect("read back");
    assert_eq!(
        back.rows, 5000,
        "rows of the run (killed at {at_kill} rows)"
    );
    assert_eq!(back.duplicated, 0, "{:?}", back.duplicated_samples);
    let seen = &back.seen[&1];
    assert_eq!(seen.ranges().collect::<Vec<_>>(), [(1, 5000)]);
    assert_eq!(env.events().await, 5000);
    assert_eq!(back.latency_us.len(), 5000);
    // Status lines come every second while it runs (a fast catch-up can end before the first one:
    // wait for it rather than assume the run lasted a second).
    let log_path = dir.join("indexer.log");
    wait_for("a status line in the indexer's log", STEP, || async {
        std::fs::read_to_string(&log_path)
            .ok()
            .filter(|log| log.contains("rows/s"))
            .map(|_| ())
    })
    .await;
    // A clean stop exits 0.
    assert_eq!(indexer.terminate(Duration::from_secs(30)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_events_go_to_the_dlq_once_each_with_their_headers() {
    let env = Env::start(1).await;
    let run = "run-poison";
    let (_, good) = focus_event("focus.ping", run, 9, 1);
    let poison: Vec<(&str, String, &str)> = vec![
        ("focus.ping", "{not json".into(), "bad_json"),
        ("focus.ping", "[1,2,3]".into(), "bad_schema"),
        (
            "focus.ping",
            good.replace(r#""tenant_id":"t1","#, ""),
            "bad_schema",
        ),
        (
            "focus.ping",
            good.replace("2027-01-15T08:00:01.000Z", "soon"),
            "bad_schema",
        ),
        (
            "focus.ping",
            good.replace(r#""l1""#, r#""l\u00001""#),
            "bad_schema",
        ),
        ("focus.loss.idle", good.clone(), "unknown_type"),
        (
            "focus.teleport",
            good.replace("focus.ping", "focus.teleport"),
            "unknown_type",
        ),
    ];
    let mut messages = valid_batch(run, 1, 1..=500);
    for (i, (subject, payload, _)) in poison.iter().enumerate() {
        messages.push((subject.to_string(), format!("poison-{i}"), payload.clone()));
    }
    publish_all(&env.js, messages).await;
    let (stats, cancel, task) = env.run_in_process(ServiceKind::Indexer);
    wait_for("valid rows and poison routed", CATCH_UP, || async {
        let s = stats.snapshot();
        (s.written >= 500 && s.poison >= poison.len() as u64).then_some(())
    })
    .await;
    // The indexer records the DLQ stream in `dead_letters` as well.
    wait_for("dead letters recorded", CATCH_UP, || async {
        (stats.snapshot().dead_letters >= poison.len() as u64).then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(STEP, task)
        .await
        .expect("indexer stops")
        .expect("indexer task");

    let mut entries = Vec::new();
    dlq::scan(&env.js, &DlqFilter::default(), |e| entries.push(e))
        .await
        .expect("scan DLQ");
    assert_eq!(
        entries.len(),
        poison.len(),
        "one dead letter per poison event"
    );
    let focus = env.js.get_stream_no_info("FOCUS").await.expect("FOCUS");
    for entry in &entries {
        let (subject, payload, reason) = poison
            .iter()
            .find(|(_, p, _)| p.as_bytes() == entry.payload.as_ref())
            .unwrap_or_else(|| {
                panic!(
                    "DLQ#{} holds no poison payload (a valid event?)",
                    entry.dlq_seq
                )
            });
        assert_eq!(&entry.subject, subject);
        assert_eq!(entry.reason, *reason, "{payload}: {}", entry.error);
        assert_eq!(entry.stream, "FOCUS");
        assert_eq!(entry.consumer, "indexer");
        assert_eq!(entry.deliveries, Some(1));
        assert!(!entry.error.is_empty());
        let seq = entry.stream_seq.expect("stream sequence header");
        let original = focus
            .get_raw_message(seq)
            .await
            .expect("original by sequence");
        assert_eq!(
            original.payload, entry.payload,
            "sequence header points at the original"
        );
        let original_id = entry
            .headers
            .get(dlq::HEADER_MSG_ID)
            .map(|v| v.as_str().to_string());
        assert!(
            original_id
                .as_deref()
                .is_some_and(|id| id.starts_with("poison-")),
            "original message id kept: {original_id:?}"
        );
    }
    let pg = env.pg().await;
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM events WHERE run = $1", &[&run])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 500, "every valid event indexed, no poison");
    let dead: i64 = pg
        .query_one(
            "SELECT count(*) FROM dead_letters WHERE consumer = 'indexer'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(dead, poison.len() as i64);

    // `dlq list` groups them by reason.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_aivo-load"))
        .args(["dlq", "list", "--server", &env.server()])
        .env_remove("NATS_URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(STEP, output)
        .await
        .expect("dlq list in time")
        .expect("run");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("7 dead letters in 3 groups"), "{text}");
    assert!(
        text.contains(&format!("{:>8}  {:<15} FOCUS/indexer", 4, "bad_schema")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_loses_nothing() {
    let mut env = Env::start(1).await;
    let run = "run-outage";
    publish_all(&env.js, valid_batch(run, 1, 1..=1000)).await;
    let (stats, cancel, task) = env.run_in_process(ServiceKind::Indexer);
    wait_for("first 1000 rows", CATCH_UP, || async {
        (stats.snapshot().written >= 1000).then_some(())
    })
    .await;
    tokio::time::timeout(STEP, env.postgres.stop())
        .await
        .expect("stop in time")
        .expect("stop postgres");
    publish_all(&env.js, valid_batch(run, 1, 1001..=2000)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!stats.snapshot().db_up, "the indexer noticed the outage");
    tokio::time::timeout(STEP, env.postgres.restart())
        .await
        .expect("restart in time")
        .expect("restart postgres");
    wait_for("all 2000 rows after the outage", CATCH_UP, || async {
        (env.events().await >= 2000).then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(STEP, task)
        .await
        .expect("indexer stops")
        .expect("indexer task");
    let back = consumers::read_events_for_run(&env.pg().await, run)
        .await
        .expect("read back");
    assert_eq!(back.rows, 2000);
    assert_eq!(back.duplicated, 0);
    let mut dead = 0;
    dlq::scan(&env.js, &DlqFilter::default(), |_| dead += 1)
        .await
        .expect("scan");
    assert_eq!(dead, 0, "nothing exhausted its deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_deliveries_reach_the_dlq_and_replay_brings_them_into_events() {
    let env = Env::start(1).await;
    let run = "run-replay";
    // A consumer that cannot process anything: it naks each event until max deliver gives up.
    let flaky = env
        .js
        .get_stream_no_info("FOCUS")
        .await
        .expect("FOCUS")
        .create_consumer(consumer::pull::Config {
            durable_name: Some("flaky".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_deliver: 2,
            ..Default::default()
        })
        .await
        .expect("flaky consumer");
    let router_cancel = CancellationToken::new();
    let router_stats = Arc::new(std::sync::Mutex::new(dlq::RouterStats::default()));
    let router = tokio::spawn(dlq::run_router(
        env.js.client(),
        "flaky".into(),
        router_cancel.clone(),
        router_stats.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_all(&env.js, valid_batch(run, 1, 1..=20)).await;
    let mut messages = flaky.messages().await.expect("pull");
    let mut naks = 0;
    while naks < 40 {
        let message = tokio::time::timeout(STEP, messages.next())
            .await
            .expect("delivery in time")
            .expect("stream open")
            .expect("message");
        message.ack_with(AckKind::Nak(None)).await.expect("nak");
        naks += 1;
    }
    wait_for("20 events routed by the router", STEP, || async {
        (router_stats.lock().ok()?.routed >= 20).then_some(())
    })
    .await;
    router_cancel.cancel();
    router.await.expect("router task").expect("router");

    let mut entries = Vec::new();
    dlq::scan(&env.js, &DlqFilter::default(), |e| entries.push(e))
        .await
        .expect("scan");
    assert_eq!(entries.len(), 20);
    for e in &entries {
        assert_eq!(e.reason, "max_deliveries");
        assert_eq!(e.consumer, "flaky");
        assert_eq!(e.deliveries, Some(2));
        assert_eq!(e.stream, "FOCUS");
    }
    // Retention removed the originals meanwhile; the fixed consumer (the indexer) starts afterwards.
    env.js
        .get_stream("FOCUS")
        .await
        .expect("FOCUS")
        .purge()
        .await
        .expect("purge");
    let (stats, cancel, task) = env.run_in_process(ServiceKind::Indexer);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_aivo-load"))
        .args([
            "dlq",
            "replay",
            "--server",
            &env.server(),
            "--filter",
            "consumer=flaky,reason=max_deliveries",
            "--remove",
        ])
        .env_remove("NATS_URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(STEP, output)
        .await
        .expect("replay in time")
        .expect("run");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("replayed {:>8} to focus.ping", 18)),
        "{text}"
    );
    assert!(
        text.contains(&format!("replayed {:>8} to focus.loss.idle", 2)),
        "{text}"
    );
    assert!(
        text.contains("replayed 20 dead letters, removed 20 from DLQ"),
        "{text}"
    );
    wait_for("replayed events indexed", CATCH_UP, || async {
        (stats.snapshot().written >= 20).then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(STEP, task)
        .await
        .expect("indexer stops")
        .expect("indexer task");
    let back = consumers::read_events_for_run(&env.pg().await, run)
        .await
        .expect("read back");
    assert_eq!(back.rows, 20);
    assert_eq!(back.seen[&1].ranges().collect::<Vec<_>>(), [(1, 20)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_reaches_the_dlq_on_its_last_delivery_without_the_router() {
    let env = Env::start(1).await;
    let run = "run-exhausted";
    // Postgres refuses every event of learner l5 (seqs 5, 22, 39 of 40).
    let mut pg = env.pg().await;
    consumers::migrate(&mut pg).await.expect("migrate");
    pg.batch_execute("ALTER TABLE events ADD CONSTRAINT refuse_l5 CHECK (learner_id <> 'l5')")
        .await
        .expect("constraint");
    publish_all(&env.js, valid_batch(run, 1, 1..=40)).await;
    // No max-deliveries router: an advisory would go unheard, as when the router is disconnected.
    let mut config = ServiceConfig::new(ServiceKind::Indexer, &env.server(), &env.postgres.url());
    config.status_every = None;
    config.dlq_router = false;
    let stats = Arc::new(ConsumerStats::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let (stats, cancel) = (stats.clone(), cancel.clone());
        async move { consumers::run_service(config, stats, cancel).await }
    });
    // Nak delays 1 + 2 + 4 + 8 s before the fifth and last delivery.
    wait_for(
        "3 exhausted events routed by the worker",
        CATCH_UP,
        || async { (stats.snapshot().exhausted >= 3).then_some(()) },
    )
    .await;
    wait_for("the indexer caught up", STEP, || async {
        let lag = consumers::read_lag(&env.js, "indexer", &["FOCUS"])
            .await
            .ok()?;
        lag.is_caught_up().then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(STEP, task)
        .await
        .expect("indexer stops")
        .expect("indexer task")
        .expect("indexer");
    let mut entries = Vec::new();
    dlq::scan(&env.js, &DlqFilter::default(), |e| entries.push(e))
        .await
        .expect("scan");
    let mut seqs: Vec<String> = entries
        .iter()
        .map(|e| {
            assert_eq!(e.reason, "max_deliveries", "{e:?}");
            assert_eq!(
                (e.stream.as_str(), e.consumer.as_str()),
                ("FOCUS", "indexer")
            );
            assert_eq!(e.deliveries, Some(5), "{e:?}");
            assert!(e.error.contains("refuse_l5"), "{}", e.error);
            e.identity().map(|i| i.to_string()).unwrap_or_default()
        })
        .collect();
    seqs.sort();
    assert_eq!(
        seqs,
        [
            format!("{run}/1/22"),
            format!("{run}/1/39"),
            format!("{run}/1/5")
        ]
    );
    let back = consumers::read_events_for_run(&env.pg().await, run)
        .await
        .expect("read back");
    assert_eq!(back.rows, 37);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_counts_each_event_once_under_redelivery() {
    let env = Env::start(1).await;
    let run = "run-analytics";
    let events = valid_batch(run, 1, 1..=300);
    // The first 50 again under other message ids: redeliveries as far as analytics can tell.
    let again = under_new_ids(&events[..50]);
    publish_all(&env.js, events).await;
    publish_all(&env.js, again).await;
    let (stats, cancel, task) = env.run_in_process(ServiceKind::Analytics);
    wait_for("analytics to take all 350 messages", CATCH_UP, || async {
        let s = stats.snapshot();
        (s.written + s.duplicates >= 350).then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(STEP, task)
        .await
        .expect("analytics stops")
        .expect("analytics task");
    assert_eq!(stats.snapshot().written, 300);
    let pg = env.pg().await;
    let row = pg
        .query_one(
            "SELECT sum(pings)::int8, sum(focus_losses)::int8, sum(focused_ms)::int8 FROM analytics_focus_minute",
            &[],
        )
        .await
        .expect("sums");
    // valid_batch: every tenth event is a focus loss, the rest are focused 5 s pings.
    assert_eq!(row.get::<_, i64>(0), 270);
    assert_eq!(row.get::<_, i64>(1), 30);
    assert_eq!(row.get::<_, i64>(2), 270 * 5000);
    let events: i64 = pg
        .query_one("SELECT sum(events)::int8 FROM analytics_tenant_hour", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(events, 300);
}
