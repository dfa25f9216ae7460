//! `GET /api/openapi.json` describes every route but tus's, and only routes that exist: the
//! served document is compared with `DOCUMENTED` (the API's operations, kept here in one
//! place), each documented path is checked to be routed, and the HTTP modules are checked to
//! register routes only through `routes!`, which documents what it routes (the pattern is
//! described in `server/src/http/openapi.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::TestServer;

/// Every operation of the HTTP API but tus (`/files`, `/files/{id}`), as `(METHOD, path)`.
/// A new endpoint is added here and registered with `routes!` in its group's `router()`.
const DOCUMENTED: &[(&str, &str)] = &[
    ("GET", "/addin/assets/{name}"),
    ("GET", "/addin/config.json"),
    ("GET", "/addin/manifest.xml"),
    ("GET", "/addin/{name}"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/v1/admin/audit"),
    ("GET", "/api/v1/admin/branding"),
    ("PUT", "/api/v1/admin/branding"),
    ("GET", "/api/v1/admin/deliveries"),
    ("GET", "/api/v1/admin/entra-links"),
    ("POST", "/api/v1/admin/entra-links"),
    ("DELETE", "/api/v1/admin/entra-links/{entra_tenant_id}"),
    ("GET", "/api/v1/admin/files"),
    ("GET", "/api/v1/admin/policy"),
    ("PUT", "/api/v1/admin/policy"),
    ("GET", "/api/v1/files/{id}"),
    ("GET", "/api/v1/policy"),
    ("POST", "/api/v1/shares"),
    ("GET", "/api/v1/shares/{id}"),
    ("DELETE", "/api/v1/shares/{id}"),
    ("POST", "/api/v1/shares/{id}/links"),
    ("DELETE", "/api/v1/shares/{id}/links/{link_id}"),
    ("GET", "/d/{token}"),
    ("GET", "/d/{token}/all.zip"),
    ("GET", "/d/{token}/f/{file}"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/readyz"),
];

/// Operations that need no API key: probes, the document, the add-in's files, the recipients'
/// link routes, and `/metrics` (loopback, or its own token).
const PUBLIC: &[&str] = &[
    "/addin/assets/{name}",
    "/addin/config.json",
    "/addin/manifest.xml",
    "/addin/{name}",
    "/api/openapi.json",
    "/d/{token}",
    "/d/{token}/all.zip",
    "/d/{token}/f/{file}",
    "/healthz",
    "/metrics",
    "/readyz",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn served_document(server: &TestServer) -> Result<Value> {
    let response = server
        .client
        .get(format!("{}/api/openapi.json", server.base))
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "GET /api/openapi.json answered {}",
        response.status()
    );
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let text = response.text().await?;
    serde_json::from_str(&text).context("the OpenAPI document is not JSON")
}

#[tokio::test]
async fn the_document_lists_every_route_but_tus() -> Result<()> {
    let server = TestServer::start().await?;
    let document = served_document(&server).await?;
    let version = document["openapi"].as_str().unwrap_or_default();
    ensure!(version.starts_with("3.1."), "OpenAPI version {version:?}");

    let paths = document["paths"]
        .as_object()
        .context("the document has no paths")?;
    let mut served = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                served.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = DOCUMENTED
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&served).collect();
    let unlisted: Vec<_> = served.difference(&expected).collect();
    ensure!(
        missing.is_empty() && unlisted.is_empty(),
        "documented operations differ from DOCUMENTED: missing from the document {missing:?} \
         (annotate the handler and register it with routes!), not in DOCUMENTED {unlisted:?} \
         (add them there)"
    );
    ensure!(
        !paths.keys().any(|p| p.starts_with("/files")),
        "tus routes are not part of the document"
    );

    let schemes = &document["components"]["securitySchemes"]["api_key"];
    ensure!(
        schemes["type"] == "http" && schemes["scheme"] == "bearer",
        "the bearer API key scheme: {schemes}"
    );
    for (method, path) in DOCUMENTED {
        let operation = &document["paths"][path][method.to_lowercase()];
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
        ensure!(
            secured != PUBLIC.contains(path),
            "{method} {path}: security {} (public: {})",
            operation["security"],
            PUBLIC.contains(path)
        );
        let responses = operation["responses"]
            .as_object()
            .with_context(|| format!("{method} {path} documents no responses"))?;
        if secured {
            ensure!(
                responses.contains_key("401"),
                "{method} {path} takes a key but does not document 401"
            );
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let json = &response["content"]["application/json"]["schema"]["$ref"];
                let html = response["content"].get("text/html").is_some();
                ensure!(
                    json == "#/components/schemas/ErrorBody" || html,
                    "{method} {path} {status}: error responses carry ErrorBody: {response}"
                );
            }
        }
        // Every `{param}` of the path is a documented path parameter.
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            let declared = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
            });
            ensure!(
                declared,
                "{method} {path}: path parameter {name} undocumented"
            );
        }
    }
    let body = &document["components"]["schemas"]["Policy"];
    ensure!(
        body["additionalProperties"] == false,
        "the policy refuses unknown fields, and its schema says so: {body}"
    );
    let body = &document["components"]["schemas"]["CreateShareBody"];
    ensure!(
        body["additionalProperties"] == false,
        "share requests refuse unknown fields, and their schema says so: {body}"
    );
    Ok(())
}

