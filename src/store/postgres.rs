//! The shared store: PostgreSQL, for several replicas behind one load balancer. Ended sessions
//! and their segments live in the same tables as in SQLite; `live_sessions` holds each
//! replica's live sessions with a heartbeat, so every replica can list them, ask the holder to
//! end one, and mark those of a replica that died `interrupted`.
//!
//! One thread with its own connection writes what sessions do as they do it: a session is
//! recorded live when it opens, each final is appended to its live row as it is sent (so a
//! replica killed mid-stream leaves every final its clients had), and the ended session is
//! written whole. When the database is away, writes wait in memory (bounded by
//! `store.buffer_sessions`; ended sessions are the last to be given up) and the thread retries
//! with backoff, so a short outage loses nothing and never blocks a session. Reads and the
//! fleet's calls take a pooled connection, with timeouts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::postgres::{Client, GenericClient, NoTls, Row};
use r2d2_postgres::PostgresConnectionManager;

use super::api::{Fleet, TranscriptStore};
use super::config::StoreConfig;
use super::published::Published;
use super::record::{
    header_of, meta_json, reason_from_text, reason_text, unix_now, ListedSession, RemoteSession, StoreError,
    StoreState, StoredSession,
};
use super::writer::{apply_batch, SessionWrite, Write, WriterThread};
use crate::domain::Segment;
use crate::protocol::CloseReason;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// Versioned steps; each runs once, in order, under an advisory lock so replicas starting
/// together do not race. The tables match SQLite's (`store/sqlite.rs`, schema 2).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE sessions (
         id TEXT PRIMARY KEY,
         started_at DOUBLE PRECISION NOT NULL,
         ended_at DOUBLE PRECISION NOT NULL,
         close_reason TEXT,
         client TEXT NOT NULL,
         audio_seconds DOUBLE PRECISION NOT NULL,
         meta TEXT NOT NULL
     );
     CREATE INDEX sessions_ended ON sessions (ended_at);
     CREATE TABLE segments (
         session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
         segment_id BIGINT NOT NULL,
         part INTEGER NOT NULL,
         start DOUBLE PRECISION NOT NULL,
         \"end\" DOUBLE PRECISION NOT NULL,
         text TEXT NOT NULL,
         speaker TEXT,
         words TEXT NOT NULL,
         language TEXT NOT NULL,
         PRIMARY KEY (session_id, segment_id, part)
     );
     CREATE TABLE live_sessions (
         id TEXT PRIMARY KEY,
         replica TEXT NOT NULL,
         heartbeat DOUBLE PRECISION NOT NULL,
         started_at DOUBLE PRECISION NOT NULL,
         client TEXT NOT NULL,
         audio_seconds DOUBLE PRECISION NOT NULL,
         meta TEXT NOT NULL,
         segments TEXT NOT NULL,
         end_requested BOOLEAN NOT NULL DEFAULT FALSE
     );
     CREATE INDEX live_sessions_replica ON live_sessions (replica);",
    "ALTER TABLE segments ADD COLUMN channel INTEGER;",
];

/// Any number; the same in every replica.
const MIGRATION_LOCK: i64 = 0x5350_4545_4348;

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let result = (|| {
        client.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let version: i32 = client.query_opt("SELECT version FROM schema_version", &[])?.map_or(0, |r| r.get(0));
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let mut tx = client.transaction()?;
            tx.batch_execute(step)?;
            tx.execute("DELETE FROM schema_version", &[])?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(i as i32 + 1)])?;
            tx.commit()?;
        }
        Ok(())
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
    result
}

fn pg_config(url: &str, timeout: Duration) -> Result<::postgres::Config, StoreError> {
    let mut config: ::postgres::Config = url.parse()?;
    config.connect_timeout(timeout);
    Ok(config)
}

pub struct PostgresStore {
    /// Taken at `close`: the pool's connections must be dropped on a plain thread, since the
    /// `postgres` client's drop runs a runtime of its own, which panics (and, during the
    /// runtime's shutdown, aborts the process) when it happens on a tokio worker.
    pool: std::sync::Mutex<Option<Pool>>,
    writer: WriterThread<Write<StoredSession>>,
    /// A write failed and what waited since is not all written yet: the store is degraded. (Not
    /// "anything queued": with every final written as it is sent, that is true for a moment
    /// at every write.)
    behind: Arc<AtomicBool>,
    pub(super) heartbeat_timeout: f64,
    /// What this replica's heartbeat last wrote of each live session.
    pub(super) published: std::sync::Mutex<Published>,
}

