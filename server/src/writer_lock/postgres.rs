//! One writer per upload across instances: a PostgreSQL advisory lock per upload being written.
//!
//! [`UploadLocks`](super::local::UploadLocks) serialises writers inside one process; several
//! instances over one PostgreSQL database must agree too. Each instance keeps one dedicated
//! session (its own connection, not one from the pool) and, for every upload one of its requests
//! writes, holds the session-level advisory lock `pg_try_advisory_lock(`[`advisory_key`]`)`.
//!
//! Why an advisory lock rather than a lease row with an expiry:
//! - if the instance dies (crash, SIGKILL, its host gone once TCP keepalive notices),
//!   PostgreSQL ends its session and releases every lock of it at once, so a client that
//!   resumes on another instance gets its upload promptly: no expiry to wait out, no timer to
//!   tune;
//! - holding costs nothing: no row to renew, so no writes (and no vacuum work) while bytes flow.
//!
//! Takeover: a newcomer whose try fails sends `NOTIFY ferry_upload_takeover, '<upload id>'`.
//! Every instance `LISTEN`s (on a second connection) and cancels the stop token of its local
//! holder of that upload, exactly as a newcomer in the same process does; the holder commits
//! and releases, and the newcomer, retrying every [`RETRY_EVERY`], gets the lock. The notify is
//! repeated now and then while waiting, as notifications sent while a listener reconnects are
//! lost.
//!
//! If the dedicated session breaks, PostgreSQL has released all its locks, so every local holder
//! is asked to stop (it commits what it has; the offset-guarded database update stays the last
//! line of defence) and a new session is opened on the next need. While locks are held the
//! session is pinged every [`PING_EVERY`], so a break is noticed even when no request needs
//! the session. Any error on the session closes it: the bookkeeping here can never believe in a
//! lock the server has dropped, nor keep one the bookkeeping has forgotten.
//!
//! One task owns the session; acquires, unlocks and notifies reach it through a channel. So a
//! guard's `Drop` queues its unlock without awaiting, and every successful lock is matched by
//! exactly one unlock on the session that took it (advisory locks are re-entrant and counted
//! per session), unless that session is gone, and its locks with it.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, Executor as _, PgConnection};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior, error::Elapsed};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use super::locked::Locked;

/// The channel newcomers notify with the id of the upload they want.
pub const TAKEOVER_CHANNEL: &str = "ferry_upload_takeover";
/// How often a newcomer tries the lock again while the holder lets go.
pub const RETRY_EVERY: Duration = Duration::from_millis(50);
/// A newcomer repeats its notify every this many tries, in case the first one was lost.
const ASK_EVERY: u32 = 10;
/// How often a session holding locks is checked, so its loss stops local writers promptly.
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one statement on the lease session before it is given up as broken.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a new lease or listen connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before listening again after the listen connection failed.
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// Makes the server notice a vanished client host within about 25 s (idle 10 s, then 3 probes
/// 5 s apart), so its locks do not wait for the kernel's default of two hours. Ignored on Unix
/// sockets, where a dead client is seen at once.
const KEEPALIVE_SQL: &str =
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// Why the lease session could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryLockError {
    /// PostgreSQL refused or the connection failed.
    #[error("upload lease session: {0}")]
    Db(#[from] sqlx::Error),
    /// PostgreSQL did not answer in time; the session was closed.
    #[error("upload lease session: no answer within {0:?}")]
    Timeout(Duration),
    /// The task owning the session has stopped (the runtime is shutting down).
    #[error("upload lease session has stopped")]
    Gone,
}

/// The advisory-lock key of an upload: the two 64-bit halves of its id, XORed.
///
/// Two distinct uploads share a key with probability 2^-64 per pair. The consequence is benign:
/// across instances those two uploads would merely be written one at a time; within one
/// instance the lock is re-entrant, so they would not even wait (each holder still pairs its
/// own lock with its own unlock).
pub fn advisory_key(id: Uuid) -> i64 {
    let (high, low) = id.as_u64_pair();
    (high ^ low).cast_signed()
}

