//! Start-up: turn a [`Config`] into an [`AppState`], and serve it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::entra::verifier::Verifier;
use crate::config::Config;
use crate::crypto::CryptoError;
use crate::crypto::keys::MasterKey;
use crate::db::{Backend, Db, DbError};
use crate::state::AppState;
use crate::store::{self, StoreError};
use crate::writer_lock::UploadLocks;
use crate::writer_lock::postgres::AdvisoryLockError;

/// Why the service could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The object store could not be opened.
    #[error("object store: {0}")]
    Store(StoreError),
    /// The cross-instance upload lease (PostgreSQL only) could not be set up.
    #[error("upload lease: {0}")]
    Lease(#[from] AdvisoryLockError),
    /// The scheduled jobs could not be started.
    #[error("job scheduler: {0}")]
    Jobs(#[from] tokio_cron_scheduler::JobSchedulerError),
    /// The master key is malformed.
    #[error("FERRY_MASTER_KEY: {0}")]
    MasterKey(#[from] CryptoError),
    /// The database's keys are wrapped under another master key than the one configured.
    #[error(
        "FERRY_MASTER_KEY: this database was set up with another master key; start with the \
         master key it was made with (no key is generated beside an existing database)"
    )]
    WrongMasterKey,
    /// Another `ferry serve` already serves this SQLite data directory.
    #[error(
        "another ferry serve is already running on {0} (its SQLite database allows one \
         instance; use PostgreSQL for several)"
    )]
    AlreadyServing(String),
    /// Entra sign-in could not be set up (no HTTP client for its signing keys).
    #[error("Entra sign-in: {0}")]
    Entra(String),
    /// A file or socket could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

// Not `#[from]`: that would also make the store error the source, and reports that print
// the chain would say it twice.
impl From<StoreError> for StartupError {
    fn from(e: StoreError) -> Self {
        StartupError::Store(e)
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartupError {
    let context = context.into();
    move |source| StartupError::Io { context, source }
}

/// The master key, checked against the database: the configured one, else the one in the
/// data directory, else (development) a new one written there — but only beside a database
/// that holds no key yet: a generated key can never open an existing database's files, and
/// writing it would leave a wrong key for the next start to load.
pub async fn master_key(config: &Config, db: &Db) -> Result<MasterKey, StartupError> {
    let key = match configured_master_key(config)? {
        Some(key) => key,
        None => {
            if db.master_key_check().await?.is_some() || db.any_wrapped_key().await?.is_some() {
                return Err(StartupError::WrongMasterKey);
            }
            generate_master_key(config)?
        }
    };
    check_master_key(db, &key).await?;
    Ok(key)
}

/// `FERRY_MASTER_KEY`, or the key file in the data directory, if there is one.
fn configured_master_key(config: &Config) -> Result<Option<MasterKey>, StartupError> {
    if let Some(encoded) = &config.master_key {
        return Ok(Some(MasterKey::from_base64(encoded)?));
    }
    let path = config.data_dir.join("master.key");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
    Ok(Some(MasterKey::from_base64(text.trim())?))
}

/// A new development master key, written to the data directory.
fn generate_master_key(config: &Config) -> Result<MasterKey, StartupError> {
    let path = config.data_dir.join("master.key");
    tracing::warn!(
        path = %path.display(),
        "no FERRY_MASTER_KEY set: generated a development master key next to the data; \
         set FERRY_MASTER_KEY (or FERRY_MASTER_KEY_FILE) in production"
    );
    let key = MasterKey::generate()?;
    write_private(&path, key.to_base64().as_bytes())?;
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StartupError> {
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", path.display())))
}

/// Opens the database, store and keys. `public_url` is the base of links when none is configured.
pub async fn open(config: Config, public_url: String) -> Result<AppState, StartupError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io(format!("creating {}", config.data_dir.display())))?;
    let db = Db::connect(&config.database_url).await?;
    let master_key = master_key(&config, &db).await?;
    let store = store::open(&config).await?;
    // Instances sharing a PostgreSQL database also need one writer per upload between them.
    let locks = match db.backend() {
        Backend::Postgres => {
            UploadLocks::with_postgres_advisory_locks(&config.database_url).await?
        }
        Backend::Sqlite => UploadLocks::in_process(),
    };
    let public_url = config.public_url.clone().unwrap_or(public_url);
    let entra = match &config.entra {
        Some(entra) => Some(Arc::new(
            Verifier::new(entra).map_err(|e| StartupError::Entra(e.to_string()))?,
        )),
        None => None,
    };
    Ok(AppState {
        entra,
        db,
        store,
        master_key: Arc::new(master_key),
        public_url: Arc::from(public_url.trim_end_matches('/')),
        config: Arc::new(config),
        locks,
    })
}

/// Refuses a master key other than the one the database's keys are wrapped under: compares
/// its check value with the stored one, or (for a database from before check values) tries to
/// unwrap one stored data key, then stores the check value.
async fn check_master_key(db: &Db, key: &MasterKey) -> Result<(), StartupError> {
    let kcv = key.check_value()?;
    let stored = match db.master_key_check().await? {
        Some(stored) => stored,
        None => {
            if let Some((tenant, file, wrapped)) = db.any_wrapped_key().await?
                && key.tenant_kek(tenant)?.unwrap(&wrapped, file).is_err()
            {
                return Err(StartupError::WrongMasterKey);
            }
            db.remember_master_key_check(&kcv).await?
        }
    };
    if bool::from(subtle::ConstantTimeEq::ct_eq(
        stored.as_slice(),
        kcv.as_slice(),
    )) {
        Ok(())
    } else {
        Err(StartupError::WrongMasterKey)
    }
}

/// Binds the listener, starts the scheduled jobs, prints `ferry listening on http://ADDR` once
/// ready, and serves until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    // Held until this function returns: a second `ferry serve` on the same SQLite data
    // directory would race this one's writers (SQLite has no cross-instance upload lease).
    let _serving = match Backend::of_url(&config.database_url)? {
        Backend::Sqlite => Some(lock_data_dir(&config.data_dir)?),
        Backend::Postgres => None,
    };
    // Only the serving process sweeps spools, and only those no live process holds.
    let spools = config.data_dir.join("spool");
    match store::s3::spool_dir::clear_stale(&spools) {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, dir = %spools.display(), "removed spools of stopped processes"),
        Err(e) => tracing::warn!(error = %e, dir = %spools.display(), "could not sweep old spools"),
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(io(format!("binding {}", config.listen)))?;
    let local = listener
        .local_addr()
        .map_err(io("reading the bound address"))?;
    let state = open(config, format!("http://{local}")).await?;
    let mut jobs = crate::jobs::start(state.clone()).await?;
    println!("ferry listening on http://{local}");
    let _ = std::io::stdout().flush();
    let served = serve_listener(listener, state, shutdown_signal()).await;
    if let Err(e) = jobs.shutdown().await {
        tracing::warn!(error = %e, "stopping the job scheduler");
    }
    served
}

/// Takes `DATA/serve.lock` for as long as the returned file is open (the OS releases it if
/// the process dies), or says that another process holds it.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartupError> {
    std::fs::create_dir_all(data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
    let path = data_dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StartupError::AlreadyServing(data_dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(format!("locking {}", path.display()))(e)),
    }
}

/// Serves `state` on an already bound listener until `shutdown` resolves (tests use this with
/// a port-0 listener).
pub async fn serve_listener(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let limits = crate::http::serve::ConnectionLimits::from_config(&state.config);
    crate::http::serve::serve(listener, crate::http::router(state), limits, shutdown)
        .await
        .map_err(io("serving"))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
}
