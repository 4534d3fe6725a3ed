//! The broker goes away or loses its data; nothing accepted is lost.

mod common;

use std::time::Duration;

use common::{Recorder, World};
use vbp_platform::testkit::{NatsServer, TestEnv};

#[tokio::test]
async fn nats_stopped_and_restarted_under_a_running_service_loses_nothing() {
    let mut nats = NatsServer::start().await;
    let w = World::on(TestEnv::with_nats(nats.url()).await).await;
    let stop_consumer = w.spawn(w.consumer(w.spec("outage"), Recorder::default()));
    let stop_relay = tokio_util::sync::CancellationToken::new();
    tokio::spawn(w.relay().run(stop_relay.clone()));

    w.produce(0, 100).await;
    assert_eq!(w.wait_effects(100, 20).await, (100, 100));

    nats.kill();
    // Work accepted while the broker is down waits in the outbox.
    w.produce(100, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart().await;
    w.produce(200, 100).await;

    assert_eq!(w.wait_effects(300, 60).await, (300, 300));
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
        .fetch_one(&w.producer)
        .await
        .unwrap();
    assert_eq!(unsent, 0);
    stop_consumer.cancel();
    stop_relay.cancel();
}

#[tokio::test]
async fn republish_after_the_stream_was_purged_restores_every_event_exactly_once_downstream() {
    let w = World::new().await;
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(5);
    let live = w.spawn(w.consumer(w.spec("live"), Recorder::default()));
    w.produce(0, 200).await;
    w.relay_all().await;
    assert_eq!(w.wait_effects(200, 20).await, (200, 200));
    live.cancel();

    // The broker lost everything (its dedup memory survives a purge).
    let stream = w.platform.js.get_stream(&w.stream).await.unwrap();
    stream.purge().await.unwrap();
    assert_eq!(w.stream_messages().await, 0);

    let queued = vbp_bus::outbox::republish_since(&w.producer, t0)
        .await
        .unwrap();
    assert_eq!(queued, 200);
    w.relay_all().await;
    assert_eq!(
        w.stream_messages().await,
        200,
        "every event is back in the stream"
    );

    // The live consumer resumes: everything it saw is a duplicate.
    let live = w.spawn(w.consumer(w.spec("live"), Recorder::default()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.effects().await, (200, 200));
    live.cancel();

    // A projection rebuilt from the stream gets each event exactly once.
    sqlx::query("TRUNCATE effects")
        .execute(&w.consumer)
        .await
        .unwrap();
    let rebuilt = w.spawn(w.consumer(w.spec("rebuilt"), Recorder::default()));
    assert_eq!(w.wait_effects(200, 20).await, (200, 200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.effects().await, (200, 200));
    rebuilt.cancel();
}
