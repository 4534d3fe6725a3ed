//! Typed identifiers.
//!
//! Every aggregate gets its own id type so an `OrderId` can never be passed where an `OrgId` is
//! expected, while all of them stay plain UUIDs on the wire and in Postgres. New ids are UUIDv7
//! (DESIGN §4): time-ordered, so primary-key indexes stay append-mostly and `Nats-Msg-Id` values
//! sort by creation.

/// Why a text could not be read as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} must be a UUID in text form (e.g. 0190b6d4-7c3e-7def-8a12-3456789abcde), got {input:?}"
)]
pub struct IdParseError {
    /// The id type that was being parsed, e.g. `"OrgId"`.
    pub kind: &'static str,
    /// The rejected input, kept verbatim for the error message.
    pub input: String,
}

/// Defines a `Copy` newtype over [`uuid::Uuid`] for one kind of identifier.
///
/// The generated type serialises exactly like a UUID (a hyphenated string in JSON), describes
/// itself to schemars as a `uuid`-formatted string, and creates new values as UUIDv7. Callers
/// need no direct dependency on `uuid`, `serde` or `schemars`: the macro reaches them through
/// this crate.
///
/// ```
/// vbp_kernel::define_id! {
///     /// A purchase order.
///     pub OrderId
/// }
/// let id = OrderId::new();
/// assert_eq!(id.to_string().parse::<OrderId>().unwrap(), id);
/// ```
#[macro_export]
macro_rules! define_id {
    ($(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis struct $name($crate::__private::uuid::Uuid);

        // No `Default`: a default that silently mints a fresh random id would hide id creation
        // inside `..Default::default()`, where nobody reviewing the code would look for it.
        #[allow(clippy::new_without_default)]
        impl $name {
            /// A fresh, time-ordered UUIDv7 id.
            pub fn new() -> Self {
                Self($crate::__private::uuid::Uuid::now_v7())
            }

            /// Wraps an existing UUID, e.g. one read from the database.
            pub const fn from_uuid(uuid: $crate::__private::uuid::Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID, e.g. to bind as a query parameter.
            pub const fn as_uuid(&self) -> $crate::__private::uuid::Uuid {
                self.0
            }
        }

        impl ::core::convert::From<$crate::__private::uuid::Uuid> for $name {
            fn from(uuid: $crate::__private::uuid::Uuid) -> Self {
                Self(uuid)
            }
        }

        impl ::core::convert::From<$name> for $crate::__private::uuid::Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::write!(f, "{}({})", ::core::stringify!($name), self.0)
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::IdParseError;

            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                $crate::__private::uuid::Uuid::try_parse(s)
                    .map(Self)
                    .map_err(|_| $crate::IdParseError {
                        kind: ::core::stringify!($name),
                        input: ::std::string::ToString::to_string(s),
                    })
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error>
            where
                S: $crate::__private::serde::Serializer,
            {
                $crate::__private::serde::Serialize::serialize(&self.0, serializer)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> ::core::result::Result<Self, D::Error>
            where
                D: $crate::__private::serde::Deserializer<'de>,
            {
                <$crate::__private::uuid::Uuid as $crate::__private::serde::Deserialize>::deserialize(
                    deserializer,
                )
                .map(Self)
            }
        }

        impl $crate::__private::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(::core::stringify!($name))
            }

            fn schema_id() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(::core::concat!(
                    ::core::module_path!(),
                    "::",
                    ::core::stringify!($name)
                ))
            }

            fn json_schema(
                _: &mut $crate::__private::schemars::SchemaGenerator,
            ) -> $crate::__private::schemars::Schema {
                $crate::__private::schemars::json_schema!({
                    "type": "string",
                    "format": "uuid",
                    "description": ::core::concat!(
                        ::core::stringify!($name),
                        ": a UUID (new ids are UUIDv7, time-ordered)"
                    ),
                })
            }
        }
    };
}

define_id! {
    /// Identity of one message (event, command, reply). Sent as `Nats-Msg-Id` so JetStream drops
    /// a re-published duplicate, and stored in each consumer's inbox so a redelivery has no effect.
    pub EventId
}

define_id! {
    /// One id for a whole business flow (`vbp-correlation`), from the first request through
    /// every event it causes, so operators can show the flow as one timeline.
    pub CorrelationId
}

define_id! {
    /// An organisation: hospital, manufacturer, distributor, bureau, integrator or operator.
    pub OrgId
}

impl OrgId {
    /// The organisation of machine actors (schedulers, relays): the nil UUID, which no real
    /// organisation ever gets because real ids are UUIDv7.
    pub const SYSTEM: OrgId = OrgId::from_uuid(uuid::Uuid::nil());
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use std::collections::BTreeSet;

    #[test]
    fn new_ids_are_version_7_and_time_ordered() {
        let first = EventId::new();
        let second = EventId::new();
        assert_eq!(first.as_uuid().get_version_num(), 7);
        // UUIDv7 from one process is monotonic, which keeps B-tree inserts at the right edge.
        assert!(first < second, "{first:?} should sort before {second:?}");
    }

    #[test]
    fn text_round_trip_and_rejection_names_the_type() {
        let id = OrgId::new();
        assert_eq!(id.to_string().parse::<OrgId>(), Ok(id));
        assert_eq!(id.to_string().len(), 36, "Display is the hyphenated form");

        let err = "not-a-uuid".parse::<CorrelationId>().unwrap_err();
        assert_eq!(err.kind, "CorrelationId");
        assert!(
            err.to_string().starts_with("CorrelationId must be a UUID"),
            "{err}"
        );
    }

    #[test]
    fn json_is_a_bare_uuid_string() {
        let uuid = uuid::Uuid::parse_str("0190b6d4-7c3e-7def-8a12-3456789abcde").unwrap();
        let id = EventId::from_uuid(uuid);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0190b6d4-7c3e-7def-8a12-3456789abcde\"");
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<EventId>("\"0190b6d4\"").is_err());
        assert!(serde_json::from_str::<EventId>("42").is_err());
    }

    #[test]
    fn schema_is_a_uuid_string_named_after_the_type() {
        let schema = schemars::schema_for!(OrgId);
        let value = schema.as_value();
        assert_eq!(value["type"], "string");
        assert_eq!(value["format"], "uuid");
        assert_eq!(OrgId::schema_name(), "OrgId");
        assert_ne!(OrgId::schema_id(), EventId::schema_id());
    }

    #[test]
    fn system_org_is_nil_and_conversions_preserve_the_uuid() {
        assert!(OrgId::SYSTEM.as_uuid().is_nil());
        let uuid = uuid::Uuid::now_v7();
        let id: OrgId = uuid.into();
        let back: uuid::Uuid = id.into();
        assert_eq!(back, uuid);
    }

    #[test]
    fn ids_work_as_ordered_set_keys() {
        let ids: BTreeSet<EventId> = (0..50).map(|_| EventId::new()).collect();
        assert_eq!(ids.len(), 50, "every new id is distinct");
    }
}
