//! A real Ferry server on a loopback port, in this test process, with a fresh data
//! directory, a fresh database (SQLite in the data directory, or a scratch PostgreSQL
//! database) and a fresh store (the data directory's `objects/`, or a fresh bucket of a real
//! Garage shared by the test binary), and helpers that speak tus over real HTTP and look at
//! what the store holds.

pub mod s3;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ferry::auth::Role;
use ferry::config::Config;
use ferry::crypto::keys::MasterKey;
pub use ferry::db::Backend;
use ferry::state::AppState;
use ferry::store::ObjectStore;
use ferry_testkit::{ScratchDb, eventually_async};
use reqwest::{Client, Response, StatusCode};
use tempfile::TempDir;
use tokio::net::TcpListener;
use uuid::Uuid;

use s3::TestBucket;

/// Feeds a streamed request body piece by piece.
pub type BodySender = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// What a share asks for besides its files and recipients (see [`TestServer::share_as`]);
/// `None` leaves the field out of the request.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShareOptions<'a> {
    /// `retention_days`.
    pub retention_days: Option<i64>,
    /// `note`.
    pub note: Option<&'a str>,
}

/// Where a test server keeps its rows and its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite in the data directory, objects on local disk (the default configuration).
    SqliteDisk,
    /// A scratch PostgreSQL database, objects on local disk.
    PostgresDisk,
    /// A scratch PostgreSQL database, objects in a fresh bucket of the test binary's Garage
    /// (`FERRY_STORE=s3://…`, region eu-central-1): the production path.
    PostgresGarage,
}

impl Stack {
    /// The database backend of this stack.
    pub fn backend(self) -> Backend {
        match self {
            Stack::SqliteDisk => Backend::Sqlite,
            Stack::PostgresDisk | Stack::PostgresGarage => Backend::Postgres,
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub client: Client,
    pub key: String,
    pub tenant_id: Uuid,
    pub data: TempDir,
    pub backend: Backend,
    pub stack: Stack,
    /// The S3 bucket of a `PostgresGarage` server.
    pub bucket: Option<TestBucket>,
    /// The PostgreSQL database, dropped with the server (declared last: dropped last).
    scratch: Option<ScratchDb>,
}

/// Turns each scenario `async fn NAME(server: TestServer) -> Result<()>` into three tests,
/// each on a fresh server: `NAME::sqlite` (SQLite, disk store), `NAME::postgres`
/// (PostgreSQL, disk store) and `NAME::postgres_garage` (PostgreSQL, S3 store on Garage; on a
/// multi-threaded runtime, like the `ferry` binary, since the S3 store's blocking calls drive
/// requests on the runtime).
macro_rules! on_every_backend {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use $crate::harness::{Stack, TestServer};

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                super::$scenario(TestServer::start_with(Stack::SqliteDisk).await?).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                super::$scenario(TestServer::start_with(Stack::PostgresDisk).await?).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_garage() -> anyhow::Result<()> {
                super::$scenario(TestServer::start_with(Stack::PostgresGarage).await?).await
            }
        }
    )+};
}
pub(crate) use on_every_backend;

/// Like [`on_every_backend!`] for scenarios that are about the database, not the store:
/// `NAME::sqlite` and `NAME::postgres`, both on the disk store.
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use $crate::harness::{Backend, TestServer};

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                super::$scenario(TestServer::start_on(Backend::Sqlite).await?).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                super::$scenario(TestServer::start_on(Backend::Postgres).await?).await
            }
        }
    )+};
}
pub(crate) use on_both_databases;

impl TestServer {
    /// A server on SQLite and the disk store (the default configuration).
    pub async fn start() -> Result<Self> {
        Self::start_with(Stack::SqliteDisk).await
    }

    /// A server on `backend` and the disk store; for PostgreSQL, on a database of its own.
    pub async fn start_on(backend: Backend) -> Result<Self> {
        Self::start_with(match backend {
            Backend::Sqlite => Stack::SqliteDisk,
            Backend::Postgres => Stack::PostgresDisk,
        })
        .await
    }

    /// A server on `stack`: PostgreSQL on a database of its own, S3 on a bucket of its own.
    pub async fn start_with(stack: Stack) -> Result<Self> {
        Self::start_with_env(stack, &[]).await
    }

    /// A server on `stack` with extra `FERRY_*` settings (e.g. a small token budget).
    pub async fn start_with_env(stack: Stack, extra: &[(&str, &str)]) -> Result<Self> {
        Self::start_full(stack, extra, |store| store).await
    }

