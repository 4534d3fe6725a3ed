//! JWT bearer tokens: minting dev tokens and verifying what arrives.
//!
//! Production verifies RS256 against the identity provider's public key (a PEM
//! file and/or a JWKS file chosen by `kid`). Dev mode additionally accepts
//! HS256 tokens signed with the dev secret, which `vbp token` and
//! `deploy/local/run` mint with [`mint_dev`]. The dev secret is
//! `[gateway].dev_secret` when set, else the file `{state_dir}/dev-jwt-secret`
//! (created on first use, mode 0600) — see [`dev_secret`].
//!
//! `exp` and `nbf` are checked against the platform clock, not the host's, so
//! a deployment or test running on a manual clock agrees with the tokens it
//! mints. The tolerated skew is bounded by [`crate::config::MAX_LEEWAY_SECS`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use vbp_kernel::{Actor, OrgId, OrgKind, RegionCode};

use crate::config::GatewayConfig;
use crate::problem::{Problem, codes};

/// File under `state_dir` holding the dev HS256 secret.
pub const DEV_SECRET_FILE: &str = "dev-jwt-secret";

/// Shortest dev secret accepted (bytes); HS256 with less is guessable.
const MIN_DEV_SECRET_LEN: usize = 16;

/// The claims the platform reads (DESIGN §6). `roles` absent means none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub org: OrgId,
    pub org_kind: OrgKind,
    pub region: RegionCode,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch. Required.
    #[serde(deserialize_with = "numeric_date::required")]
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(
        default,
        deserialize_with = "numeric_date::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    #[serde(
        default,
        deserialize_with = "numeric_date::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// One audience or several (RFC 7519 §4.1.3 allows both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// RFC 7519 NumericDate: seconds, possibly with a fraction; the fraction is
/// dropped (the leeway is whole seconds anyway).
mod numeric_date {
    use serde::{Deserialize, Deserializer};

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let secs = f64::deserialize(d)?;
        if !secs.is_finite() {
            return Err(serde::de::Error::custom(
                "a NumericDate must be a finite number",
            ));
        }
        Ok(secs.trunc() as i64)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        required(d).map(Some)
    }
}

impl Claims {
    /// Claims for `actor`, valid from `now` for `ttl`.
    pub fn for_actor(actor: &Actor, ttl: Duration, now: DateTime<Utc>) -> Self {
        let now_secs = now.timestamp();
        Self {
            sub: actor.sub.clone(),
            org: actor.org,
            org_kind: actor.org_kind,
            region: actor.region,
            roles: actor.roles.clone(),
            exp: now_secs.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            nbf: Some(now_secs),
            iat: Some(now_secs),
            iss: None,
            aud: None,
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            sub: self.sub.clone(),
            org: self.org,
            org_kind: self.org_kind,
            region: self.region,
            roles: self.roles.clone(),
        }
    }
}

/// Signs `claims` (used by [`mint_dev`], and by tests with RS256 keys).
pub fn sign(
    claims: &Claims,
    algorithm: Algorithm,
    key: &EncodingKey,
    kid: Option<&str>,
) -> anyhow::Result<String> {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).context("signing the token")
}

/// A dev token (HS256 with the dev secret) for one actor. The arguments are
/// the `vbp token` flags one for one; `roles` may be empty.
#[allow(clippy::too_many_arguments)]
pub fn mint_dev(
    secret: &[u8],
    sub: &str,
    org: OrgId,
    org_kind: OrgKind,
    region: RegionCode,
    roles: &[impl AsRef<str>],
    ttl: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        secret.len() >= MIN_DEV_SECRET_LEN,
        "the dev secret must be at least {MIN_DEV_SECRET_LEN} bytes"
    );
    anyhow::ensure!(!sub.is_empty(), "a token needs a subject");
    let actor = Actor {
        sub: sub.to_owned(),
        org,
        org_kind,
        region,
        roles: roles.iter().map(|r| r.as_ref().to_owned()).collect(),
    };
    sign(
        &Claims::for_actor(&actor, ttl, now),
        Algorithm::HS256,
        &EncodingKey::from_secret(secret),
        None,
    )
}

