//! `GET /api/v1/flows/{correlation}`: every service's part of one business
//! flow, asked of all services at once and merged by time. A service that does
//! not answer makes the timeline incomplete, not the request failed: an
//! operator chasing a stuck order needs what the others know.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use vbp_bus::{CallError, Context};
use vbp_contracts::Service;
use vbp_contracts::system::{self, FlowEntry, FlowRequest, FlowResponse};
use vbp_kernel::CorrelationId;

use crate::problem::Problem;
use crate::request::RequestContext;
use crate::{CompiledRoute, Gateway, forward};

/// One flow's merged timeline.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FlowTimeline {
    pub correlation: CorrelationId,
    /// Whether every service answered; when false, `entries` may lack steps.
    pub complete: bool,
    /// All services' entries, oldest first.
    pub entries: Vec<FlowEntry>,
    /// How each service answered.
    pub services: Vec<ServiceAnswer>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ServiceAnswer {
    pub service: Service,
    pub status: AnswerStatus,
    /// Entries this service contributed.
    pub entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerStatus {
    Ok,
    /// No instance of the service is running.
    Unavailable,
    /// The service did not answer in time.
    Timeout,
    /// The service answered with an error.
    Error,
}

pub(crate) async fn handle(
    gateway: &Gateway,
    compiled: &CompiledRoute,
    request: Request,
) -> Result<Response, Problem> {
    let (mut parts, _body) = request.into_parts();
    let actor = gateway.admit(
        &parts.headers,
        compiled.route.policy.as_ref().expect("validated table"),
    )?;
    let params = forward::path_params(&mut parts).await?;
    let raw = params
        .iter()
        .find(|(k, _)| k == "correlation")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let correlation: CorrelationId = raw
        .parse()
        .map_err(|e: vbp_kernel::IdParseError| Problem::invalid("correlation", e.to_string()))?;
    let ctx = Context::with_correlation(RequestContext::of(&parts).correlation, Some(actor));
    let timeline = timeline(gateway, &ctx, correlation).await;
    Ok(axum::Json(timeline).into_response())
}

/// Asks every backend service concurrently, each bounded by the fan-out
/// deadline, and merges what came back.
pub async fn timeline(
    gateway: &Gateway,
    ctx: &Context,
    correlation: CorrelationId,
) -> FlowTimeline {
    let rpc = gateway.rpc.with_timeout(gateway.fanout_timeout());
    let body = Bytes::from(serde_json::to_vec(&FlowRequest { correlation }).unwrap_or_default());
    let asks = Service::BACKENDS.map(|service| {
        let (rpc, body) = (rpc.clone(), body.clone());
        async move {
            let reply = rpc.call_raw(service, system::FLOW, ctx, body).await;
            (service, reply)
        }
    });
    let answers = futures::future::join_all(asks).await;
    merge(correlation, answers)
}

fn merge(
    correlation: CorrelationId,
    answers: Vec<(Service, Result<Bytes, CallError>)>,
) -> FlowTimeline {
    let mut entries = Vec::new();
    let mut services = Vec::new();
    for (service, reply) in answers {
        let parsed = reply.and_then(|bytes| {
            serde_json::from_slice::<FlowResponse>(&bytes)
                .map_err(|e| CallError::Decode(e.to_string()))
        });
        let answer = match parsed {
            Ok(flow) => {
                let n = flow.entries.len();
                entries.extend(flow.entries);
                ServiceAnswer {
                    service,
                    status: AnswerStatus::Ok,
                    entries: n,
                    detail: None,
                }
            }
            Err(e) => {
                let status = match &e {
                    CallError::NoResponders(_) => AnswerStatus::Unavailable,
                    CallError::Timeout(..) => AnswerStatus::Timeout,
                    _ => AnswerStatus::Error,
                };
                ServiceAnswer {
                    service,
                    status,
                    entries: 0,
                    detail: Some(e.to_string()),
                }
            }
        };
        services.push(answer);
    }
    // Ties (same instant) keep a stable, meaningful order: emitted before
    // consumed within a service, then by event id (UUIDv7, so creation order).
    entries.sort_by(|a, b| {
        (a.at, a.service, direction_rank(a), a.event_id).cmp(&(
            b.at,
            b.service,
            direction_rank(b),
            b.event_id,
        ))
    });
    FlowTimeline {
        correlation,
        complete: services.iter().all(|s| s.status == AnswerStatus::Ok),
        entries,
        services,
    }
}

fn direction_rank(entry: &FlowEntry) -> u8 {
    match entry.direction {
        system::FlowDirection::Emitted => 0,
        system::FlowDirection::Consumed => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vbp_kernel::EventId;

    fn entry(service: Service, at: &str, event_type: &str) -> FlowEntry {
        FlowEntry {
            service,
            direction: system::FlowDirection::Emitted,
            event_id: EventId::new(),
            event_type: event_type.into(),
            subject: format!("t.evt.{service}.x.{event_type}"),
            at: at.parse().unwrap(),
            actor: None,
            causation: None,
        }
    }

    fn reply(entries: Vec<FlowEntry>) -> Result<Bytes, CallError> {
        Ok(serde_json::to_vec(&FlowResponse { entries })
            .unwrap()
            .into())
    }

    #[test]
    fn merges_by_time_and_reports_missing_services() {
        let answers = vec![
            (
                Service::Orders,
                reply(vec![
                    entry(Service::Orders, "2024-08-01T01:00:00Z", "placed"),
                    entry(Service::Orders, "2024-08-01T01:00:02Z", "accepted"),
                ]),
            ),
            (
                Service::Prepayment,
                reply(vec![entry(
                    Service::Prepayment,
                    "2024-08-01T01:00:01Z",
                    "offset",
                )]),
            ),
            (Service::Issues, Err(CallError::NoResponders("x".into()))),
            (
                Service::Agreements,
                Err(CallError::Timeout("x".into(), Duration::from_millis(5))),
            ),
        ];
        let t = merge(CorrelationId::new(), answers);
        let order: Vec<&str> = t.entries.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(order, ["placed", "offset", "accepted"]);
        assert!(!t.complete);
        let status: Vec<AnswerStatus> = t.services.iter().map(|s| s.status).collect();
        assert_eq!(
            status,
            [
                AnswerStatus::Ok,
                AnswerStatus::Ok,
                AnswerStatus::Unavailable,
                AnswerStatus::Timeout
            ]
        );
        assert_eq!(t.services[0].entries, 2);
    }
}
