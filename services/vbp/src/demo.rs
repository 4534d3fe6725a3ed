//! The Liaoning demo cast (辽宁省 · 省际联盟冠脉导引导管集采第二协议期): one organisation of each
//! kind a newcomer needs to try the platform, with fixed ids so the dev
//! tokens printed by `deploy/local/run` stay valid across restarts. The ids
//! are the directory ids the agreements service's demo registers
//! (`vbp_agreements::demo`).

use vbp_kernel::{OrgId, OrgKind, RegionCode};

pub struct DemoOrg {
    pub id: &'static str,
    pub name: &'static str,
    pub kind: OrgKind,
    pub region: &'static str,
    pub roles: &'static [&'static str],
}

impl DemoOrg {
    pub fn org(&self) -> OrgId {
        self.id.parse().expect("demo ids are valid UUIDs")
    }

    pub fn region(&self) -> RegionCode {
        self.region.parse().expect("demo regions are valid codes")
    }
}

pub const CAST: &[DemoOrg] = &[
    DemoOrg {
        id: "01930000-0000-7000-8000-000000210000",
        name: "辽宁省医疗保障局",
        kind: OrgKind::Bureau,
        region: "210000",
        roles: &["admin"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000210100",
        name: "沈阳市医疗保障局",
        kind: OrgKind::Bureau,
        region: "210100",
        roles: &["admin"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000210900",
        name: "阜新市医疗保障局",
        kind: OrgKind::Bureau,
        region: "210900",
        roles: &["admin"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000101",
        name: "中国医科大学附属第一医院",
        kind: OrgKind::Hospital,
        region: "210102",
        roles: &["buyer"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000102",
        name: "阜新市中心医院",
        kind: OrgKind::Hospital,
        region: "210902",
        roles: &["buyer"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000103",
        name: "彰武县人民医院",
        kind: OrgKind::Hospital,
        region: "210922",
        roles: &["buyer"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000201",
        name: "示例心血管医疗器械有限公司",
        kind: OrgKind::Manufacturer,
        region: "330100",
        roles: &["sales"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000202",
        name: "上海示例介入医疗科技有限公司",
        kind: OrgKind::Manufacturer,
        region: "310100",
        roles: &["sales"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000301",
        name: "辽宁示例医药物流有限公司",
        kind: OrgKind::Distributor,
        region: "210100",
        roles: &["dispatcher"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000302",
        name: "阜新示例医药有限公司",
        kind: OrgKind::Distributor,
        region: "210900",
        roles: &["dispatcher"],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000401",
        name: "示例医院SPD平台",
        kind: OrgKind::Integrator,
        region: "210000",
        roles: &[],
    },
    DemoOrg {
        id: "01930000-0000-7000-8000-000000000501",
        name: "平台运维",
        kind: OrgKind::Operator,
        region: "210000",
        roles: &["admin"],
    },
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_demo_org_has_a_valid_id_and_region_and_a_distinct_id() {
        let mut ids = std::collections::BTreeSet::new();
        for org in super::CAST {
            assert!(ids.insert(org.org()), "{} repeats an id", org.name);
            let _ = org.region();
        }
    }

    #[test]
    fn the_cast_matches_the_directory_the_agreements_demo_registers() {
        use vbp_agreements::demo as d;
        for id in [
            d::PROVINCE_BUREAU,
            d::SHENYANG_BUREAU,
            d::FUXIN_BUREAU,
            d::SHENYANG_HOSPITAL,
            d::FUXIN_HOSPITAL,
            d::COUNTY_HOSPITAL,
            d::MANUFACTURER_A,
            d::MANUFACTURER_B,
            d::DISTRIBUTOR_SHENYANG,
            d::DISTRIBUTOR_FUXIN,
            d::INTEGRATOR,
        ] {
            assert!(
                super::CAST.iter().any(|o| o.id == id),
                "{id} has no demo token"
            );
        }
    }
}