/// Each documented path reaches a route: a method it does not document answers 405 (the
/// path is routed), never the fallback's 404.
#[tokio::test]
async fn every_documented_path_is_routed() -> Result<()> {
    let server = TestServer::start().await?;
    let paths: BTreeSet<&str> = DOCUMENTED.iter().map(|(_, path)| *path).collect();
    for path in paths {
        let concrete: Vec<String> = path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "00000000-0000-4000-8000-000000000000".to_owned()
                } else {
                    s.to_owned()
                }
            })
            .collect();
        let url = format!("{}{}", server.base, concrete.join("/"));
        let response = server
            .client
            .request(Method::PATCH, &url)
            .bearer_auth(&server.key)
            .send()
            .await?;
        ensure!(
            response.status() == StatusCode::METHOD_NOT_ALLOWED,
            "PATCH {url} answered {}: {path} is documented but not routed",
            response.status()
        );
    }
    Ok(())
}

/// Routes are registered only with `routes!` (which also documents them), except tus's.
#[test]
fn http_modules_route_only_through_routes_macro() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".rs") || name == "tus.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if [".route(", ".route_service(", ".nest(", ".nest_service("]
                .iter()
                .any(|call| code.contains(call))
            {
                offenders.push(format!("src/http/{name}:{}: {}", number + 1, code));
            }
        }
    }
    ensure!(
        offenders.is_empty(),
        "routes outside tus must be registered with `.routes(routes!(handler))` so that they \
         are documented (see src/http/openapi.rs):\n{}",
        offenders.join("\n")
    );
    Ok(())
}

/// Every type documented as a schema has a name of its own: utoipa files schemas by the type's
/// bare name, so two `LinkView`s in two modules silently became one, and the document described
/// a recipient's new link as a Microsoft 365 organisation (schemathesis caught the response
/// that did not match).
#[test]
fn schema_names_are_unique() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    let mut clashes = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !file.ends_with(".rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let mut derives_schema = false;
        for line in text.lines().map(str::trim_start) {
            if line.starts_with("#[derive(") && line.contains("ToSchema") {
                derives_schema = true;
                continue;
            }
            if !derives_schema || line.starts_with("#[") || line.starts_with("//") {
                continue;
            }
            derives_schema = false;
            let name = line
                .split_whitespace()
                .skip_while(|w| !matches!(*w, "struct" | "enum"))
                .nth(1)
                .map(|n| n.trim_end_matches(['{', ';', '(', '<']).to_owned());
            if let Some(name) = name
                && let Some(other) = seen.insert(name.clone(), file.clone())
            {
                clashes.push(format!("{name} in {other} and {file}"));
            }
        }
    }
    ensure!(
        seen.len() > 10,
        "found only {} schemas: the scan is broken",
        seen.len()
    );
    ensure!(clashes.is_empty(), "schema names used twice: {clashes:?}");
    Ok(())
}
