use vbp_contracts::MessageMeta;
use vbp_kernel::{Actor, CorrelationId, EventId};

/// The causal context of whatever a handler produces: which business flow it
/// belongs to, which message caused it and who acted. Events appended to the
/// outbox and RPCs sent carry it on.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub correlation: CorrelationId,
    pub causation: Option<EventId>,
    pub actor: Option<Actor>,
}

impl Context {
    /// The first step of a new business flow.
    pub fn new(actor: Option<Actor>) -> Self {
        Self {
            correlation: CorrelationId::new(),
            causation: None,
            actor,
        }
    }

    pub fn with_correlation(correlation: CorrelationId, actor: Option<Actor>) -> Self {
        Self {
            correlation,
            causation: None,
            actor,
        }
    }

    /// What a consumer produces in reaction to `meta` stays in its flow.
    pub fn caused_by(meta: &MessageMeta) -> Self {
        Self {
            correlation: meta.correlation,
            causation: Some(meta.id),
            actor: meta.actor.clone(),
        }
    }
}
