//! The web console: plain HTML, CSS and JavaScript modules compiled into the
//! binary, served at `/` by the gateway itself so it works offline and from
//! the same origin as `/api/v1` (no CORS, no CDN). The console holds no data
//! of its own: every figure it shows comes from the API with the signed-in
//! caller's token, so it sees exactly what the API lets that caller see.
//!
//! - `GET /` — the page. `no-cache`: a new release is picked up at once.
//! - `GET /console/assets/{file}` — scripts, styles and icons. Referenced
//!   with the release's content hash (`?v=`), so they may be cached for a
//!   year; gzip when the browser accepts it; `ETag` / `304`.
//! - `GET /console/config` — what the sign-in page offers (dev sign-in,
//!   the identity provider's issuer) and the platform's clock, from which
//!   the console counts SLA deadlines down.
//! - `GET /console/dev/orgs`, `POST /console/dev/token` — dev mode only:
//!   pick an organisation of the directory and get a dev token for it (what
//!   `vbp token` prints). Outside dev mode both answer 404.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vbp_bus::Context;
use vbp_contracts::agreements::{ListOrgs, OrgList};
use vbp_kernel::{Actor, OrgId, OrgKind};

use crate::problem::Problem;
use crate::{Gateway, token};

/// How long a token minted by the dev sign-in stays valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Scripts may run only from the gateway itself; no inline script, no
/// foreign origin, no framing (a console page is worth clickjacking).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    raw: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        raw: include_bytes!("../../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        raw: include_bytes!("../../console/api.js"),
    },
    Asset {
        name: "i18n.js",
        content_type: "text/javascript; charset=utf-8",
        raw: include_bytes!("../../console/i18n.js"),
    },
    Asset {
        name: "ui.js",
        content_type: "text/javascript; charset=utf-8",
        raw: include_bytes!("../../console/ui.js"),
    },
    Asset {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        raw: include_bytes!("../../console/views.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        raw: include_bytes!("../../console/style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        raw: include_bytes!("../../console/icon.svg"),
    },
];

const INDEX: &str = include_str!("../../console/index.html");

/// One file ready to serve: plain and gzip bodies and its validator.
struct Prepared {
    content_type: &'static str,
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
}

struct Bundle {
    /// Short content hash of every asset: the `?v=` of this release.
    version: String,
    index: Prepared,
    assets: Vec<(&'static str, Prepared)>,
}

fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let mut all = Sha256::new();
        let assets: Vec<(&'static str, Prepared)> = ASSETS
            .iter()
            .map(|a| {
                all.update(a.name.as_bytes());
                all.update(a.raw);
                (a.name, prepare(a.content_type, Bytes::from_static(a.raw)))
            })
            .collect();
        let version = hex(&all.finalize()[..6]);
        // Every module URL carries the version, so an import graph never mixes
        // two releases.
        let index = INDEX.replace("__V__", &version);
        let mut assets = assets;
        for (_, prepared) in assets.iter_mut() {
            if prepared.content_type.starts_with("text/javascript") {
                let text = String::from_utf8_lossy(&prepared.plain).replace("__V__", &version);
                *prepared = prepare(prepared.content_type, Bytes::from(text));
            }
        }
        Bundle {
            index: prepare("text/html; charset=utf-8", Bytes::from(index)),
            version,
            assets,
        }
    })
}

fn prepare(content_type: &'static str, plain: Bytes) -> Prepared {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let gzip = encoder
        .write_all(&plain)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .unwrap_or_default();
    let etag = HeaderValue::from_str(&format!("\"{}\"", hex(&Sha256::digest(&plain)[..10])))
        .expect("hex is a valid header value");
    Prepared {
        content_type,
        plain,
        gzip,
        etag,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The release's asset version (also in every asset URL of the page).
pub fn version() -> &'static str {
    &bundle().version
}

pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/console/assets/{file}", get(asset))
        .route("/console/config", get(config))
        .route("/console/dev/orgs", get(dev_orgs))
        .route("/console/dev/token", post(dev_token))
}