impl PostgresStore {
    /// Connects, migrates and starts the writer; fails when the database cannot be reached.
    pub fn open(url: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        let timeout = Duration::from_secs(config.connect_timeout_s.max(1));
        let pg = pg_config(url, timeout)?;
        let mut client = pg.connect(NoTls)?;
        migrate(&mut client)?;
        let pool = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .build(PostgresConnectionManager::new(pg.clone(), NoTls))?;
        let behind = Arc::new(AtomicBool::new(false));
        let replica = config.replica();
        let mut writer = Writer { pg, client: Some(client), replica, pending: VecDeque::new(), behind: behind.clone() };
        let cap = config.buffer_sessions.max(1);
        let writer = WriterThread::spawn(QUEUE, move |queue| writer.run(queue, cap));
        let pool = std::sync::Mutex::new(Some(pool));
        let published = std::sync::Mutex::default();
        Ok(Self { pool, writer, behind, heartbeat_timeout: config.heartbeat_timeout_s as f64, published })
    }

    /// Whether the writer has finals it could not write yet.
    pub(super) fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    pub(super) fn conn(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        let pool = self.pool.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(StoreError::Closed)?;
        Ok(pool.get()?)
    }
}

/// A session record names its session.
impl SessionWrite for StoredSession {
    fn session_id(&self) -> &str {
        &self.header.id
    }
}

/// The writer thread's state: its connection (reopened after a failure) and what waits.
struct Writer {
    pg: ::postgres::Config,
    client: Option<Client>,
    /// This replica, the holder of the live rows it writes.
    replica: String,
    pending: VecDeque<Write<StoredSession>>,
    behind: Arc<AtomicBool>,
}

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// At shutdown, how long the writer keeps trying to write what waits.
const FLUSH_AT_CLOSE: Duration = Duration::from_secs(10);