/// The dev HS256 secret: `[gateway].dev_secret`, else the content of
/// `{state_dir}/dev-jwt-secret`, created with a fresh random secret on first
/// use. Refused outside dev mode, so production can never fall back to it.
pub fn dev_secret(config: &vbp_platform::Config) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(config.dev, "dev tokens exist only in dev mode (dev = true)");
    let gateway: GatewayConfig = config.section("gateway")?;
    match gateway.dev_secret {
        Some(secret) => {
            anyhow::ensure!(
                secret.len() >= MIN_DEV_SECRET_LEN,
                "gateway.dev_secret must be at least {MIN_DEV_SECRET_LEN} bytes"
            );
            Ok(secret.into_bytes())
        }
        None => load_or_create_secret(&config.state_dir.join(DEV_SECRET_FILE)),
    }
}

/// Where [`dev_secret`] keeps the secret when none is configured.
pub fn dev_secret_path(config: &vbp_platform::Config) -> PathBuf {
    config.state_dir.join(DEV_SECRET_FILE)
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = read_secret(path) {
        return Ok(existing);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let fresh: [u8; 32] = rand::random();
    let text: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(text.into_bytes())
        }
        // Another process (the gateway, `vbp token`) created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(path),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = text.trim();
    anyhow::ensure!(
        secret.len() >= MIN_DEV_SECRET_LEN,
        "{} holds fewer than {MIN_DEV_SECRET_LEN} bytes",
        path.display()
    );
    Ok(secret.as_bytes().to_vec())
}

/// Why a token was refused. Every variant is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the Authorization header must be `Bearer <token>`")]
    Missing,
    #[error(
        "the token is not a well-formed JWT with a supported algorithm (RS256, or HS256 in dev mode)"
    )]
    Malformed,
    #[error("the token's algorithm {0} is not accepted here")]
    Algorithm(String),
    #[error("the token names key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        let code = match e {
            TokenError::Missing => codes::MISSING_TOKEN,
            TokenError::Expired => codes::TOKEN_EXPIRED,
            TokenError::NotYetValid => codes::TOKEN_NOT_YET_VALID,
            _ => codes::INVALID_TOKEN,
        };
        Problem::unauthorized(code, e.to_string())
    }
}

struct RsaKey {
    kid: Option<String>,
    key: DecodingKey,
}

/// Checks bearer tokens and turns them into [`Actor`]s.
pub struct Verifier {
    rsa: Vec<RsaKey>,
    hs256: Option<DecodingKey>,
    leeway: i64,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Verifier {
    /// From the configuration: RS256 keys from `jwt_public_key_file` and
    /// `jwks_file`; HS256 with the dev secret only when `dev` is on. Without
    /// dev mode at least one RS256 key is required.
    pub fn from_config(
        platform: &vbp_platform::Config,
        gateway: &GatewayConfig,
    ) -> anyhow::Result<Self> {
        let mut rsa = Vec::new();
        if let Some(path) = &gateway.jwt_public_key_file {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .with_context(|| format!("{} is not an RSA public key in PEM", path.display()))?;
            rsa.push(RsaKey { kid: None, key });
        }
        if let Some(path) = &gateway.jwks_file {
            rsa.extend(read_jwks(path)?);
        }
        let hs256 = if platform.dev {
            Some(DecodingKey::from_secret(&dev_secret(platform)?))
        } else {
            None
        };
        anyhow::ensure!(
            !rsa.is_empty() || hs256.is_some(),
            "no token keys: set gateway.jwt_public_key_file or gateway.jwks_file (HS256 dev tokens need dev = true)"
        );
        Ok(Self {
            rsa,
            hs256,
            leeway: i64::try_from(gateway.leeway_secs).unwrap_or(0),
            issuer: gateway.jwt_issuer.clone(),
            audience: gateway.jwt_audience.clone(),
        })
    }

    /// The actor of a verified token, judged at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Actor, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let claims = match header.alg {
            Algorithm::RS256 => self.verify_rs256(token, header.kid.as_deref())?,
            Algorithm::HS256 => {
                let key = self.hs256.as_ref().ok_or_else(|| {
                    TokenError::Algorithm("HS256 (accepted only in dev mode)".into())
                })?;
                decode(token, key, validation(Algorithm::HS256, None, None))?
            }
            other => return Err(TokenError::Algorithm(format!("{other:?}"))),
        };
        let now = now.timestamp();
        if now > claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Claims("sub is empty".into()));
        }
        Ok(claims.actor())
    }

    fn verify_rs256(&self, token: &str, kid: Option<&str>) -> Result<Claims, TokenError> {
        if self.rsa.is_empty() {
            return Err(TokenError::Algorithm(
                "RS256 (no public key is configured)".into(),
            ));
        }
        let validation = || {
            validation(
                Algorithm::RS256,
                self.issuer.as_deref(),
                self.audience.as_deref(),
            )
        };
        if let Some(kid) = kid {
            // A named key must be one we know; keys without a kid (the PEM
            // file) stay candidates, as providers add kids to old keys.
            let named: Vec<&RsaKey> = self
                .rsa
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid) || k.kid.is_none())
                .collect();
            if named.is_empty() {
                return Err(TokenError::UnknownKey(kid.to_owned()));
            }
            return first_verifying(named.into_iter(), token, validation);
        }
        first_verifying(self.rsa.iter(), token, validation)
    }
}