/// This instance's side of the cross-instance lease: a handle to the task that owns the session.
#[derive(Clone, Debug)]
pub struct PgAdvisoryLocks {
    requests: mpsc::UnboundedSender<Request>,
    application_name: Arc<str>,
}

/// The right to write one upload across instances; dropping it queues the unlock.
#[derive(Debug)]
pub struct HeldLock {
    requests: mpsc::UnboundedSender<Request>,
    id: Uuid,
    serial: u64,
    generation: u64,
    /// Set when the session holding the lock was lost (PostgreSQL released the lock).
    lost: Arc<AtomicBool>,
}

impl HeldLock {
    /// Whether the session that held this lock was lost: PostgreSQL has released it, and
    /// another instance may hold the upload now, so its holder must write nothing more.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

/// Local holders by upload, so a takeover notify can reach them. Written by the session task,
/// read by the listen task.
type Holders = Arc<Mutex<HashMap<Uuid, Holder>>>;

#[derive(Debug)]
struct Holder {
    serial: u64,
    stop: CancellationToken,
    lost: Arc<AtomicBool>,
}

#[derive(Debug)]
enum Request {
    TryLock {
        id: Uuid,
        stop: CancellationToken,
        /// Notify the holder if the lock is taken.
        ask: bool,
        reply: oneshot::Sender<Result<Option<HeldLock>, AdvisoryLockError>>,
    },
    Unlock {
        id: Uuid,
        serial: u64,
        generation: u64,
    },
}

impl PgAdvisoryLocks {
    /// Opens this instance's lease session and starts listening for takeover requests.
    ///
    /// `database_url` is the service's PostgreSQL URL. The session is visible in
    /// `pg_stat_activity` as [`PgAdvisoryLocks::application_name`], the listener as
    /// `ferry-listen-<same id>`.
    pub async fn start(database_url: &str) -> Result<Self, AdvisoryLockError> {
        let instance = Uuid::new_v4();
        let application_name: Arc<str> = Arc::from(format!("ferry-lease-{instance}"));
        let options = PgConnectOptions::from_str(database_url)?;
        let listen_options = options
            .clone()
            .application_name(&format!("ferry-listen-{instance}"));
        let options = options.application_name(&application_name);

        let holders = Holders::default();
        let (requests, inbox) = mpsc::unbounded_channel();
        let mut session = Session {
            options,
            conn: None,
            generation: 0,
            next_serial: 0,
            holders: holders.clone(),
            requests: requests.downgrade(),
        };
        session.connection().await?;
        let listener = listen(listen_options).await?;

        let listening = CancellationToken::new();
        tokio::spawn(listen_loop(listener, holders, listening.clone()));
        tokio::spawn(session.run(inbox, listening.drop_guard()));
        Ok(PgAdvisoryLocks {
            requests,
            application_name,
        })
    }