impl Writer {
    fn run(&mut self, queue: Receiver<Write<StoredSession>>, cap: usize) {
        let mut backoff = BACKOFF_START;
        let mut open = true;
        let mut closing_since: Option<Instant> = None;
        loop {
            // Wait for work (or, while retrying, for the backoff to pass), taking what arrives.
            let wait = if self.pending.is_empty() { Duration::from_secs(3600) } else { Duration::ZERO };
            if open {
                match queue.recv_timeout(wait) {
                    Ok(s) => self.push(s, cap),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
                while let Ok(s) = queue.try_recv() {
                    self.push(s, cap);
                }
            }
            if !open && self.pending.is_empty() {
                return;
            }
            if !open && closing_since.get_or_insert_with(Instant::now).elapsed() > FLUSH_AT_CLOSE {
                tracing::error!(sessions = self.pending.len(), "store closed with sessions not written");
                return;
            }
            match self.write_front() {
                Ok(()) => {
                    backoff = BACKOFF_START;
                    if self.pending.is_empty() {
                        self.behind.store(false, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    self.behind.store(true, Ordering::Relaxed);
                    tracing::warn!(error = %crate::logging::chain(&e), waiting = self.pending.len(), retry_in_ms = backoff.as_millis() as u64, "PostgreSQL write failed; will retry");
                    self.client = None;
                    // Keep taking sessions while waiting out the backoff.
                    let until = Instant::now() + backoff;
                    while open && Instant::now() < until {
                        match queue.recv_timeout(until.saturating_duration_since(Instant::now())) {
                            Ok(s) => self.push(s, cap),
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => open = false,
                        }
                    }
                    if !open {
                        std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Queues a write. When full, a live-row write goes first (the session's end rewrites it
    /// whole), and only then the oldest ended session.
    fn push(&mut self, write: Write<StoredSession>, cap: usize) {
        if self.pending.len() >= cap {
            let live_write = self.pending.iter().position(|w| !matches!(w, Write::End(_)));
            if let Some(lost) = self.pending.remove(live_write.unwrap_or(0)) {
                tracing::error!(session_id = %lost.session_id(), "store buffer full: a write is given up");
            }
        }
        self.pending.push_back(write);
    }

    /// Writes what waits, up to `BATCH` writes in one transaction.
    fn write_front(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let client = match &mut self.client {
            Some(client) if !client.is_closed() => client,
            slot => slot.insert(self.pg.connect(NoTls)?),
        };
        let count = self.pending.len().min(BATCH);
        let replica = &self.replica;
        let batch = &self.pending.make_contiguous()[..count];
        // A write the database refuses (not a lost connection) would be refused again: it is
        // given up alone; a lost connection retries the whole batch after a backoff.
        let refused = |e: &StoreError| matches!(e, StoreError::Postgres(e) if e.as_db_error().is_some());
        apply_batch(batch, |writes| apply_all(client, writes, replica), refused)?;
        self.pending.drain(..count);
        Ok(())
    }
}

/// Most writes one transaction takes.
const BATCH: usize = 256;
/// Writes handed to the writer thread and not yet taken: finals of many sessions at once.
const QUEUE: usize = 8192;

/// Applies `writes` in one transaction.
fn apply_all(client: &mut Client, writes: &[Write<StoredSession>], replica: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    for write in writes {
        apply(&mut tx, write, replica)?;
    }
    Ok(tx.commit()?)
}

fn apply(tx: &mut impl GenericClient, write: &Write<StoredSession>, replica: &str) -> Result<(), StoreError> {
    match write {
        Write::Begin(s) => {
            let (h, meta) = (&s.header, meta_json(&s.header)?);
            tx.execute(
                "INSERT INTO live_sessions (id, replica, heartbeat, started_at, client, audio_seconds, meta, segments)
                 SELECT $1, $2, $3, $4, $5, $6, $7, '[]' WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE id = $1)
                 ON CONFLICT (id) DO NOTHING",
                &[&h.id, &replica, &unix_now(), &h.started_at, &h.client, &s.audio_seconds, &meta],
            )?;
        }
        Write::Append { id, segment, audio_seconds } => {
            let segment = serde_json::to_string(&[segment])?;
            tx.execute(
                "UPDATE live_sessions SET segments = (segments::jsonb || $2::text::jsonb)::text, audio_seconds = $3,
                   heartbeat = GREATEST(heartbeat, $4) WHERE id = $1",
                &[id, &segment, audio_seconds, &unix_now()],
            )?;
        }
        Write::End(s) => {
            write_session(tx, s)?;
            tx.execute("DELETE FROM live_sessions WHERE id = $1", &[&s.header.id])?;
        }
    }
    Ok(())
}

pub(super) fn write_session(tx: &mut impl GenericClient, s: &StoredSession) -> Result<(), StoreError> {
    let (h, meta) = (&s.header, meta_json(&s.header)?);
    let reason = s.close_reason.and_then(reason_text);
    tx.execute(
        "INSERT INTO sessions (id, started_at, ended_at, close_reason, client, audio_seconds, meta)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET ended_at = $3, close_reason = $4, audio_seconds = $6, meta = $7",
        &[&h.id, &h.started_at, &s.ended_at, &reason, &h.client, &s.audio_seconds, &meta],
    )?;
    for e in &s.segments {
        tx.execute(
            "INSERT INTO segments
             (session_id, segment_id, part, start, \"end\", text, speaker, words, language, channel)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (session_id, segment_id, part) DO UPDATE
             SET start = $4, \"end\" = $5, text = $6, speaker = $7, words = $8, language = $9, channel = $10",
            &[
                &h.id,
                &(e.segment_id as i64),
                &(e.part as i32),
                &e.start,
                &e.end,
                &e.text,
                &e.speaker,
                &serde_json::to_string(&e.words)?,
                &e.language,
                &e.channel.map(|c| c as i32),
            ],
        )?;
    }
    Ok(())
}

const SESSION_COLUMNS: &str = "id, client, meta, started_at, ended_at, close_reason, audio_seconds";

fn session_row(r: &Row) -> Result<StoredSession, StoreError> {
    Ok(StoredSession {
        header: header_of(r.get(0), r.get(1), r.get(2), r.get(3))?,
        ended_at: r.get(4),
        close_reason: reason_from_text(r.get(5)),
        audio_seconds: r.get(6),
        segments: Vec::new(),
    })
}

fn segment_row(r: &Row) -> Result<Segment, StoreError> {
    Ok(Segment {
        segment_id: r.get::<_, i64>(0) as u64,
        part: r.get::<_, i32>(1) as u32,
        start: r.get(2),
        end: r.get(3),
        text: r.get(4),
        speaker: r.get(5),
        words: serde_json::from_str(r.get::<_, &str>(6))?,
        language: r.get(7),
        channel: r.get::<_, Option<i32>>(8).map(|c| c as u32),
    })
}

pub(super) const LIVE_COLUMNS: &str = "id, client, meta, started_at, heartbeat, audio_seconds, segments, replica";

/// A live record: `ended_at` is its last heartbeat; its finals so far come along.
pub(super) fn live_row(r: &Row) -> Result<RemoteSession, StoreError> {
    let session = StoredSession {
        header: header_of(r.get(0), r.get(1), r.get(2), r.get(3))?,
        ended_at: r.get(4),
        close_reason: None,
        audio_seconds: r.get(5),
        segments: serde_json::from_str(r.get::<_, &str>(6))?,
    };
    Ok(RemoteSession { replica: r.get(7), session })
}

impl TranscriptStore for PostgresStore {
    fn begin(&self, session: StoredSession) {
        self.writer.send(Write::Begin(session));
    }

    fn append(&self, id: &str, segment: &Segment, audio_seconds: f64) {
        self.writer.send(Write::Append { id: id.to_owned(), segment: segment.clone(), audio_seconds });
    }

    fn save(&self, session: StoredSession) {
        self.writer.send(Write::End(session));
    }

    fn get(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let mut conn = self.conn()?;
        let query = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let Some(row) = conn.query_opt(&query, &[&id])? else { return Ok(None) };
        let mut session = session_row(&row)?;
        let rows = conn.query(
            "SELECT segment_id, part, start, \"end\", text, speaker, words, language, channel
             FROM segments WHERE session_id = $1 ORDER BY start, segment_id, part",
            &[&id],
        )?;
        session.segments = rows.iter().map(segment_row).collect::<Result<_, _>>()?;
        Ok(Some(session))
    }

    fn recent(&self, limit: usize, before: Option<f64>) -> Result<Vec<ListedSession>, StoreError> {
        let query = format!(
            "SELECT {SESSION_COLUMNS},
                 (SELECT COUNT(*) FROM segments g WHERE g.session_id = sessions.id),
                 ARRAY(SELECT DISTINCT speaker FROM segments g
                       WHERE g.session_id = sessions.id AND speaker IS NOT NULL ORDER BY speaker)
             FROM sessions WHERE ended_at < $2 ORDER BY ended_at DESC LIMIT $1"
        );
        let rows = self.conn()?.query(&query, &[&(limit as i64), &before.unwrap_or(f64::MAX)])?;
        rows.iter()
            .map(|r| {
                let segments = r.get::<_, i64>(7) as u64;
                Ok(ListedSession { session: session_row(r)?, segments, speakers: r.get(8) })
            })
            .collect()
    }

    fn delete_ended_before(&self, unix_seconds: f64) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute("DELETE FROM sessions WHERE ended_at < $1", &[&unix_seconds])? as usize)
    }

    fn state(&self) -> StoreState {
        // Unreachable is degraded, not down: live transcription goes on and ended sessions wait
        // in memory for the database to come back.
        let reachable = self.conn().and_then(|mut c| Ok(c.query_one("SELECT 1", &[])?)).is_ok();
        if reachable && !self.behind.load(Ordering::Relaxed) {
            StoreState::Up
        } else {
            StoreState::Degraded
        }
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    /// Called on a blocking thread at shutdown: writes what waits, then closes the pool here.
    fn close(&self) {
        self.writer.close();
        drop(self.pool.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

impl Fleet for PostgresStore {
    fn publish(&self, replica: &str, live: &[StoredSession]) -> Result<(), StoreError> {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let beat = published.beat(replica, live, self.is_behind());
        let mut conn = self.conn()?;
        let now = unix_now();
        // Every live session is still live, and this far into its audio: one statement, on its
        // own and never waiting. A row the writer holds is skipped: the final it is writing
        // marks the session live too. (Waiting for it could deadlock with the writer's batch,
        // which holds its rows in the order finals came.)
        let ids: Vec<&str> = live.iter().map(|s| s.header.id.as_str()).collect();
        let audio: Vec<f64> = live.iter().map(|s| s.audio_seconds).collect();
        conn.execute(
            "UPDATE live_sessions AS l SET heartbeat = $2, audio_seconds = u.audio_seconds
             FROM unnest($3::text[], $4::float8[]) AS u(id, audio_seconds)
             WHERE l.id = u.id AND l.id IN
               (SELECT id FROM live_sessions WHERE replica = $1 AND id = ANY($3) FOR UPDATE SKIP LOCKED)",
            &[&replica, &now, &ids, &audio],
        )?;
        let mut tx = conn.transaction()?;
        for s in beat.rewrite {
            upsert_live(&mut tx, replica, now, s)?;
        }
        if beat.gone {
            tx.execute("DELETE FROM live_sessions WHERE replica = $1 AND NOT (id = ANY($2))", &[&replica, &ids])?;
        }
        tx.commit()?;
        published.written(replica, live);
        Ok(())
    }

    fn live_elsewhere(&self, replica: &str) -> Result<Vec<RemoteSession>, StoreError> {
        let fresh = unix_now() - self.heartbeat_timeout;
        let query = format!(
            "SELECT {LIVE_COLUMNS} FROM live_sessions WHERE replica <> $1 AND heartbeat >= $2 ORDER BY started_at"
        );
        self.conn()?.query(&query, &[&replica, &fresh])?.iter().map(live_row).collect()
    }

    fn live_session(&self, id: &str, replica: &str) -> Result<Option<RemoteSession>, StoreError> {
        let fresh = unix_now() - self.heartbeat_timeout;
        let query =
            format!("SELECT {LIVE_COLUMNS} FROM live_sessions WHERE id = $1 AND replica <> $2 AND heartbeat >= $3");
        self.conn()?.query_opt(&query, &[&id, &replica, &fresh])?.as_ref().map(live_row).transpose()
    }

    fn request_end(&self, id: &str) -> Result<bool, StoreError> {
        let fresh = unix_now() - self.heartbeat_timeout;
        let n = self.conn()?.execute(
            "UPDATE live_sessions SET end_requested = TRUE WHERE id = $1 AND heartbeat >= $2",
            &[&id, &fresh],
        )?;
        Ok(n > 0)
    }

    fn take_end_requests(&self, replica: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.conn()?.query(
            "UPDATE live_sessions SET end_requested = FALSE WHERE replica = $1 AND end_requested RETURNING id",
            &[&replica],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn interrupt_stale(&self) -> Result<usize, StoreError> {
        let stale = unix_now() - self.heartbeat_timeout;
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // SKIP LOCKED: replicas sweeping at the same moment each take different records.
        let query = format!("SELECT {LIVE_COLUMNS} FROM live_sessions WHERE heartbeat < $1 FOR UPDATE SKIP LOCKED");
        let records = tx.query(&query, &[&stale])?.iter().map(live_row).collect::<Result<Vec<_>, _>>()?;
        for record in &records {
            let session = StoredSession { close_reason: Some(CloseReason::Interrupted), ..record.session.clone() };
            write_session(&mut tx, &session)?;
            tx.execute("DELETE FROM live_sessions WHERE id = $1", &[&session.header.id])?;
            tracing::warn!(session_id = %session.header.id, replica = %record.replica, "replica went silent: session marked interrupted");
        }
        tx.commit()?;
        Ok(records.len())
    }
}

/// A live session's whole record. A session already written as ended is not brought back to
/// life by a late beat. The snapshot replaces the finals (with their latest speaker labels)
/// unless the writer has already appended a newer final than it holds.
fn upsert_live(tx: &mut impl GenericClient, replica: &str, now: f64, s: &StoredSession) -> Result<(), StoreError> {
    let (h, meta) = (&s.header, meta_json(&s.header)?);
    let segments = serde_json::to_string(&s.segments)?;
    tx.execute(
        "INSERT INTO live_sessions (id, replica, heartbeat, started_at, client, audio_seconds, meta, segments)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE id = $1)
         ON CONFLICT (id) DO UPDATE SET heartbeat = $3, audio_seconds = $6,
           segments = CASE WHEN jsonb_array_length($8::text::jsonb) >= jsonb_array_length(live_sessions.segments::jsonb)
                           THEN $8 ELSE live_sessions.segments END",
        &[&h.id, &replica, &now, &h.started_at, &h.client, &s.audio_seconds, &meta, &segments],
    )?;
    Ok(())
}
