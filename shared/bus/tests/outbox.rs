//! An event exists iff its transaction committed, and relays never publish a
//! row twice into the stream.

mod common;

use common::{Noted, World};
use vbp_bus::Context;

#[tokio::test]
async fn an_event_exists_iff_its_transaction_committed() {
    let w = World::new().await;
    let mut tx = w.producer.begin().await.unwrap();
    w.outbox
        .append(
            &mut tx,
            &Context::new(None),
            &Noted {
                n: 1,
                poison: false,
            },
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(w.relay_all().await, 0, "a rolled-back event was relayed");
    assert_eq!(w.stream_messages().await, 0);

    w.produce(2, 1).await;
    assert_eq!(w.relay_all().await, 1);
    assert_eq!(w.stream_messages().await, 1);
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
        .fetch_one(&w.producer)
        .await
        .unwrap();
    assert_eq!(unsent, 0, "a published row stays unmarked");
}

#[tokio::test]
async fn a_relay_killed_between_publish_and_mark_yields_one_effect_downstream() {
    let w = World::new().await;
    let recorder = common::Recorder::default();
    let stop = w.spawn(w.consumer(w.spec("once"), recorder));
    w.produce(0, 50).await;
    assert_eq!(w.relay_all().await, 50);
    // The crash: JetStream acknowledged, but the mark never committed.
    sqlx::query("INSERT INTO outbox_pending (seq) SELECT seq FROM outbox")
        .execute(&w.producer)
        .await
        .unwrap();
    assert_eq!(
        w.relay_all().await,
        50,
        "the restarted relay publishes the rows again"
    );
    assert_eq!(
        w.stream_messages().await,
        50,
        "JetStream dropped the second copies by Nats-Msg-Id"
    );
    assert_eq!(w.wait_effects(50, 20).await, (50, 50));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.effects().await, (50, 50));
    stop.cancel();
}

#[tokio::test]
async fn two_relays_at_once_put_every_event_in_the_stream_once() {
    let w = World::new().await;
    for chunk in 0..20 {
        w.produce(chunk * 100, 100).await;
    }
    let (a, b) = (w.relay(), w.relay());
    let run = |relay: vbp_bus::Relay| async move {
        let mut claimed = 0;
        loop {
            match relay.relay_once().await.unwrap() {
                0 => return claimed,
                n => claimed += n,
            }
        }
    };
    let (ca, cb) = tokio::join!(run(a), run(b));
    assert_eq!(
        ca + cb,
        2000,
        "a row was claimed by both relays (or by neither)"
    );
    assert_eq!(w.stream_messages().await, 2000);
}

#[tokio::test]
async fn events_appended_together_are_the_rows_appended_one_by_one_in_order() {
    let w = World::new().await;
    let ctx = Context::new(None);
    let events: Vec<Noted> = (1..=3).map(|n| Noted { n, poison: false }).collect();
    let mut tx = w.producer.begin().await.unwrap();
    let ids = w.outbox.append_many(&mut tx, &ctx, &events).await.unwrap();
    let single = w.outbox.append(&mut tx, &ctx, &events[0]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), 3);

    let rows: Vec<(uuid::Uuid, String, String, serde_json::Value)> =
        sqlx::query_as("SELECT id, subject, event_type, payload FROM outbox ORDER BY seq")
            .fetch_all(&w.producer)
            .await
            .unwrap();
    let got: Vec<i64> = rows.iter().map(|r| r.3["n"].as_i64().unwrap()).collect();
    assert_eq!(got, [1, 2, 3, 1]);
    assert_eq!(rows[0].0, ids[0].as_uuid());
    assert_eq!(rows[3].0, single.as_uuid());
    assert_eq!((&rows[0].1, &rows[0].2), (&rows[3].1, &rows[3].2));
    assert_eq!(w.relay_all().await, 4);
    assert_eq!(w.stream_messages().await, 4);
}