async fn index(headers: HeaderMap) -> Response {
    serve(&bundle().index, &headers, "no-cache")
}

async fn asset(
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let bundle = bundle();
    let Some((_, prepared)) = bundle.assets.iter().find(|(name, _)| *name == file) else {
        return Problem::not_found(format!("the console has no asset {file}")).into_response();
    };
    // Only a URL naming this release's version may be kept for good; an old
    // or bare URL is revalidated, so it never pins a stale script.
    let current = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv.strip_prefix("v=") == Some(bundle.version.as_str()));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    serve(prepared, &headers, cache)
}

fn serve(prepared: &Prepared, headers: &HeaderMap, cache: &'static str) -> Response {
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| etag_matches(v, &prepared.etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers) {
        let mut r = prepared.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        prepared.plain.clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prepared.content_type),
    );
    h.insert(header::ETAG, prepared.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    security_headers(h);
    response
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn etag_matches(value: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let want = etag.to_str().unwrap_or_default();
    text.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == want)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or_default().trim();
            let refused = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// What the sign-in page needs to know.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConsoleConfig {
    /// Dev sign-in (pick an organisation) is offered.
    pub dev: bool,
    /// Tokens must come from this issuer, when configured.
    pub issuer: Option<String>,
    /// The platform's clock: the console counts deadlines from it, not from
    /// the computer it runs on.
    pub now: chrono::DateTime<chrono::Utc>,
    /// This release's asset version.
    pub version: String,
}

async fn config(State(gateway): State<Gateway>) -> Response {
    let body = ConsoleConfig {
        dev: gateway.platform.config.dev,
        issuer: gateway.config.jwt_issuer.clone(),
        now: gateway.platform.clock.now(),
        version: version().to_owned(),
    };
    no_store(axum::Json(body).into_response())
}

fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    response
}

fn dev_only(gateway: &Gateway) -> Result<(), Problem> {
    if gateway.platform.config.dev {
        Ok(())
    } else {
        Err(Problem::not_found(
            "dev sign-in exists only in dev mode (dev = true); sign in with a token from the identity provider",
        ))
    }
}

/// One organisation the dev sign-in offers.
#[derive(Debug, Serialize, Deserialize)]
pub struct DevOrg {
    pub org: OrgId,
    pub name: String,
    pub kind: OrgKind,
    pub region: vbp_kernel::RegionCode,
}

/// Kinds a person signs in as; integrators are machines with their own
/// credentials.
const PEOPLE: [OrgKind; 5] = [
    OrgKind::Bureau,
    OrgKind::Hospital,
    OrgKind::Manufacturer,
    OrgKind::Distributor,
    OrgKind::Operator,
];

async fn directory(gateway: &Gateway) -> Result<Vec<DevOrg>, Problem> {
    let ctx = Context::new(Some(Actor::system("console-dev-sign-in")));
    let mut out = Vec::new();
    for kind in PEOPLE {
        let page = gateway
            .rpc
            .call::<OrgList>(
                &ctx,
                &ListOrgs {
                    kind: Some(kind),
                    region: None,
                    q: None,
                    page: 1,
                    page_size: 100,
                },
            )
            .await
            .map_err(|e| Problem::from_call(vbp_contracts::Service::Agreements, "org_list", e))?;
        out.extend(
            page.items
                .into_iter()
                .filter(|o| o.record.active)
                .map(|o| DevOrg {
                    org: o.record.org,
                    name: o.record.name,
                    kind: o.record.kind,
                    region: o.record.region,
                }),
        );
    }
    Ok(out)
}