    /// The `application_name` of the lease session, so operators (and tests) can find it.
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// Takes the lease on upload `id`, asking another instance's holder to stop, until
    /// `deadline` (at least one try is made). `stop` is the new holder's token: it fires when
    /// another instance asks for the upload or the session is lost. Gives up early if `stop`
    /// fires while waiting, as a newer request of this instance wants the upload.
    pub async fn acquire(
        &self,
        id: Uuid,
        stop: &CancellationToken,
        deadline: Instant,
    ) -> Result<HeldLock, Locked> {
        let mut last_error = None;
        for attempt in 0u32.. {
            let (reply, answer) = oneshot::channel();
            let request = Request::TryLock {
                id,
                stop: stop.clone(),
                ask: attempt % ASK_EVERY == 0,
                reply,
            };
            if self.requests.send(request).is_err() {
                last_error = Some(AdvisoryLockError::Gone);
                break;
            }
            // The session task bounds every statement, so this wait is bounded too.
            match answer.await {
                Ok(Ok(Some(lock))) => return Ok(lock),
                Ok(Ok(None)) => {}
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => {
                    last_error = Some(AdvisoryLockError::Gone);
                    break;
                }
            }
            if stop.is_cancelled() || Instant::now() + RETRY_EVERY > deadline {
                break;
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
        if let Some(error) = last_error {
            tracing::warn!(upload = %id, %error, "could not take the upload lease");
        }
        Err(Locked)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // If the session task is gone, so is its session and this lock with it.
        let _ = self.requests.send(Request::Unlock {
            id: self.id,
            serial: self.serial,
            generation: self.generation,
        });
    }
}

/// The dedicated session and its bookkeeping, owned by one task.
struct Session {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
    /// Counts sessions: a lock taken on an earlier one died with it and is not unlocked.
    generation: u64,
    next_serial: u64,
    /// Exactly the holders of locks on the current session.
    holders: Holders,
    /// For the guards this task hands out; weak, so the task ends with the last handle.
    requests: mpsc::WeakUnboundedSender<Request>,
}

impl Session {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>, _listening: DropGuard) {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = inbox.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => break,
                },
                _ = ping.tick() => self.ping().await,
            }
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::TryLock {
                id,
                stop,
                ask,
                reply,
            } => {
                let answer = self.try_lock(id, stop, ask).await;
                // If the acquirer has gone, the lock comes back here and its drop unlocks.
                let _ = reply.send(answer);
            }
            Request::Unlock {
                id,
                serial,
                generation,
            } => self.unlock(id, serial, generation).await,
        }
    }

    async fn try_lock(
        &mut self,
        id: Uuid,
        stop: CancellationToken,
        ask: bool,
    ) -> Result<Option<HeldLock>, AdvisoryLockError> {
        let Some(requests) = self.requests.upgrade() else {
            return Err(AdvisoryLockError::Gone);
        };
        let conn = self.connection().await?;
        let taken = tokio::time::timeout(QUERY_TIMEOUT, try_advisory_lock(conn, id)).await;
        if self.keep_or_lose(taken)? {
            self.next_serial += 1;
            let serial = self.next_serial;
            let lost = Arc::new(AtomicBool::new(false));
            if let Ok(mut holders) = self.holders.lock() {
                holders.insert(
                    id,
                    Holder {
                        serial,
                        stop,
                        lost: lost.clone(),
                    },
                );
            }
            return Ok(Some(HeldLock {
                requests,
                id,
                serial,
                generation: self.generation,
                lost,
            }));
        }
        if ask {
            let conn = self.connection().await?;
            let sent = tokio::time::timeout(QUERY_TIMEOUT, ask_holder(conn, id)).await;
            self.keep_or_lose(sent)?;
        }
        Ok(None)
    }

    async fn unlock(&mut self, id: Uuid, serial: u64, generation: u64) {
        if generation != self.generation {
            return; // Released by PostgreSQL when that session ended.
        }
        if let Ok(mut holders) = self.holders.lock()
            && holders.get(&id).is_some_and(|h| h.serial == serial)
        {
            holders.remove(&id);
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let released = tokio::time::timeout(QUERY_TIMEOUT, advisory_unlock(conn, id)).await;
        if let Ok(false) = self.keep_or_lose(released) {
            tracing::warn!(upload = %id, "upload lease was not held by this session at unlock");
        }
    }

    /// Checks a session that holds locks, so that its loss stops their writers promptly.
    async fn ping(&mut self) {
        if self.holders.lock().map_or(true, |h| h.is_empty()) {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let answered = tokio::time::timeout(QUERY_TIMEOUT, conn.ping()).await;
        let _ = self.keep_or_lose(answered);
    }

    /// The open session, opening a new one if needed.
    async fn connection(&mut self) -> Result<&mut PgConnection, AdvisoryLockError> {
        if self.conn.is_none() {
            let conn = connect(&self.options).await?;
            if self.generation > 0 {
                tracing::info!("upload lease session re-opened");
            }
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or(AdvisoryLockError::Gone)
    }

    /// A statement's result; on any failure the session is closed and its holders stopped.
    fn keep_or_lose<T>(
        &mut self,
        outcome: Result<Result<T, sqlx::Error>, Elapsed>,
    ) -> Result<T, AdvisoryLockError> {
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => AdvisoryLockError::Db(error),
            Err(_) => AdvisoryLockError::Timeout(QUERY_TIMEOUT),
        };
        self.lose(&error);
        Err(error)
    }

    /// Forgets the session: dropping the connection closes it, so the server ends the session
    /// and releases its locks if it has not already. Every local holder is asked to stop.
    fn lose(&mut self, error: &AdvisoryLockError) {
        self.conn = None;
        self.generation += 1;
        let holders: Vec<Holder> = match self.holders.lock() {
            Ok(mut holders) => holders.drain().map(|(_, holder)| holder).collect(),
            Err(_) => Vec::new(),
        };
        for holder in &holders {
            holder.lost.store(true, Ordering::Release);
            holder.stop.cancel();
        }
        if holders.is_empty() {
            tracing::info!(%error, "upload lease session lost while holding nothing");
        } else {
            tracing::warn!(
                %error,
                writers = holders.len(),
                "upload lease session lost: PostgreSQL released its locks, so this instance's \
                 writers were asked to stop; reconnecting on next use"
            );
        }
    }
}

async fn try_advisory_lock(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(advisory_key(id))
        .fetch_one(conn)
        .await
}

async fn advisory_unlock(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(advisory_key(id))
        .fetch_one(conn)
        .await
}

/// Asks every instance to stop its writer of upload `id`.
async fn ask_holder(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(TAKEOVER_CHANNEL)
        .bind(id.to_string())
        .execute(conn)
        .await
        .map(drop)
}

/// A new lease session, with keepalives that let the server notice a vanished client.
async fn connect(options: &PgConnectOptions) -> Result<PgConnection, AdvisoryLockError> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| AdvisoryLockError::Timeout(CONNECT_TIMEOUT))??;
    // A plain string runs as a simple query, which may hold several statements.
    tokio::time::timeout(QUERY_TIMEOUT, conn.execute(KEEPALIVE_SQL))
        .await
        .map_err(|_| AdvisoryLockError::Timeout(QUERY_TIMEOUT))??;
    Ok(conn)
}

