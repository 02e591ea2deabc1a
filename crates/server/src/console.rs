//! The web console (docs/console.md): a static single-page app served at `/console/`, embedded in the
//! binary so nothing else is installed or fetched (no CDN; it works offline).
//!
//! - `GET /console/` is the page (`index.html`), revalidated on every load (`Cache-Control: no-cache`).
//!   It names its scripts and styles under `/console/a/<version>/`, where `<version>` is a hash of every
//!   embedded asset: those URLs never change meaning, so they are cached for a year (`immutable`), and a
//!   new build is a new URL. An asset asked for under another version is a 404, never old bytes under a
//!   new name or new bytes under an old one.
//! - Every console response carries a strict Content-Security-Policy: scripts, styles and API calls from
//!   this origin only, no inline script or style, no `eval`, images from this origin or `data:` (GetImages
//!   thumbnails arrive base64), media from `blob:` (hls.js feeds Media Source Extensions), no framing.
//! - The console calls the API like any SDK: every operation is SigV4-signed in the browser
//!   (`console/sigv4.js`); this module adds no endpoint, state or cookie (docs/choices.md#console-sign-in).
//! - Text assets (and the page) go out gzip-compressed when the request's `Accept-Encoding` allows it,
//!   compressed once at their first such request and kept; every one carries `Vary: Accept-Encoding`.
//! - Third-party code (hls.js) is vendored under `console/vendor/` from the npm registry at a pinned
//!   version by `scripts/vendor-console.sh`; `vendor/SHA256SUMS` records its hash, checked by a test here.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

/// Where the console lives.
pub const PATH: &str = "/console/";

/// The policy of every console response (see the module doc).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; font-src 'none'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The placeholder in `index.html` replaced by the versioned asset base, e.g. `/console/a/1a2b3c4d5e6f`.
const ASSET_BASE_PLACEHOLDER: &str = "{{ASSETS}}";

const JS: &str = "text/javascript; charset=utf-8";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// An embedded file of `crates/server/console/`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../console/", $name)),
        }
    };
}

/// The embedded files served under `/console/a/<version>/`.
const ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("sigv4.js", JS),
    asset!("timeline.js", JS),
    asset!("player.js", JS),
    asset!("metrics.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("vendor/hls.min.mjs", JS),
];

const INDEX_HTML: &str = include_str!("../console/index.html");

/// The recorded SHA-256 of each vendored file (`sha256sum` format), checked by the tests.
#[cfg(test)]
const VENDOR_SHA256SUMS: &str = include_str!("../console/vendor/SHA256SUMS");

/// The hash of every embedded asset (names and bytes), hex, 12 digits: the assets' URL version.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        for a in ASSETS {
            h.update(a.name.as_bytes());
            h.update((a.bytes.len() as u64).to_be_bytes());
            h.update(a.bytes);
        }
        h.update(INDEX_HTML.as_bytes());
        hex::encode(h.finalize())[..12].to_owned()
    })
}

/// `index.html` with the versioned asset base filled in.
fn index_html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| INDEX_HTML.replace(ASSET_BASE_PLACEHOLDER, &asset_base()))
}

fn asset_base() -> String {
    format!("{PATH}a/{}", version())
}

/// The console's routes; they need no state and no signature.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent(PATH) }))
        .route(PATH, get(index))
        .route("/console/a/{version}/{*file}", get(asset))
}

/// Headers every console response carries.
fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): `gzip`, `x-gzip` or `*` with a
/// non-zero quality; an explicit `gzip;q=0` refuses it whatever `*` says. No header: identity only.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q > 0.0);
            } else if coding == "*" {
                any = Some(q > 0.0);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Content types worth compressing: the text ones (scripts, style, page, SVG icon).
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type == "image/svg+xml"
}

/// `bytes` gzip-compressed (best compression: done once per asset), or `None` when that saves
/// nothing.
fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < bytes.len()).then_some(compressed)
}

/// The gzip of `bytes`, made at the first call off the async workers (hls.js takes a moment) and
/// kept in `cell`.
async fn gzipped(
    cell: &'static OnceLock<Option<Vec<u8>>>,
    bytes: &'static [u8],
) -> Option<&'static [u8]> {
    if let Some(done) = cell.get() {
        return done.as_deref();
    }
    let _ = tokio::task::spawn_blocking(move || cell.get_or_init(|| gzip(bytes))).await;
    cell.get().and_then(|c| c.as_deref())
}

/// A console file: its type and cache policy, gzip-compressed when the client accepts it and it
/// is text; `Vary: Accept-Encoding` on every answer that could have been either.
async fn file(
    request: &HeaderMap,
    content_type: &'static str,
    cache_control: &'static str,
    bytes: &'static [u8],
    gz: &'static OnceLock<Option<Vec<u8>>>,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if !compressible(content_type) {
        return secured((headers, bytes).into_response());
    }
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    let compressed = if accepts_gzip(request) {
        gzipped(gz, bytes).await
    } else {
        None
    };
    match compressed {
        Some(compressed) => {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            secured((headers, compressed).into_response())
        }
        None => secured((headers, bytes).into_response()),
    }
}

async fn index(request: HeaderMap) -> Response {
    static GZ: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let page = index_html().as_bytes();
    file(&request, "text/html; charset=utf-8", "no-cache", page, &GZ).await
}

