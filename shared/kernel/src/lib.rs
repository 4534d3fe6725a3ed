//! Domain primitives shared by every service of the VBP (集中带量采购) execution platform.
//!
//! Everything here is pure (no I/O except reading an operator's calendar file) so that each
//! service's `domain` layer can depend on it. The types are the ones that cross service
//! boundaries — ids, money, national codes, regions, the acting [`Actor`] — so each validates on
//! the way in (including serde deserialisation) and describes itself to schemars for the
//! published AsyncAPI/OpenAPI documents.

pub mod actor;
pub mod calendar;
pub mod clock;
pub mod codes;
pub mod ids;
pub mod money;
pub mod region;

pub use actor::{Actor, OrgKind, OrgKindError, SYSTEM_SUB_PREFIX};
pub use calendar::{BusinessCalendar, CalendarError};
pub use clock::{
    BEIJING, Clock, ManualClock, SharedClock, SystemClock, beijing_date, beijing_midnight,
};
pub use codes::{CodeKind, ConsumableCodeParts, NationalCode, NationalCodeError};
pub use ids::{CorrelationId, EventId, IdParseError, OrgId};
pub use money::{BasisPoints, BasisPointsError, Money, MoneyParseError};
pub use region::{RegionCode, RegionCodeError, RegionLevel};

/// Paths used by [`define_id!`] expansions in other crates, so they need no direct dependency
/// on these crates. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use schemars;
    pub use serde;
    pub use uuid;
}
