//! Durable timers fire once when the injected clock passes them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::Duration;
use common::{CONSUMER, World};
use sqlx::PgConnection;
use vbp_bus::HandlerError;
use vbp_bus::timers::{self, DueTimer, Scheduler, TimerHandler};
use vbp_kernel::Clock;

#[derive(Default)]
struct Overdue {
    fired: Arc<AtomicUsize>,
    fail_first: AtomicUsize,
}

#[async_trait]
impl TimerHandler for Overdue {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(HandlerError::transient("store busy"));
        }
        let n: i64 = timer.payload()?;
        sqlx::query(
            "INSERT INTO effects (event_id, n, consumer) VALUES (gen_random_uuid(), $1, $2)",
        )
        .bind(n)
        .bind(&timer.key)
        .execute(conn)
        .await?;
        self.fired.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn scheduler(w: &World, handler: Overdue) -> Scheduler {
    Scheduler::new(w.consumer.clone(), w.env.clock(), CONSUMER)
        .handler("payment_due", Arc::new(handler))
}

async fn arm(w: &World, key: &str, after: Duration, n: i64) {
    let mut tx = w.consumer.begin().await.unwrap();
    timers::schedule(
        &mut tx,
        "payment_due",
        key,
        w.env.clock.now() + after,
        None,
        &n,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_timer_fires_once_when_the_clock_passes_its_due_time() {
    let w = World::new().await;
    let handler = Overdue::default();
    let fired = handler.fired.clone();
    let s = scheduler(&w, handler);
    arm(&w, "order-1", Duration::days(30), 1).await;
    assert_eq!(s.tick().await.unwrap(), 0, "fired early");
    w.env
        .clock
        .advance(Duration::days(30) - Duration::seconds(1));
    assert_eq!(s.tick().await.unwrap(), 0, "fired a second early");
    w.env.clock.advance(Duration::seconds(1));
    assert_eq!(s.tick().await.unwrap(), 1);
    assert_eq!(s.tick().await.unwrap(), 0, "fired twice");
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_cancelled_timer_never_fires_and_a_moved_one_fires_at_its_new_time() {
    let w = World::new().await;
    let s = scheduler(&w, Overdue::default());
    arm(&w, "a", Duration::days(1), 1).await;
    arm(&w, "b", Duration::days(1), 2).await;
    let mut tx = w.consumer.begin().await.unwrap();
    assert!(timers::cancel(&mut tx, "payment_due", "a").await.unwrap());
    tx.commit().await.unwrap();
    arm(&w, "b", Duration::days(3), 2).await;
    w.env.clock.advance(Duration::days(2));
    assert_eq!(s.tick().await.unwrap(), 0);
    w.env.clock.advance(Duration::days(1));
    assert_eq!(s.tick().await.unwrap(), 1);
    let keys: Vec<String> = sqlx::query_scalar("SELECT consumer FROM effects")
        .fetch_all(&w.consumer)
        .await
        .unwrap();
    assert_eq!(keys, vec!["b".to_owned()]);
}

#[tokio::test]
async fn a_failing_timer_is_retried_later_and_two_schedulers_fire_each_timer_once() {
    let w = World::new().await;
    // Fails in its batch, and again when fired alone: that attempt counts.
    let flaky = Overdue {
        fail_first: AtomicUsize::new(2),
        ..Overdue::default()
    };
    let s = scheduler(&w, flaky);
    arm(&w, "flaky", Duration::hours(1), 7).await;
    w.env.clock.advance(Duration::hours(1));
    assert_eq!(
        s.tick().await.unwrap(),
        0,
        "the failed attempt counts as fired"
    );
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM timers WHERE key = 'flaky'")
            .fetch_one(&w.consumer)
            .await
            .unwrap();
    assert_eq!((attempts, error.as_deref()), (1, Some("store busy")));
    w.env.clock.advance(Duration::minutes(1));
    assert_eq!(s.tick().await.unwrap(), 1);

    for i in 0..200 {
        arm(&w, &format!("k{i}"), Duration::minutes(5), i).await;
    }
    w.env.clock.advance(Duration::minutes(5));
    let (a, b) = (
        scheduler(&w, Overdue::default()),
        scheduler(&w, Overdue::default()),
    );
    let (fa, fb) = tokio::join!(a.tick(), b.tick());
    assert_eq!(fa.unwrap() + fb.unwrap(), 200);
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT consumer) FROM effects WHERE consumer LIKE 'k%'",
    )
    .fetch_one(&w.consumer)
    .await
    .unwrap();
    assert_eq!((rows, distinct), (200, 200));
}

/// Re-arms itself a day later, like a recurring reminder.
struct Recurring;

#[async_trait]
impl TimerHandler for Recurring {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO effects (event_id, n, consumer) VALUES (gen_random_uuid(), 0, $1)",
        )
        .bind(&timer.key)
        .execute(&mut *conn)
        .await?;
        timers::schedule(
            conn,
            &timer.kind,
            &timer.key,
            timer.due_at + Duration::days(1),
            None,
            &0,
        )
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_timer_that_rearms_its_own_key_stays_armed() {
    let w = World::new().await;
    let s = Scheduler::new(w.consumer.clone(), w.env.clock(), CONSUMER)
        .handler("reminder", Arc::new(Recurring));
    let mut tx = w.consumer.begin().await.unwrap();
    timers::schedule(
        &mut tx,
        "reminder",
        "monthly",
        w.env.clock.now() + Duration::days(1),
        None,
        &0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for day in 1..=3 {
        w.env.clock.advance(Duration::days(1));
        assert_eq!(s.tick().await.unwrap(), 1, "day {day}");
    }
    let fired: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
        .fetch_one(&w.consumer)
        .await
        .unwrap();
    assert_eq!(fired, 3);
}

/// Refuses the timer keyed "bad" for good; fires the others.
struct OneBad;

#[async_trait]
impl TimerHandler for OneBad {
    async fn fire(&self, conn: &mut PgConnection, timer: &DueTimer) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO effects (event_id, n, consumer) VALUES (gen_random_uuid(), 0, $1)",
        )
        .bind(&timer.key)
        .execute(&mut *conn)
        .await?;
        if timer.key == "bad" {
            return Err(HandlerError::permanent("the acceptance is gone"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn timers_falling_due_together_fire_once_each_and_a_bad_one_is_parked_alone() {
    let w = World::new().await;
    for i in 0..250 {
        let key = if i == 120 {
            "bad".to_owned()
        } else {
            format!("k{i}")
        };
        arm(&w, &key, Duration::days(31), i).await;
    }
    let s = Scheduler::new(w.consumer.clone(), w.env.clock(), CONSUMER)
        .handler("payment_due", Arc::new(OneBad));
    w.env.clock.advance(Duration::days(31));
    assert_eq!(s.tick().await.unwrap(), 249);
    let (rows, distinct, bad): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT consumer), count(*) FILTER (WHERE consumer = 'bad') \
         FROM effects",
    )
    .fetch_one(&w.consumer)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct, bad),
        (249, 249, 0),
        "the bad timer's effect rolled back"
    );
    let (fired, error): (Option<chrono::DateTime<chrono::Utc>>, Option<String>) =
        sqlx::query_as("SELECT fired_at, last_error FROM timers WHERE key = 'bad'")
            .fetch_one(&w.consumer)
            .await
            .unwrap();
    assert_eq!(
        (fired, error.as_deref()),
        (None, Some("the acceptance is gone"))
    );
    assert_eq!(s.tick().await.unwrap(), 0, "nothing fires twice");
}
