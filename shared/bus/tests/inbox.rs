//! Exactly-once effects over at-least-once delivery.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Noted, Recorder, World};
use vbp_bus::Context;

#[tokio::test]
async fn a_redelivered_event_has_one_effect() {
    let w = World::new().await;
    let stop = w.spawn(w.consumer(w.spec("redeliver"), Recorder::default()));
    w.produce(0, 10).await;
    w.relay_all().await;
    assert_eq!(w.wait_effects(10, 20).await, (10, 10));
    // Put every event in the stream a second time, past JetStream's dedup.
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        vbp_bus::outbox::republish_since(&w.producer, since)
            .await
            .unwrap(),
        10
    );
    w.relay_all().await;
    assert_eq!(w.stream_messages().await, 20);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.effects().await, (10, 10));
    let duplicates: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&w.consumer)
        .await
        .unwrap();
    assert_eq!(duplicates, 10);
    stop.cancel();
}

#[tokio::test]
async fn a_failing_handler_is_retried_and_then_succeeds() {
    let w = World::new().await;
    let recorder = Recorder {
        fail_first: AtomicUsize::new(2),
        ..Recorder::default()
    };
    let attempts = recorder.attempts.clone();
    let mut spec = w.spec("retry");
    spec.batch_mode = false;
    let stop = w.spawn(w.consumer(spec, recorder));
    w.produce(0, 1).await;
    w.relay_all().await;
    assert_eq!(w.wait_effects(1, 20).await, (1, 1));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dlq")
        .fetch_one(&w.consumer)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    stop.cancel();
}

#[tokio::test]
async fn a_poison_event_reaches_the_dlq_with_its_reason_and_does_not_block_the_next() {
    let w = World::new().await;
    let stop = w.spawn(w.consumer(w.spec("poison"), Recorder::default()));
    let mut tx = w.producer.begin().await.unwrap();
    let ctx = Context::new(None);
    w.outbox
        .append(
            &mut tx,
            &ctx,
            &Noted {
                n: 1,
                poison: false,
            },
        )
        .await
        .unwrap();
    w.outbox
        .append(&mut tx, &ctx, &Noted { n: 2, poison: true })
        .await
        .unwrap();
    w.outbox
        .append(
            &mut tx,
            &ctx,
            &Noted {
                n: 3,
                poison: false,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // And one whose body does not fit the contract at all.
    let mut tx = w.producer.begin().await.unwrap();
    w.outbox
        .append_raw(
            &mut tx,
            &ctx,
            &w.platform.ns.event(common::PRODUCER, "test", "noted"),
            "orders.test.noted",
            1,
            &serde_json::json!({"n": "four"}),
        )
        .await
        .unwrap();
    w.produce(5, 1).await;
    tx.commit().await.unwrap();
    w.relay_all().await;

    assert_eq!(w.wait_effects(3, 20).await, (3, 3));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = vbp_bus::dlq::list(&w.consumer, common::CONSUMER, 10)
            .await
            .unwrap();
        if letters.len() >= 2 || tokio::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert_eq!(letters.len(), 2, "{reasons:?}");
    assert!(reasons.contains(&"event 2 is poison"), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("payload field n") && r.contains("invalid type")),
        "{reasons:?}"
    );
    let applied: Vec<i64> = sqlx::query_scalar("SELECT n FROM effects ORDER BY n")
        .fetch_all(&w.consumer)
        .await
        .unwrap();
    assert_eq!(applied, vec![1, 3, 5]);

    // The dead letter is also on the DLQ stream, for alerting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let relay = vbp_bus::Relay::new(
            w.consumer.clone(),
            w.platform.js.clone(),
            common::CONSUMER,
            Default::default(),
        );
        relay.relay_once().await.unwrap();
        let mut dlq = w
            .platform
            .js
            .get_stream(w.platform.ns.dlq_stream())
            .await
            .unwrap();
        if dlq.info().await.unwrap().state.messages == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead letters never reached the DLQ stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
}