async fn asset(Path((v, file_name)): Path<(String, String)>, request: HeaderMap) -> Response {
    static GZ: [OnceLock<Option<Vec<u8>>>; ASSETS.len()] =
        [const { OnceLock::new() }; ASSETS.len()];
    let found = ASSETS.iter().position(|a| a.name == file_name);
    match found {
        Some(i) if v == version() => {
            let a = &ASSETS[i];
            let immutable = "public, max-age=31536000, immutable";
            file(&request, a.content_type, immutable, a.bytes, &GZ[i]).await
        }
        _ => secured(
            (
                StatusCode::NOT_FOUND,
                [
                    (CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (CACHE_CONTROL, "no-store"),
                ],
                "not found\n",
            )
                .into_response(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let response = routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body.to_vec())
    }

    fn header<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
        h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[tokio::test]
    async fn index_names_versioned_assets_and_is_revalidated() {
        let (status, h, body) = get("/console/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&h, "cache-control"), "no-cache");
        assert_eq!(
            header(&h, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        let html = String::from_utf8(body).unwrap();
        assert!(!html.contains(ASSET_BASE_PLACEHOLDER), "placeholder left");
        let base = format!("/console/a/{}/", version());
        assert!(html.contains(&format!("{base}app.js")), "{html}");
        assert!(html.contains(&format!("{base}style.css")), "{html}");
        // No inline script or style: the CSP would block them.
        assert!(
            !html.contains("<script>") && !html.contains("<style"),
            "{html}"
        );
        assert!(!html.contains(" style=\""), "inline style attribute");
    }

    #[tokio::test]
    async fn every_asset_is_served_immutable_with_its_type() {
        for a in ASSETS {
            let (status, h, body) = get(&format!("/console/a/{}/{}", version(), a.name)).await;
            assert_eq!(status, StatusCode::OK, "{}", a.name);
            assert_eq!(header(&h, "content-type"), a.content_type, "{}", a.name);
            assert_eq!(
                header(&h, "cache-control"),
                "public, max-age=31536000, immutable"
            );
            assert_eq!(
                header(&h, "content-security-policy"),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(body, a.bytes, "{}", a.name);
        }
        let js = ASSETS.iter().filter(|a| a.name.ends_with("js")).count();
        assert_eq!(
            ASSETS.iter().filter(|a| a.content_type == JS).count(),
            js,
            "every script is served as JavaScript (module scripts need it)"
        );
    }

    async fn get_with(path: &str, accept_encoding: &str) -> (http::HeaderMap, Vec<u8>) {
        let request = Request::get(path)
            .header("accept-encoding", accept_encoding)
            .body(Body::empty())
            .unwrap();
        let response = routes::<()>().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (headers, body.to_vec())
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn text_is_gzipped_when_the_client_accepts_it() {
        let page = index_html().as_bytes();
        let files = ASSETS
            .iter()
            .map(|a| (format!("/console/a/{}/{}", version(), a.name), a.bytes))
            .chain([(PATH.to_owned(), page)]);
        for (path, bytes) in files {
            // Twice: compressed at the first request, served from the kept copy after.
            for _ in 0..2 {
                let (h, body) = get_with(&path, "br, gzip;q=0.8, deflate").await;
                assert_eq!(header(&h, "content-encoding"), "gzip", "{path}");
                assert_eq!(header(&h, "vary"), "accept-encoding", "{path}");
                assert_eq!(
                    header(&h, "content-security-policy"),
                    CONTENT_SECURITY_POLICY
                );
                assert_eq!(gunzip(&body), bytes, "{path}");
                assert!(body.len() < bytes.len(), "{path}");
            }
            let (h, body) = get_with(&path, "identity").await;
            assert_eq!(header(&h, "content-encoding"), "", "{path}");
            assert_eq!(header(&h, "vary"), "accept-encoding", "{path}");
            assert_eq!(body, bytes, "{path}");
        }
        // hls.js, the big one, shrinks to about a third.
        let hls = ASSETS
            .iter()
            .find(|a| a.name == "vendor/hls.min.mjs")
            .unwrap();
        let (_, body) = get_with(&format!("/console/a/{}/{}", version(), hls.name), "gzip").await;
        assert!(
            body.len() * 5 < hls.bytes.len() * 2,
            "{} of {}",
            body.len(),
            hls.bytes.len()
        );
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        let accepts = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            }
            accepts_gzip(&h)
        };
        assert!(accepts(&["gzip, deflate, br, zstd"]));
        assert!(accepts(&["GZIP"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["br", "gzip;q=0.5"]));
        assert!(accepts(&["gzip ; q=1.0"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;q=0.000, *"]));
        assert!(!accepts(&["*;q=0"]));
    }

    #[tokio::test]
    async fn other_versions_and_unknown_files_are_not_found() {
        let (status, h, _) = get("/console/a/000000000000/app.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(header(&h, "cache-control"), "no-store");
        let (status, _, _) = get(&format!("/console/a/{}/nope.js", version())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get(&format!("/console/a/{}/../index.html", version())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn bare_path_redirects_to_the_console() {
        let (status, h, _) = get("/console").await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&h, "location"), PATH);
    }

    #[test]
    fn vendored_files_match_recorded_sums() {
        let mut checked = 0;
        for line in VENDOR_SHA256SUMS.lines().filter(|l| !l.trim().is_empty()) {
            let (sum, name) = line.split_once("  ").expect("sha256sum format");
            let asset = ASSETS
                .iter()
                .find(|a| a.name == format!("vendor/{name}"))
                .unwrap_or_else(|| panic!("vendor/{name} is not embedded"));
            assert_eq!(
                hex::encode(Sha256::digest(asset.bytes)),
                sum,
                "vendor/{name} differs from the copy scripts/vendor-console.sh fetched; re-run it"
            );
            checked += 1;
        }
        let vendored = ASSETS
            .iter()
            .filter(|a| a.name.starts_with("vendor/"))
            .count();
        assert_eq!(checked, vendored, "every vendored file has a recorded sum");
    }

    #[test]
    fn version_is_twelve_hex_digits() {
        assert_eq!(version().len(), 12);
        assert!(version().bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