    /// A server on `stack` whose object store is wrapped by `wrap` (to inject faults).
    pub async fn start_wrapped(
        stack: Stack,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Result<Self> {
        Self::start_full(stack, &[], wrap).await
    }

    async fn start_full(
        stack: Stack,
        extra: &[(&str, &str)],
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Result<Self> {
        let backend = stack.backend();
        let data = tempfile::tempdir()?;
        let data_dir = data.path().to_string_lossy().into_owned();
        let master = MasterKey::generate()?.to_base64();
        let scratch = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(ScratchDb::create()?),
        };
        let bucket = match stack {
            Stack::PostgresGarage => Some(TestBucket::create().await?),
            Stack::SqliteDisk | Stack::PostgresDisk => None,
        };
        // None leaves the defaults: `sqlite://DATA/ferry.db`, `file://DATA/objects`.
        let database_url = scratch.as_ref().map(|db| db.url().to_owned());
        let store = bucket.as_ref().map(|b| b.store_url.clone());
        let access_key_id = bucket.as_ref().map(|b| b.access_key_id.clone());
        let secret_access_key = bucket.as_ref().map(|b| b.secret_access_key.clone());
        let config = Config::from_sources(|key| match key {
            "FERRY_DATA_DIR" => Some(data_dir.clone()),
            "FERRY_LISTEN" => Some("127.0.0.1:0".to_owned()),
            "FERRY_MASTER_KEY" => Some(master.clone()),
            "FERRY_DATABASE_URL" => database_url.clone(),
            "FERRY_STORE" => store.clone(),
            "AWS_ACCESS_KEY_ID" => access_key_id.clone(),
            "AWS_SECRET_ACCESS_KEY" => secret_access_key.clone(),
            _ => extra
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned()),
        })?;
        let listener = TcpListener::bind(config.listen).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let mut state = ferry::app::open(config, base.clone()).await?;
        state.store = wrap(state.store);
        if state.db.backend() != backend {
            bail!(
                "asked for a {backend:?} server, got {:?}",
                state.db.backend()
            );
        }
        tokio::spawn(ferry::app::serve_listener(
            listener,
            state.clone(),
            std::future::pending(),
        ));

        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        eventually_async(Duration::from_secs(10), async || {
            let health = client.get(format!("{base}/healthz")).send().await?;
            ensure!(
                health.status().is_success(),
                "GET /healthz answered {}",
                health.status()
            );
            Ok(())
        })
        .await?;
        let (tenant_id, key) = new_tenant(&state, "acme").await?;
        Ok(TestServer {
            base,
            state,
            client,
            key,
            tenant_id,
            data,
            backend,
            stack,
            bucket,
            scratch,
        })
    }

    /// Another tenant's admin key, for isolation tests.
    pub async fn other_tenant_key(&self) -> Result<String> {
        Ok(
            new_tenant(&self.state, &format!("other-{}", Uuid::new_v4()))
                .await?
                .1,
        )
    }

    /// A new sender key of this server's tenant.
    pub async fn sender_key(&self) -> Result<String> {
        Ok(new_key(&self.state, self.tenant_id, Role::Sender).await?.1)
    }

    pub fn tus(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(&self.key)
            .header("Tus-Resumable", "1.0.0")
    }

