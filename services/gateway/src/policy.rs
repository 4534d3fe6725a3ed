//! Who may call a route: the first of the two authorisation checks (DESIGN
//! §6). The gateway decides only whether the caller's kind of organisation and
//! roles fit the route; which rows the caller sees is the service's decision,
//! made with the [`Actor`] the gateway passes on.

use vbp_kernel::{Actor, OrgKind};

use crate::problem::Problem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Organisation kinds allowed; `None` admits any authenticated caller.
    kinds: Option<Vec<OrgKind>>,
    /// Roles of which the caller must hold at least one; empty means no role
    /// is needed.
    roles: Vec<String>,
}

impl Policy {
    /// Any authenticated caller.
    pub fn authenticated() -> Self {
        Self {
            kinds: None,
            roles: Vec::new(),
        }
    }

    /// Callers of these organisation kinds.
    pub fn kinds(kinds: impl IntoIterator<Item = OrgKind>) -> Self {
        let mut kinds: Vec<OrgKind> = kinds.into_iter().collect();
        kinds.sort();
        kinds.dedup();
        Self {
            kinds: Some(kinds),
            roles: Vec::new(),
        }
    }

    /// Additionally requires one of `roles`.
    pub fn with_roles(mut self, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    pub fn allowed_kinds(&self) -> Option<&[OrgKind]> {
        self.kinds.as_deref()
    }

    pub fn required_roles(&self) -> &[String] {
        &self.roles
    }

    pub fn permits(&self, actor: &Actor) -> bool {
        let kind_ok = self
            .kinds
            .as_ref()
            .is_none_or(|k| k.contains(&actor.org_kind));
        let role_ok = self.roles.is_empty() || self.roles.iter().any(|r| actor.has_role(r));
        kind_ok && role_ok
    }

    /// 403 naming what the route needs, so a refused caller knows why.
    pub fn check(&self, actor: &Actor) -> Result<(), Problem> {
        if self.permits(actor) {
            return Ok(());
        }
        Err(Problem::forbidden(format!(
            "{} (a {} organisation) may not call this route: it is open to {}",
            actor.sub,
            actor.org_kind,
            self.describe()
        )))
    }

    /// For people: the policy in a sentence (also in the OpenAPI document).
    pub fn describe(&self) -> String {
        let kinds = match &self.kinds {
            None => "any authenticated organisation".to_owned(),
            Some(k) if k.is_empty() => "no organisation".to_owned(),
            Some(k) => k.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
        };
        if self.roles.is_empty() {
            kinds
        } else {
            format!("{kinds} holding one of the roles {}", self.roles.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vbp_kernel::{OrgId, RegionCode};

    fn actor(kind: OrgKind, roles: &[&str]) -> Actor {
        Actor {
            sub: "u".into(),
            org: OrgId::new(),
            org_kind: kind,
            region: RegionCode::NATIONAL,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn kinds_and_roles_must_both_fit() {
        let p = Policy::kinds([OrgKind::Hospital, OrgKind::Bureau]).with_roles(["order.write"]);
        assert!(p.permits(&actor(OrgKind::Hospital, &["order.write"])));
        assert!(!p.permits(&actor(OrgKind::Hospital, &["order.read"])));
        assert!(!p.permits(&actor(OrgKind::Manufacturer, &["order.write"])));
        let err = p.check(&actor(OrgKind::Distributor, &[])).unwrap_err();
        assert_eq!(err.status, 403);
        assert!(err.detail.contains("hospital, bureau"), "{}", err.detail);
        assert!(err.detail.contains("order.write"), "{}", err.detail);
    }

    #[test]
    fn authenticated_admits_every_kind() {
        for kind in OrgKind::ALL {
            assert!(Policy::authenticated().permits(&actor(kind, &[])));
        }
        assert!(!Policy::kinds([]).permits(&actor(OrgKind::Operator, &[])));
    }
}
