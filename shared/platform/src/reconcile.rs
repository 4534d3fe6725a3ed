//! A service's side of the reconciliation report
//! ([`vbp_contracts::reconcile`]): who may read figures and over which
//! regions, and the operation that answers with them.

use std::future::Future;

use sqlx::PgPool;
use vbp_bus::{Context, RpcError, RpcRequest, RpcServer};
use vbp_contracts::reconcile::{FIGURES, Figure, FiguresRequest, FiguresResponse};
use vbp_kernel::{OrgKind, RegionCode};

/// The inclusive range of `hospital_region` codes (as integers, the way
/// services store them) the figures cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionBounds {
    pub low: i32,
    pub high: i32,
}

impl RegionBounds {
    fn of(region: RegionCode) -> Self {
        let (low, high) = region.subtree_range();
        Self { low, high }
    }
}

/// Figures are a supervisory view: operators read all, a bureau its
/// region's subtree; `req.region` narrows within that.
pub fn scope(ctx: &Context, req: &FiguresRequest) -> Result<RegionBounds, RpcError> {
    let actor = ctx.actor.as_ref().ok_or_else(|| {
        RpcError::forbidden("reconciliation figures need an authenticated caller")
    })?;
    let own = match actor.org_kind {
        OrgKind::Operator => RegionCode::NATIONAL,
        OrgKind::Bureau => actor.region,
        _ => {
            return Err(RpcError::forbidden(
                "only bureaus and operators may read reconciliation figures",
            ));
        }
    };
    match req.region {
        None => Ok(RegionBounds::of(own)),
        Some(r) if own.contains(r) => Ok(RegionBounds::of(r)),
        Some(r) => {
            let mut e = RpcError::forbidden(format!(
                "region {r} is outside the caller's jurisdiction {own}"
            ));
            e.0.field = Some("region".to_owned());
            Err(e)
        }
    }
}

/// Adds the figures operation: `figures` reads the service's own tables
/// within the scope.
pub fn route<F, Fut>(rpc: RpcServer, pool: PgPool, figures: F) -> RpcServer
where
    F: Fn(PgPool, FiguresRequest, RegionBounds) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Vec<Figure>, sqlx::Error>> + Send + 'static,
{
    rpc.route_raw(FIGURES, move |req: RpcRequest| {
        let pool = pool.clone();
        let figures = figures.clone();
        async move {
            let input: FiguresRequest = req.json()?;
            let bounds = scope(&req.ctx, &input)?;
            let figures = figures(pool, input, bounds).await?;
            Ok(serde_json::to_vec(&FiguresResponse { figures })
                .map_err(|e| RpcError::internal(e.to_string()))?
                .into())
        }
    })
}

#[cfg(test)]
mod tests {
    use vbp_kernel::{Actor, OrgId};

    use super::*;

    fn ctx(kind: OrgKind, region: &str) -> Context {
        Context::new(Some(Actor {
            sub: "u".into(),
            org: OrgId::new(),
            org_kind: kind,
            region: region.parse().unwrap(),
            roles: vec![],
        }))
    }

    #[test]
    fn a_bureau_reads_its_subtree_and_nothing_else() {
        let city = ctx(OrgKind::Bureau, "210100");
        let all = FiguresRequest::default();
        assert_eq!(
            scope(&city, &all).unwrap(),
            RegionBounds {
                low: 210100,
                high: 210199
            }
        );
        let county = FiguresRequest {
            region: Some("210102".parse().unwrap()),
            ..all.clone()
        };
        assert_eq!(scope(&city, &county).unwrap().high, 210102);
        let foreign = FiguresRequest {
            region: Some("210900".parse().unwrap()),
            ..all.clone()
        };
        assert_eq!(
            scope(&city, &foreign).unwrap_err().0.field.as_deref(),
            Some("region")
        );
        assert_eq!(
            scope(&ctx(OrgKind::Hospital, "210102"), &all)
                .unwrap_err()
                .0
                .status,
            403
        );
        assert_eq!(
            scope(&Context::new(Some(Actor::system("t"))), &all).unwrap(),
            RegionBounds {
                low: 0,
                high: 999_999
            }
        );
    }
}