    /// Creates an upload and returns its URL.
    pub async fn create(&self, length: u64, filename: &str) -> Result<String> {
        let metadata = format!("filename {}", b64(filename.as_bytes()));
        let response = self
            .tus(reqwest::Method::POST, &format!("{}/files", self.base))
            .header("Upload-Length", length)
            .header("Upload-Metadata", metadata)
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!(
                "create answered {}: {}",
                response.status(),
                response.text().await?
            );
        }
        location(&response)
    }

    pub async fn patch(&self, url: &str, offset: u64, body: Vec<u8>) -> Result<Response> {
        Ok(self
            .tus(reqwest::Method::PATCH, url)
            .header("Upload-Offset", offset)
            .header("Content-Type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await?)
    }

    pub async fn head_offset(&self, url: &str) -> Result<u64> {
        let response = self.tus(reqwest::Method::HEAD, url).send().await?;
        if response.status() != StatusCode::OK {
            bail!("HEAD answered {}", response.status());
        }
        header_u64(&response, "upload-offset")
    }

    /// Uploads `content` in one PATCH and returns the file id.
    pub async fn upload(&self, content: &[u8], filename: &str) -> Result<Uuid> {
        self.upload_as(&self.key, content, filename).await
    }

    /// Uploads `content` with `key` (its owner from then on) and returns the file id.
    pub async fn upload_as(&self, key: &str, content: &[u8], filename: &str) -> Result<Uuid> {
        let response = self
            .client
            .post(format!("{}/files", self.base))
            .bearer_auth(key)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", content.len())
            .header(
                "Upload-Metadata",
                format!("filename {}", b64(filename.as_bytes())),
            )
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("create answered {}", response.status());
        }
        let url = location(&response)?;
        if !content.is_empty() {
            let response = self
                .client
                .patch(&url)
                .bearer_auth(key)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Offset", 0)
                .header("Content-Type", "application/offset+octet-stream")
                .body(content.to_vec())
                .send()
                .await?;
            if response.status() != StatusCode::NO_CONTENT {
                bail!(
                    "PATCH answered {}: {}",
                    response.status(),
                    response.text().await?
                );
            }
        }
        file_id(&url)
    }

    /// Shares files and returns the share's download URL.
    pub async fn share(&self, files: &[Uuid]) -> Result<String> {
        let body = self.share_created(files).await?;
        Ok(body["url"].as_str().context("share url")?.to_owned())
    }

    /// Shares `files` with one recipient (the server's admin key) and returns the 201 body:
    /// `{id, url, expires_at, files}`.
    pub async fn share_created(&self, files: &[Uuid]) -> Result<serde_json::Value> {
        self.share_as(&self.key, files, &["a@x.eu"], ShareOptions::default())
            .await
    }

    /// `POST /api/v1/shares` with `key`: `files` for `recipients`, with `options`; expects 201
    /// and returns its body, `{id, url, expires_at, expiry_capped, files}`.
    pub async fn share_as(
        &self,
        key: &str,
        files: &[Uuid],
        recipients: &[&str],
        options: ShareOptions<'_>,
    ) -> Result<serde_json::Value> {
        let mut body = serde_json::json!({"files": files, "recipients": recipients});
        if let Some(days) = options.retention_days {
            body["retention_days"] = days.into();
        }
        if let Some(note) = options.note {
            body["note"] = note.into();
        }
        let response = self
            .client
            .post(format!("{}/api/v1/shares", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!(
                "share answered {}: {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(response.json().await?)
    }

    /// The sender's view of share `id` (`GET /api/v1/shares/{id}`, admin key), expecting 200.
    pub async fn share_view(&self, id: &str) -> Result<serde_json::Value> {
        let response = self
            .client
            .get(format!("{}/api/v1/shares/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            bail!("share view answered {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// Sets the tenant's policy (`PUT /api/v1/admin/policy`, admin key), expecting 200.
    pub async fn set_policy(&self, policy: serde_json::Value) -> Result<()> {
        let response = self
            .client
            .put(format!("{}/api/v1/admin/policy", self.base))
            .bearer_auth(&self.key)
            .json(&policy)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            bail!("policy answered {}", response.status());
        }
        Ok(())
    }

    /// The sender's view of an upload (`GET /api/v1/files/{id}`).
    pub async fn file_status(&self, upload_url: &str) -> Result<serde_json::Value> {
        let url = format!("{}/api/v1/files/{}", self.base, file_id(upload_url)?);
        Ok(self
            .client
            .get(url)
            .bearer_auth(&self.key)
            .send()
            .await?
            .json()
            .await?)
    }

    /// Shares one file and downloads it whole, as a recipient would.
    pub async fn share_and_download(&self, id: Uuid) -> Result<Vec<u8>> {
        let share = self.share(&[id]).await?;
        let response = self.client.get(format!("{share}/f/{id}")).send().await?;
        if response.status() != StatusCode::OK {
            bail!("download answered {}", response.status());
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// Starts a PATCH whose body the test feeds piece by piece through the returned sender.
    pub fn streamed_patch(
        &self,
        url: &str,
        offset: u64,
    ) -> (
        BodySender,
        tokio::task::JoinHandle<reqwest::Result<Response>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let request = self
            .tus(reqwest::Method::PATCH, url)
            .header("Upload-Offset", offset)
            .header("Content-Type", "application/offset+octet-stream")
            .body(reqwest::Body::wrap_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .send();
        (tx, tokio::spawn(request))
    }

    /// The on-disk object of a file (file store layout).
    pub fn object_path(&self, id: Uuid) -> std::path::PathBuf {
        let name = id.simple().to_string();
        self.data.path().join("objects").join(&name[..2]).join(name)
    }

    /// The stored (encrypted) object of a completed file, whole, from whichever store.
    pub async fn read_object(&self, id: Uuid) -> Result<Vec<u8>> {
        match &self.bucket {
            Some(bucket) => bucket.read_object(id).await,
            None => {
                let path = self.object_path(id);
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
            }
        }
    }

    /// Replaces the stored object of a completed file (to damage or truncate it).
    pub async fn write_object(&self, id: Uuid, bytes: &[u8]) -> Result<()> {
        match &self.bucket {
            Some(bucket) => bucket.write_object(id, bytes).await,
            None => {
                let path = self.object_path(id);
                std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
            }
        }
    }

    /// Everything the store holds of file `id`, named and with its contents: on disk its
    /// object file (if any); in S3 every object whose key names the file (its object, its
    /// pending pieces).
    pub async fn stored_blobs_of(&self, id: Uuid) -> Result<Vec<(String, Vec<u8>)>> {
        match &self.bucket {
            Some(bucket) => bucket.objects_of(id).await,
            None => {
                let path = self.object_path(id);
                if !path.exists() {
                    return Ok(Vec::new());
                }
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                Ok(vec![(path.display().to_string(), bytes)])
            }
        }
    }

    /// Whether file `id` still has its wrapped key (until it is shredded).
    pub async fn key_exists(&self, id: Uuid) -> Result<bool> {
        match self.state.db.wrapped_dek(self.tenant_id, id).await {
            Ok(_) => Ok(true),
            Err(ferry::db::DbError::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's audit events through the admin export (`query`: e.g. `?since=…`).
    pub async fn audit_events(&self, query: &str) -> Result<Vec<serde_json::Value>> {
        let response = self
            .client
            .get(format!("{}/api/v1/admin/audit{query}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            bail!("the audit export answered {}", response.status());
        }
        let ndjson = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/x-ndjson");
        if !ndjson {
            bail!("the audit export is not JSON lines");
        }
        response
            .text()
            .await?
            .lines()
            .map(|line| serde_json::from_str(line).context("an audit line is JSON"))
            .collect()
    }

    /// Runs `sql` on the server's database through a connection of its own (to inject a
    /// fault with a trigger, or to look at what a row keeps).
    pub async fn execute_sql(&self, sql: &str) -> Result<()> {
        use sqlx::Connection as _;
        match &self.scratch {
            Some(db) => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
            }
            None => {
                let mut conn = sqlx::SqliteConnection::connect(&self.sqlite_url()).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// One text value (the first column of the first row) of `sql`, whose `$1` is `id`, on
    /// the server's database.
    pub async fn query_text(&self, sql: &str, id: Uuid) -> Result<String> {
        use sqlx::Connection as _;
        Ok(match &self.scratch {
            Some(db) => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await?;
                sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&mut conn)
                    .await?
            }
            None => {
                let mut conn = sqlx::SqliteConnection::connect(&self.sqlite_url()).await?;
                sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&mut conn)
                    .await?
            }
        })
    }

    /// Sets when upload `id` completed (to age a file without waiting).
    pub async fn set_completed_at(&self, id: Uuid, at: time::OffsetDateTime) -> Result<()> {
        use sqlx::Connection as _;
        let sql = "UPDATE uploads SET completed_at = $1 WHERE id = $2";
        match &self.scratch {
            Some(db) => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await?;
                sqlx::query(sql)
                    .bind(at)
                    .bind(id)
                    .execute(&mut conn)
                    .await?;
            }
            None => {
                let mut conn = sqlx::SqliteConnection::connect(&self.sqlite_url()).await?;
                sqlx::query(sql)
                    .bind(at)
                    .bind(id)
                    .execute(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// The SQLite database of a server on the default database.
    fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.sqlite_path().display())
    }

    /// The SQLite database file of a server on the default database.
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.data.path().join("ferry.db")
    }

    /// Whether the store holds anything of file `id`: on disk its object file; in S3 its
    /// object, a pending piece or a multipart upload in progress.
    pub async fn store_holds_anything_of(&self, id: Uuid) -> Result<bool> {
        match &self.bucket {
            Some(bucket) => bucket.holds_anything_of(id).await,
            None => Ok(self.object_path(id).exists()),
        }
    }
}

pub async fn new_tenant(state: &AppState, name: &str) -> Result<(Uuid, String)> {
    let tenant = state.db.create_tenant(name).await?;
    let (_, key) = new_key(state, tenant.id, Role::Admin).await?;
    Ok((tenant.id, key))
}

/// A new API key of `tenant` with `role` (recorded in its audit chain as the CLI does):
/// its id and text.
pub async fn new_key(state: &AppState, tenant: Uuid, role: Role) -> Result<(Uuid, String)> {
    let key = ferry::auth::api_keys::create(
        &state.db,
        &state.master_key,
        tenant,
        role,
        ferry::audit::Actor::Operator,
    )
    .await?;
    Ok((key.id, key.text))
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn location(response: &Response) -> Result<String> {
    Ok(response
        .headers()
        .get("location")
        .context("Location header")?
        .to_str()?
        .to_owned())
}

pub fn header_u64(response: &Response, name: &str) -> Result<u64> {
    Ok(response
        .headers()
        .get(name)
        .with_context(|| format!("{name} header"))?
        .to_str()?
        .parse()?)
}

pub fn file_id(url: &str) -> Result<Uuid> {
    Ok(Uuid::parse_str(
        url.rsplit('/').next().context("id in URL")?,
    )?)
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Asserts a JSON error body of the API's shape and returns its code.
pub async fn error_code(response: Response) -> Result<String> {
    let body: serde_json::Value = response.json().await.context("error body is JSON")?;
    let code = body["error"].as_str().context("error field")?.to_owned();
    body["message"].as_str().context("message field")?;
    Ok(code)
}