/// A listener on [`TAKEOVER_CHANNEL`], on a connection of its own (sqlx reconnects it).
async fn listen(options: PgConnectOptions) -> Result<PgListener, AdvisoryLockError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(CONNECT_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(TAKEOVER_CHANNEL).await?;
    Ok(listener)
}

/// Asks the local holder of each upload another instance wants to stop, until `shutdown`.
async fn listen_loop(mut listener: PgListener, holders: Holders, shutdown: CancellationToken) {
    let mut failing = false;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = listener.recv() => next,
        };
        match next {
            Ok(notification) => {
                failing = false;
                let Ok(id) = Uuid::parse_str(notification.payload()) else {
                    continue;
                };
                if let Ok(holders) = holders.lock()
                    && let Some(holder) = holders.get(&id)
                {
                    tracing::debug!(upload = %id, "another instance asks for this upload");
                    holder.stop.cancel();
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(
                        %error,
                        "takeover listener failed; until it reconnects, other instances wait \
                         for their repeated requests"
                    );
                }
                failing = true;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(LISTEN_RETRY) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_mixes_both_halves_of_the_id() {
        let id = Uuid::from_u64_pair(0x0123_4567_89ab_cdef, 0xffff_0000_ffff_0000);
        assert_eq!(
            advisory_key(id),
            (0x0123_4567_89ab_cdef_u64 ^ 0xffff_0000_ffff_0000).cast_signed()
        );
        let other = Uuid::from_u64_pair(0x0123_4567_89ab_cdef, 0xffff_0000_ffff_0001);
        assert_ne!(advisory_key(id), advisory_key(other));
    }
}