#[tokio::test]
async fn a_handler_that_keeps_failing_is_dead_lettered_after_max_deliver_and_replay_applies_it() {
    let w = World::new().await;
    let always = Recorder {
        always_fail: true,
        ..Recorder::default()
    };
    let attempts = always.attempts.clone();
    let mut spec = w.spec("giveup");
    spec.batch_mode = false;
    let stop = w.spawn(w.consumer(spec.clone(), always));
    w.produce(0, 1).await;
    w.relay_all().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let letter = loop {
        let letters = vbp_bus::dlq::list(&w.consumer, common::CONSUMER, 10)
            .await
            .unwrap();
        if let Some(l) = letters.into_iter().next() {
            break l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert!(
        letter.reason.starts_with("gave up after 3 attempts"),
        "{}",
        letter.reason
    );
    stop.cancel();

    // The cause is fixed (a healthy handler); the operator replays.
    let stop = w.spawn(w.consumer(spec, Recorder::default()));
    assert_eq!(
        vbp_bus::dlq::request_replay(&w.consumer, Some(letter.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(w.wait_effects(1, 20).await, (1, 1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let letters = vbp_bus::dlq::list(&w.consumer, common::CONSUMER, 10)
            .await
            .unwrap();
        if letters[0].replay_outcome.as_deref() == Some("applied") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replay outcome never recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
}

#[tokio::test]
async fn two_consumer_replicas_apply_each_event_once() {
    let w = World::new().await;
    let a = w.spawn(w.consumer(w.spec("shared"), Recorder::default()));
    let b = w.spawn(w.consumer(w.spec("shared"), Recorder::default()));
    for chunk in 0..10 {
        w.produce(chunk * 100, 100).await;
    }
    w.relay_all().await;
    assert_eq!(w.wait_effects(1000, 30).await, (1000, 1000));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.effects().await, (1000, 1000));
    a.cancel();
    b.cancel();
}

/// Applies events keyed by `n % 3`, logging the order it applied them in.
struct Keyed;

#[async_trait::async_trait]
impl vbp_bus::Handler for Keyed {
    async fn handle(
        &self,
        conn: &mut sqlx::PgConnection,
        msg: &vbp_bus::Incoming,
    ) -> Result<(), vbp_bus::HandlerError> {
        let event: common::Noted = msg.json()?;
        sqlx::query("INSERT INTO lane_log (key, n) VALUES ($1, $2)")
            .bind(event.n % 3)
            .bind(event.n)
            .execute(conn)
            .await?;
        Ok(())
    }

    fn lane_key(&self, _subject: &str, payload: &[u8]) -> u64 {
        serde_json::from_slice::<common::Noted>(payload).map_or(0, |e| e.n as u64 % 3)
    }
}

#[tokio::test]
async fn lanes_apply_batches_side_by_side_and_keep_each_keys_order() {
    let w = World::new().await;
    sqlx::query("CREATE TABLE lane_log (seq bigserial PRIMARY KEY, key bigint, n bigint)")
        .execute(&w.consumer)
        .await
        .unwrap();
    let mut spec = w.spec("lanes");
    spec.lanes = 3;
    spec.batch = 40;
    w.produce(0, 600).await;
    w.relay_all().await;
    let stop = w.spawn(w.consumer(spec, Keyed));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM lane_log")
            .fetch_one(&w.consumer)
            .await
            .unwrap();
        if n >= 600 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT n) FROM lane_log")
            .fetch_one(&w.consumer)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (600, 600), "each event applied once");
    let overtaken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT n, lag(n) OVER (PARTITION BY key ORDER BY seq) AS before \
         FROM lane_log) t WHERE before > n",
    )
    .fetch_one(&w.consumer)
    .await
    .unwrap();
    assert_eq!(
        overtaken, 0,
        "an event applied before one published ahead of it with its key"
    );
}