fn first_verifying<'a>(
    keys: impl Iterator<Item = &'a RsaKey>,
    token: &str,
    validation: impl Fn() -> Validation,
) -> Result<Claims, TokenError> {
    let mut last = TokenError::Signature;
    for key in keys {
        match decode(token, &key.key, validation()) {
            Ok(claims) => return Ok(claims),
            Err(TokenError::Signature) => last = TokenError::Signature,
            Err(other) => return Err(other),
        }
    }
    Err(last)
}

fn validation(alg: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut v = Validation::new(alg);
    // exp and nbf are judged against the platform clock in `verify`.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_required_spec_claims(&["exp"]);
    v.validate_aud = audience.is_some();
    if let Some(aud) = audience {
        v.set_audience(&[aud]);
        v.required_spec_claims.insert("aud".into());
    }
    if let Some(iss) = issuer {
        v.set_issuer(&[iss]);
        v.required_spec_claims.insert("iss".into());
    }
    v
}

fn decode(token: &str, key: &DecodingKey, validation: Validation) -> Result<Claims, TokenError> {
    match jsonwebtoken::decode::<Claims>(token, key, &validation) {
        Ok(data) => Ok(data.claims),
        // The signature held but a claim did not read: decode again as loose
        // JSON to name the claim (`org_kind: unknown variant ...`); the
        // common path pays for one parse only.
        Err(e) if matches!(e.kind(), ErrorKind::Json(_)) => {
            let claims = jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
                .map_err(|e| token_error(&e, &validation))?
                .claims;
            match serde_path_to_error::deserialize::<_, Claims>(&claims) {
                Ok(claims) => Ok(claims),
                Err(e) => {
                    let path = e.path().to_string();
                    let message = e.into_inner().to_string();
                    Err(TokenError::Claims(format!(
                        "{}: {message}",
                        crate::input::field_of(&path, &message)
                    )))
                }
            }
        }
        Err(e) => Err(token_error(&e, &validation)),
    }
}

fn token_error(e: &jsonwebtoken::errors::Error, validation: &Validation) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => {
            TokenError::Algorithm(format!("{:?}", validation.algorithms))
        }
        ErrorKind::MissingRequiredClaim(c) => TokenError::Claims(format!("{c} is missing")),
        ErrorKind::InvalidIssuer => TokenError::Claims("iss is not the configured issuer".into()),
        ErrorKind::InvalidAudience => {
            TokenError::Claims("aud is not the configured audience".into())
        }
        ErrorKind::InvalidClaimFormat(c) => TokenError::Claims(format!("{c} has the wrong format")),
        ErrorKind::Json(err) => TokenError::Claims(err.to_string()),
        _ => TokenError::Malformed,
    }
}

