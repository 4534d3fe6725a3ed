//! Request/reply: round trip, timeout, error mapping, and one trace id from
//! the caller through a published event to its consumer.

mod common;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vbp_bus::{CallError, Context, RpcError, RpcServer};
use vbp_contracts::{RpcOp, Service};
use vbp_platform::testkit::TestEnv;

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct AddRequest {
    a: i64,
    b: i64,
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
struct AddResponse {
    sum: i64,
    actor_sub: Option<String>,
}

struct Add;
impl RpcOp for Add {
    const SERVICE: Service = Service::Orders;
    const NAME: &'static str = "add";
    type Request = AddRequest;
    type Response = AddResponse;
}

struct Slow;
impl RpcOp for Slow {
    const SERVICE: Service = Service::Orders;
    const NAME: &'static str = "slow";
    type Request = AddRequest;
    type Response = AddResponse;
}

async fn serve(env: &TestEnv) -> (vbp_platform::Platform, CancellationToken) {
    let platform = env.platform().await;
    let stop = CancellationToken::new();
    let server = RpcServer::new(platform.nats.clone(), platform.ns.clone(), Service::Orders)
        .route::<Add, _, _>(|ctx: Context, req: AddRequest| async move {
            if req.b < 0 {
                return Err(RpcError::invalid("b", "b must not be negative"));
            }
            Ok(AddResponse {
                sum: req.a + req.b,
                actor_sub: ctx.actor.map(|a| a.sub),
            })
        })
        .route::<Slow, _, _>(|_ctx, req: AddRequest| async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(AddResponse {
                sum: req.a + req.b,
                actor_sub: None,
            })
        });
    let s = stop.clone();
    tokio::spawn(async move { server.serve(s).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    (platform, stop)
}

fn actor() -> vbp_kernel::Actor {
    serde_json::from_value(serde_json::json!({
        "sub": "buyer-1", "org": uuid::Uuid::now_v7(), "org_kind": "hospital",
        "region": "210902", "roles": ["buyer"]
    }))
    .unwrap()
}

#[tokio::test]
async fn round_trip_carries_the_actor() {
    let env = TestEnv::new().await;
    let (platform, stop) = serve(&env).await;
    let client = platform.rpc_client();
    let out = client
        .call::<Add>(&Context::new(Some(actor())), &AddRequest { a: 2, b: 3 })
        .await
        .unwrap();
    assert_eq!(
        out,
        AddResponse {
            sum: 5,
            actor_sub: Some("buyer-1".into())
        }
    );
    stop.cancel();
}

#[tokio::test]
async fn errors_keep_their_status_code_and_field() {
    let env = TestEnv::new().await;
    let (platform, stop) = serve(&env).await;
    let client = platform.rpc_client();
    let ctx = Context::new(None);
    match client.call::<Add>(&ctx, &AddRequest { a: 1, b: -1 }).await {
        Err(CallError::Remote(RpcError(body))) => {
            assert_eq!(
                (body.status, body.code.as_str(), body.field.as_deref()),
                (422, "validation_failed", Some("b"))
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // A body of the wrong shape names the field; a broken one says so.
    match client
        .call_raw(
            Service::Orders,
            "add",
            &ctx,
            br#"{"a": 1, "b": "x"}"#.as_slice().into(),
        )
        .await
    {
        Err(CallError::Remote(RpcError(body))) => {
            assert_eq!((body.status, body.field.as_deref()), (422, Some("b")))
        }
        other => panic!("{other:?}"),
    }
    match client
        .call_raw(Service::Orders, "add", &ctx, b"{not json".as_slice().into())
        .await
    {
        Err(CallError::Remote(RpcError(body))) => {
            assert_eq!((body.status, body.code.as_str()), (400, "malformed_json"))
        }
        other => panic!("{other:?}"),
    }
    stop.cancel();
}

#[tokio::test]
async fn a_slow_service_times_out_and_a_missing_one_has_no_responders() {
    let env = TestEnv::new().await;
    let (platform, stop) = serve(&env).await;
    let client = platform
        .rpc_client()
        .with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let slow = client
        .call::<Slow>(&Context::new(None), &AddRequest { a: 1, b: 1 })
        .await;
    assert!(matches!(slow, Err(CallError::Timeout(..))), "{slow:?}");
    assert!(started.elapsed() < Duration::from_millis(1200));
    let missing = client
        .call_raw(
            Service::Issues,
            "anything",
            &Context::new(None),
            bytes::Bytes::new(),
        )
        .await;
    assert!(
        matches!(missing, Err(CallError::NoResponders(_))),
        "{missing:?}"
    );
    stop.cancel();
}

#[tokio::test]
async fn one_trace_id_from_caller_through_an_event_to_its_consumer() {
    use common::{Noted, Recorder, World};
    let w = World::new().await;
    let recorder = Recorder::default();
    let seen = recorder.traceparents.clone();
    let stop = w.spawn(w.consumer(w.spec("traced"), recorder));

    // The producer's RPC handler appends an event in its transaction.
    struct Note;
    impl RpcOp for Note {
        const SERVICE: Service = Service::Orders;
        const NAME: &'static str = "note";
        type Request = AddRequest;
        type Response = AddResponse;
    }
    let pool = w.producer.clone();
    let outbox = w.outbox.clone();
    let server = RpcServer::new(
        w.platform.nats.clone(),
        w.platform.ns.clone(),
        Service::Orders,
    )
    .route::<Note, _, _>(move |ctx: Context, req: AddRequest| {
        let (pool, outbox) = (pool.clone(), outbox.clone());
        async move {
            let mut tx = pool.begin().await?;
            outbox
                .append(
                    &mut tx,
                    &ctx,
                    &Noted {
                        n: req.a,
                        poison: false,
                    },
                )
                .await?;
            tx.commit().await?;
            Ok(AddResponse {
                sum: req.a,
                actor_sub: None,
            })
        }
    });
    let server_stop = CancellationToken::new();
    let s = server_stop.clone();
    tokio::spawn(async move { server.serve(s).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let span = tracing::info_span!("caller", trace_id = tracing::field::Empty);
    let caller_trace =
        vbp_bus::trace::trace_id_of(&span).expect("tracing installed by the test kit");
    let client = w.platform.rpc_client();
    client
        .call::<Note>(&Context::new(None), &AddRequest { a: 7, b: 0 })
        .instrument(span)
        .await
        .unwrap();
    w.relay_all().await;
    assert_eq!(w.wait_effects(1, 20).await, (1, 1));
    let traceparents = seen.lock().unwrap().clone();
    assert_eq!(traceparents.len(), 1);
    assert_eq!(
        vbp_bus::trace::trace_id_of_traceparent(&traceparents[0]),
        Some(caller_trace.as_str())
    );
    stop.cancel();
    server_stop.cancel();
}
