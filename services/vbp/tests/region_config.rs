//! The configuration files of the Kubernetes deployment (k8s/base/config.toml and each region's
//! k8s/regions/*/config.toml) load into the platform's and every service's settings, and pass
//! the checks each service runs at start, so a region cannot ship a file its pods refuse.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use vbp_platform::Config;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(toml: &str) -> anyhow::Result<Config> {
    Config::from_figment(
        Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)),
    )
}

/// Every section as the services read it, with their own validation.
fn check(toml: &str) -> anyhow::Result<Config> {
    let config = load(toml)?;
    let gateway: vbp_gateway::config::GatewayConfig = config.section("gateway")?;
    gateway.validate()?;
    let _: vbp_agreements::domain::Settings = config.section("agreements")?;
    let distribution: vbp_distribution::domain::Settings = config.section("distribution")?;
    distribution
        .validate()
        .map_err(|e| anyhow::anyhow!("distribution: {e:?}"))?;
    let orders: vbp_orders::domain::Settings = config.section("orders")?;
    orders
        .validate()
        .map_err(|e| anyhow::anyhow!("orders: {e:?}"))?;
    let ingest: vbp_orders::ingest::IngestSettings = config.section("orders")?;
    ingest
        .validate()
        .map_err(|e| anyhow::anyhow!("orders: {e:?}"))?;
    let prepayment: vbp_prepayment::domain::Settings = config.section("prepayment")?;
    prepayment
        .validate()
        .map_err(|e| anyhow::anyhow!("prepayment: {e:?}"))?;
    let issues: vbp_issues::domain::Settings = config.section("issues")?;
    issues
        .validate()
        .map_err(|e| anyhow::anyhow!("issues: {e}"))?;
    let supervision: vbp_supervision::domain::Settings = config.section("supervision")?;
    supervision
        .validate()
        .map_err(|e| anyhow::anyhow!("supervision: {e}"))?;
    Ok(config)
}

#[test]
fn every_deployment_config_file_loads_and_validates() {
    for rel in [
        "k8s/base/config.toml",
        "k8s/regions/liaoning/config.toml",
        "k8s/regions/jiangxi/config.toml",
    ] {
        let text = std::fs::read_to_string(root().join(rel)).unwrap();
        let config = check(&text).unwrap_or_else(|e| panic!("{rel}: {e:#}"));
        assert_eq!(config.streams.replicas, 3, "{rel}: streams must be R3");
    }
}

#[test]
fn a_config_file_with_a_wrong_value_is_refused() {
    check("[prepayment]\noffset_rule = \"one_to_one\"\n").unwrap();
    for bad in [
        "[prepayment]\noffset_rule = \"half\"\n",
        "[prepayment]\napproval_level = \"provincial\"\n",
        "[streams]\nreplicas = \"three\"\n",
        "[issues]\nenterprise_response_working_days = -3\n",
        "[supervision]\nonline_rate_min_bp = 12000\n",
    ] {
        assert!(check(bad).is_err(), "accepted:\n{bad}");
    }
}