fn read_jwks(path: &Path) -> anyhow::Result<Vec<RsaKey>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JWKS document", path.display()))?;
    let keys: Vec<RsaKey> = set
        .keys
        .iter()
        .filter(|jwk| {
            matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            )
        })
        .map(|jwk| {
            DecodingKey::from_jwk(jwk)
                .map(|key| RsaKey {
                    kid: jwk.common.key_id.clone(),
                    key,
                })
                .with_context(|| format!("{}: key {:?}", path.display(), jwk.common.key_id))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!keys.is_empty(), "{} holds no RSA key", path.display());
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn verifier(leeway: i64) -> Verifier {
        Verifier {
            rsa: Vec::new(),
            hs256: Some(DecodingKey::from_secret(SECRET)),
            leeway,
            issuer: None,
            audience: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn token(now: DateTime<Utc>, ttl_secs: u64) -> String {
        mint_dev(
            SECRET,
            "u-1",
            OrgId::new(),
            OrgKind::Hospital,
            "210921".parse().unwrap(),
            &["order.write"],
            Duration::from_secs(ttl_secs),
            now,
        )
        .unwrap()
    }

    #[test]
    fn minted_dev_tokens_verify_into_the_actor() {
        let now = at("2024-08-01T01:00:00Z");
        let actor = verifier(0).verify(&token(now, 60), now).unwrap();
        assert_eq!(actor.sub, "u-1");
        assert_eq!(actor.org_kind, OrgKind::Hospital);
        assert_eq!(actor.roles, ["order.write"]);
    }

    #[test]
    fn expiry_and_nbf_use_the_given_clock_with_bounded_leeway() {
        let minted = at("2024-08-01T01:00:00Z");
        let t = token(minted, 60);
        let v = verifier(30);
        assert!(
            v.verify(&t, at("2024-08-01T01:01:29Z")).is_ok(),
            "inside leeway"
        );
        assert_eq!(
            v.verify(&t, at("2024-08-01T01:01:31Z")),
            Err(TokenError::Expired)
        );
        assert!(
            v.verify(&t, at("2024-08-01T00:59:31Z")).is_ok(),
            "nbf inside leeway"
        );
        assert_eq!(
            v.verify(&t, at("2024-08-01T00:59:00Z")),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn hs256_is_refused_without_the_dev_key_and_rs256_without_a_public_key() {
        let now = at("2024-08-01T01:00:00Z");
        let production = Verifier {
            hs256: None,
            ..verifier(0)
        };
        assert!(matches!(
            production.verify(&token(now, 60), now),
            Err(TokenError::Algorithm(_))
        ));
        assert_eq!(
            verifier(0).verify("not.a.jwt", now),
            Err(TokenError::Malformed)
        );
        let other = mint_dev(
            b"another-secret-of-32-bytes......",
            "u",
            OrgId::new(),
            OrgKind::Operator,
            RegionCode::NATIONAL,
            &[] as &[&str],
            Duration::from_secs(60),
            now,
        )
        .unwrap();
        assert_eq!(verifier(0).verify(&other, now), Err(TokenError::Signature));
    }

    #[test]
    fn numeric_dates_may_be_fractional_and_audiences_plural() {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "sub": "u", "org": OrgId::new(), "org_kind": "bureau", "region": "210900",
            "exp": 1_722_474_000.5, "nbf": 1_722_470_000, "aud": ["vbp", "other"]
        }))
        .unwrap();
        assert_eq!(claims.exp, 1_722_474_000);
        assert_eq!(claims.nbf, Some(1_722_470_000));
        assert_eq!(
            claims.aud,
            Some(Audience::Many(vec!["vbp".into(), "other".into()]))
        );
        assert!(claims.roles.is_empty());
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = mint_dev(
            b"short",
            "u",
            OrgId::new(),
            OrgKind::Operator,
            RegionCode::NATIONAL,
            &[] as &[&str],
            Duration::from_secs(60),
            Utc::now(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least"), "{err}");
    }

    #[test]
    fn the_dev_secret_file_is_created_once_and_reused() {
        let dir =
            std::env::temp_dir().join(format!("vbp-gw-secret-{}", uuid::Uuid::now_v7().simple()));
        let path = dir.join(DEV_SECRET_FILE);
        let first = load_or_create_secret(&path).unwrap();
        let second = load_or_create_secret(&path).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "secret readable by others: {mode:o}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
