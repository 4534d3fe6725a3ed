//! The Liaoning demo organisations the whole-system tests act as: the
//! directory the agreements demo registers, plus the platform operator.
//! Kinds and regions are what their tokens claim, so the tenancy checks know
//! which rows each one may see.

use vbp_agreements::demo as d;
use vbp_kernel::{Actor, OrgId, OrgKind, RegionCode};

pub const OPERATOR: &str = "01930000-0000-7000-8000-000000000501";

#[derive(Debug, Clone, Copy)]
pub struct CastOrg {
    pub id: &'static str,
    /// Short name for matrix output.
    pub name: &'static str,
    pub kind: OrgKind,
    pub region: &'static str,
}

impl CastOrg {
    pub fn org(&self) -> OrgId {
        self.id.parse().expect("cast ids are UUIDs")
    }

    pub fn region_code(&self) -> RegionCode {
        self.region.parse().expect("cast regions are codes")
    }

    pub fn actor(&self) -> Actor {
        Actor {
            sub: format!("proof:{}", self.name),
            org: self.org(),
            org_kind: self.kind,
            region: self.region_code(),
            roles: Vec::new(),
        }
    }
}

pub const CAST: &[CastOrg] = &[
    CastOrg {
        id: d::PROVINCE_BUREAU,
        name: "bureau-liaoning",
        kind: OrgKind::Bureau,
        region: "210000",
    },
    CastOrg {
        id: d::SHENYANG_BUREAU,
        name: "bureau-shenyang",
        kind: OrgKind::Bureau,
        region: "210100",
    },
    CastOrg {
        id: d::FUXIN_BUREAU,
        name: "bureau-fuxin",
        kind: OrgKind::Bureau,
        region: "210900",
    },
    CastOrg {
        id: d::SHENYANG_HOSPITAL,
        name: "hospital-shenyang",
        kind: OrgKind::Hospital,
        region: "210102",
    },
    CastOrg {
        id: d::FUXIN_HOSPITAL,
        name: "hospital-fuxin",
        kind: OrgKind::Hospital,
        region: "210902",
    },
    CastOrg {
        id: d::COUNTY_HOSPITAL,
        name: "hospital-zhangwu",
        kind: OrgKind::Hospital,
        region: "210922",
    },
    CastOrg {
        id: d::MANUFACTURER_A,
        name: "manufacturer-a",
        kind: OrgKind::Manufacturer,
        region: "330100",
    },
    CastOrg {
        id: d::MANUFACTURER_B,
        name: "manufacturer-b",
        kind: OrgKind::Manufacturer,
        region: "310100",
    },
    CastOrg {
        id: d::DISTRIBUTOR_SHENYANG,
        name: "distributor-shenyang",
        kind: OrgKind::Distributor,
        region: "210100",
    },
    CastOrg {
        id: d::DISTRIBUTOR_FUXIN,
        name: "distributor-fuxin",
        kind: OrgKind::Distributor,
        region: "210900",
    },
    CastOrg {
        id: d::INTEGRATOR,
        name: "integrator-spd",
        kind: OrgKind::Integrator,
        region: "210000",
    },
    CastOrg {
        id: OPERATOR,
        name: "operator",
        kind: OrgKind::Operator,
        region: "210000",
    },
];

pub fn by_id(id: &str) -> Option<&'static CastOrg> {
    CAST.iter().find(|o| o.id == id)
}

pub fn by_name(name: &str) -> &'static CastOrg {
    CAST.iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no cast organisation {name}"))
}