async fn dev_orgs(State(gateway): State<Gateway>) -> Result<Response, Problem> {
    dev_only(&gateway)?;
    Ok(no_store(
        axum::Json(serde_json::json!({ "items": directory(&gateway).await? })).into_response(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenRequest {
    org: String,
}

/// A dev token for a directory organisation, as `vbp token` would mint it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DevToken {
    pub token: String,
    pub org: DevOrg,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

async fn dev_token(State(gateway): State<Gateway>, body: Bytes) -> Result<Response, Problem> {
    dev_only(&gateway)?;
    let request: DevTokenRequest = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid("org", format!("expected {{\"org\": \"<id>\"}}: {e}")))?;
    let org: OrgId = request
        .org
        .parse()
        .map_err(|_| Problem::invalid("org", "org must be an organisation id (a UUID)"))?;
    let found = directory(&gateway)
        .await?
        .into_iter()
        .find(|o| o.org == org)
        .ok_or_else(|| {
            Problem::invalid(
                "org",
                format!("{org} is not an active organisation a person signs in as"),
            )
        })?;
    let secret = token::dev_secret(&gateway.platform.config).map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::problem::codes::SERVICE_UNAVAILABLE,
            format!("the dev secret is not available: {e:#}"),
        )
    })?;
    let now = gateway.platform.clock.now();
    let minted = token::mint_dev(
        &secret,
        &format!("console:{}", found.org),
        found.org,
        found.kind,
        found.region,
        &[] as &[&str],
        DEV_TOKEN_TTL,
        now,
    )
    .map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::problem::codes::INTERNAL,
            format!("{e:#}"),
        )
    })?;
    let expires_at = now + chrono::Duration::from_std(DEV_TOKEN_TTL).unwrap_or_default();
    Ok(no_store(
        axum::Json(DevToken {
            token: minted,
            org: found,
            expires_at,
        })
        .into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_and_scripts_name_is_served_with_the_release_version() {
        let b = bundle();
        assert!(!b.version.is_empty());
        let page = String::from_utf8(b.index.plain.to_vec()).unwrap();
        assert!(page.contains(&format!("app.js?v={}", b.version)), "{page}");
        assert!(!page.contains("__V__"));
        for (name, prepared) in &b.assets {
            let text = String::from_utf8_lossy(&prepared.plain);
            assert!(!text.contains("__V__"), "{name} keeps a placeholder");
            for import in text.match_indices("from \"./").map(|(i, _)| &text[i + 8..]) {
                let target = import.split(['?', '"']).next().unwrap();
                assert!(
                    b.assets.iter().any(|(n, _)| *n == target),
                    "{name} imports {target}, which is not served"
                );
            }
        }
    }

    #[test]
    fn compressed_bodies_inflate_to_the_originals() {
        use std::io::Read as _;
        for (name, p) in &bundle().assets {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&p.gzip[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, p.plain, "{name}");
            if p.plain.len() > 2048 {
                assert!(p.gzip.len() * 2 < p.plain.len(), "{name} compresses poorly");
            }
        }
    }

    /// Both languages carry every string: a key missing in one shows up as
    /// the raw key on screen.
    #[test]
    fn both_string_tables_have_the_same_keys() {
        let text =
            std::str::from_utf8(ASSETS.iter().find(|a| a.name == "i18n.js").unwrap().raw).unwrap();
        let keys = |block: &str| -> std::collections::BTreeSet<String> {
            block
                .lines()
                .filter_map(|l| l.trim().strip_prefix('"'))
                .filter_map(|l| l.split_once("\": ").map(|(k, _)| k.to_owned()))
                .collect()
        };
        let zh_start = text.find("\"zh-CN\": {").unwrap() + "\"zh-CN\": {".len();
        let en_start = text.find("\n  en: {").unwrap();
        let end = text[en_start..].find("\n  },\n};").unwrap() + en_start;
        let zh = keys(&text[zh_start..en_start]);
        let en = keys(&text[en_start..end]);
        assert!(zh.len() > 100, "{}", zh.len());
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "only in zh-CN: {only_zh:?}; only in en: {only_en:?}"
        );
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
    }
}
