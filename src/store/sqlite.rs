//! The embedded store: sessions and their final segments in SQLite (a file in the data
//! directory, WAL mode). A session is recorded when it opens and each final is appended as it
//! is sent, so a crash loses none of them: at the next start, sessions left open are marked
//! `interrupted`. Writes go to a writer thread through a bounded queue and are committed in
//! batches (whatever has queued up, one transaction); reads open their own connection.

use std::path::{Path, PathBuf};

use super::api::TranscriptStore;
use super::config::StoreConfig;
use super::record::{
    header_of, meta_json, reason_from_text, reason_text, ListedSession, StoreError, StoreState, StoredSession,
};
use super::writer::{apply_batch, Write, WriterThread};
use crate::domain::Segment;
use crate::protocol::CloseReason;
use rusqlite::{params, Connection, OptionalExtension};

/// Schema 2 keeps each segment's words (JSON) and language; schema 3 marks sessions still open.
const SCHEMA_VERSION: i64 = 4;

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    // An older build must not mark a newer database as its own: the newer one would then
    // replay migrations already applied and refuse to start.
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found: version, supported: SCHEMA_VERSION });
    }
    if version < 1 {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (
                 id TEXT PRIMARY KEY,
                 started_at REAL NOT NULL,
                 ended_at REAL NOT NULL,
                 close_reason TEXT,
                 client TEXT NOT NULL,
                 audio_seconds REAL NOT NULL,
                 meta TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS sessions_ended ON sessions (ended_at);
             CREATE TABLE IF NOT EXISTS segments (
                 session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                 segment_id INTEGER NOT NULL,
                 part INTEGER NOT NULL,
                 start REAL NOT NULL,
                 end REAL NOT NULL,
                 text TEXT NOT NULL,
                 speaker TEXT,
                 PRIMARY KEY (session_id, segment_id, part)
             );",
        )?;
    }
    if version < 2 {
        conn.execute_batch(
            "ALTER TABLE segments ADD COLUMN words TEXT NOT NULL DEFAULT '[]';
             ALTER TABLE segments ADD COLUMN language TEXT NOT NULL DEFAULT '';",
        )?;
    }
    if version < 3 {
        conn.execute_batch("ALTER TABLE sessions ADD COLUMN live INTEGER NOT NULL DEFAULT 0;")?;
    }
    if version < 4 {
        conn.execute_batch("ALTER TABLE segments ADD COLUMN channel INTEGER;")?;
    }
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    Ok(())
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}

/// Applies a batch in one transaction (one sync to disk for all of them).
fn apply(conn: &mut Connection, batch: &[Write<StoredSession>]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for write in batch {
        match write {
            Write::Begin(s) => write_session(&tx, s, true)?,
            Write::Append { id, segment, audio_seconds } => {
                write_segment(&tx, id, segment)?;
                tx.execute(
                    "UPDATE sessions SET ended_at = max(ended_at, started_at + ?2), audio_seconds = ?3 WHERE id = ?1",
                    params![id, segment.end, audio_seconds],
                )?;
            }
            Write::End(s) => {
                write_session(&tx, s, false)?;
                s.segments.iter().try_for_each(|e| write_segment(&tx, &s.header.id, e))?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn write_session(tx: &rusqlite::Transaction<'_>, s: &StoredSession, live: bool) -> Result<(), StoreError> {
    let (h, meta) = (&s.header, meta_json(&s.header)?);
    // An upsert, not INSERT OR REPLACE: replacing the row would cascade to its segments.
    tx.execute(
        "INSERT INTO sessions (id, started_at, ended_at, close_reason, client, audio_seconds, meta, live)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET ended_at = ?3, close_reason = ?4, audio_seconds = ?6, meta = ?7, live = ?8",
        params![
            h.id,
            h.started_at,
            s.ended_at,
            s.close_reason.and_then(reason_text),
            h.client,
            s.audio_seconds,
            meta,
            live
        ],
    )?;
    Ok(())
}

fn write_segment(tx: &rusqlite::Transaction<'_>, id: &str, e: &Segment) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO segments
         (session_id, segment_id, part, start, end, text, speaker, words, language, channel)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            e.segment_id as i64,
            e.part,
            e.start,
            e.end,
            e.text,
            e.speaker,
            serde_json::to_string(&e.words)?,
            e.language,
            e.channel
        ],
    )?;
    Ok(())
}

/// Sessions a previous process left open (it was killed, or the machine stopped) become
/// `interrupted`, with the finals they had.
fn interrupt_leftovers(conn: &Connection) -> Result<usize, StoreError> {
    let reason = reason_text(CloseReason::Interrupted);
    Ok(conn.execute("UPDATE sessions SET live = 0, close_reason = ?1 WHERE live = 1", params![reason])?)
}

/// Most writes one transaction takes: a burst of finals from many sessions commits together.
const BATCH: usize = 256;

fn run_writer(mut conn: Connection, queue: std::sync::mpsc::Receiver<Write<StoredSession>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        // SQLite has no connection to lose: every failure is the write's own.
        let _ = apply_batch(&batch, |writes| apply(&mut conn, writes), |_| true);
    }
}

pub struct SqliteStore {
    path: PathBuf,
    writer: WriterThread<Write<StoredSession>>,
}

impl SqliteStore {
    /// Opens (creating and migrating) `speech.db` in the data directory and starts the writer.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StoreError::Dir(config.data_dir.clone(), e))?;
        let path = config.data_dir.join("speech.db");
        let conn = open(&path)?;
        migrate(&conn)?;
        let interrupted = interrupt_leftovers(&conn)?;
        if interrupted > 0 {
            tracing::warn!(sessions = interrupted, "sessions left open by the previous run are marked interrupted");
        }
        let writer = WriterThread::spawn(QUEUE, move |queue| run_writer(conn, queue));
        Ok(Self { path, writer })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(&open(&self.path)?)
    }
}

/// Writes waiting for the writer: finals of many sessions at once, each a few hundred bytes.
const QUEUE: usize = 8192;

const SESSION_COLUMNS: &str = "id, client, meta, started_at, ended_at, close_reason, audio_seconds";

/// A session row's columns, its header not yet read from them (rusqlite's row mapping cannot
/// fail with our error).
struct SessionRow {
    id: String,
    client: String,
    meta: String,
    started_at: f64,
    ended_at: f64,
    reason: Option<String>,
    audio_seconds: f64,
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        client: r.get(1)?,
        meta: r.get(2)?,
        started_at: r.get(3)?,
        ended_at: r.get(4)?,
        reason: r.get(5)?,
        audio_seconds: r.get(6)?,
    })
}

/// A list row's segment count and its speakers, sorted and joined by newlines.
const SUMMARY_COLUMNS: &str = "(SELECT COUNT(*) FROM segments g WHERE g.session_id = sessions.id),
    (SELECT group_concat(speaker, char(10)) FROM (SELECT DISTINCT speaker FROM segments g
     WHERE g.session_id = sessions.id AND speaker IS NOT NULL ORDER BY speaker))";

type ListedRow = (SessionRow, i64, Option<String>);

fn listed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListedRow> {
    Ok((session_row(r)?, r.get(7)?, r.get(8)?))
}

/// A session row with its header read.
fn with_meta(row: SessionRow) -> Result<StoredSession, StoreError> {
    Ok(StoredSession {
        header: header_of(row.id, row.client, &row.meta, row.started_at)?,
        ended_at: row.ended_at,
        close_reason: reason_from_text(row.reason),
        audio_seconds: row.audio_seconds,
        segments: Vec::new(),
    })
}

fn segment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Segment, String)> {
    let segment = Segment {
        segment_id: r.get::<_, i64>(0)? as u64,
        part: r.get(1)?,
        start: r.get(2)?,
        end: r.get(3)?,
        text: r.get(4)?,
        speaker: r.get(5)?,
        words: Vec::new(),
        language: r.get(7)?,
        channel: r.get(8)?,
    };
    Ok((segment, r.get(6)?))
}

fn load_session(conn: &Connection, id: &str) -> Result<Option<StoredSession>, StoreError> {
    let query = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
    let Some(row) = conn.query_row(&query, [id], session_row).optional()? else { return Ok(None) };
    let mut session = with_meta(row)?;
    let mut stmt = conn.prepare(
        "SELECT segment_id, part, start, end, text, speaker, words, language, channel
         FROM segments WHERE session_id = ?1 ORDER BY start, segment_id, part",
    )?;
    for row in stmt.query_map([id], segment_row)? {
        let (mut segment, words) = row?;
        segment.words = serde_json::from_str(&words)?;
        session.segments.push(segment);
    }
    Ok(Some(session))
}

impl TranscriptStore for SqliteStore {
    fn begin(&self, session: StoredSession) {
        self.writer.send(Write::Begin(session));
    }

    fn append(&self, id: &str, segment: &Segment, audio_seconds: f64) {
        self.writer.send(Write::Append { id: id.to_owned(), segment: segment.clone(), audio_seconds });
    }

    fn save(&self, session: StoredSession) {
        self.writer.send(Write::End(session));
    }

    fn close(&self) {
        self.writer.close();
    }

    fn get(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        self.read(|conn| load_session(conn, id))
    }

    fn recent(&self, limit: usize, before: Option<f64>) -> Result<Vec<ListedSession>, StoreError> {
        self.read(|conn| {
            let query = format!(
                "SELECT {SESSION_COLUMNS}, {SUMMARY_COLUMNS} FROM sessions
                 WHERE live = 0 AND ended_at < ?2 ORDER BY ended_at DESC LIMIT ?1"
            );
            let mut stmt = conn.prepare(&query)?;
            let rows = stmt.query_map(params![limit as i64, before.unwrap_or(f64::MAX)], listed_row)?;
            rows.map(|row| {
                let (session, segments, speakers) = row?;
                let speakers = speakers.map(|s| s.split('\n').map(str::to_owned).collect()).unwrap_or_default();
                Ok(ListedSession { session: with_meta(session)?, segments: segments as u64, speakers })
            })
            .collect()
        })
    }

    fn delete_ended_before(&self, unix_seconds: f64) -> Result<usize, StoreError> {
        self.read(|conn| Ok(conn.execute("DELETE FROM sessions WHERE live = 0 AND ended_at < ?1", [unix_seconds])?))
    }

    fn state(&self) -> StoreState {
        match self.read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)) {
            Ok(_) => StoreState::Up,
            Err(_) => StoreState::Down,
        }
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Word;

    fn stored(id: &str, ended_at: f64) -> StoredSession {
        let words = vec![Word { word: "hi".into(), start: 0.5, end: 2.0, probability: 0.9 }];
        StoredSession {
            header: crate::protocol::SessionHeader {
                id: id.into(),
                client: "127.0.0.1:1".into(),
                sample_rate: 16_000,
                encoding: crate::audio::pcm::Encoding::PcmS16le,
                language: Some("en".into()),
                diarize: true,
                started_at: ended_at - 5.0,
            },
            ended_at,
            close_reason: Some(CloseReason::ClientClose),
            audio_seconds: 5.0,
            segments: vec![Segment {
                segment_id: 0,
                part: 0,
                start: 0.5,
                end: 2.0,
                text: "hi".into(),
                words,
                language: "en".into(),
                speaker: Some("S1".into()),
                channel: Some(1),
            }],
        }
    }

    fn wait_for(store: &SqliteStore, id: &str) -> StoredSession {
        for _ in 0..100 {
            if let Some(s) = store.get(id).unwrap() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{id} was never written");
    }

    fn config_at(data_dir: std::path::PathBuf, retention_days: u32) -> StoreConfig {
        StoreConfig { enabled: true, data_dir, retention_days, ..StoreConfig::default() }
    }

    #[test]
    fn sessions_round_trip_and_retention_removes_old_ones() {
        let dir = std::env::temp_dir().join(format!("speech-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&config_at(dir.clone(), 1)).unwrap();
        store.save(stored("old", 1_000.0));
        store.save(stored("new", 2_000_000_000.0));
        store.close();
        let back = wait_for(&store, "new");
        assert_eq!(back, stored("new", 2_000_000_000.0), "every field, words included, comes back");
        wait_for(&store, "old");
        let listed = store.recent(10, None).unwrap();
        assert_eq!(listed[0].session.header.id, "new", "newest first");
        assert_eq!((listed[0].segments, listed[0].speakers.clone()), (1, vec!["S1".to_owned()]), "summarised");
        assert_eq!(store.delete_ended_before(1_000_000.0).unwrap(), 1);
        assert!(store.get("old").unwrap().is_none());
        assert_eq!(store.state(), StoreState::Up);
        // Opening again migrates nothing and keeps the data.
        let again = SqliteStore::open(&config_at(dir.clone(), 1)).unwrap();
        assert!(again.get("new").unwrap().is_some());
        again.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_schema_1_database_is_migrated_and_keeps_its_sessions() {
        let dir = std::env::temp_dir().join(format!("speech-store-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("speech.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, started_at REAL NOT NULL, ended_at REAL NOT NULL,
                 close_reason TEXT, client TEXT NOT NULL, audio_seconds REAL NOT NULL, meta TEXT NOT NULL);
             CREATE TABLE segments (session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                 segment_id INTEGER NOT NULL, part INTEGER NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
                 text TEXT NOT NULL, speaker TEXT, PRIMARY KEY (session_id, segment_id, part));
             INSERT INTO sessions VALUES ('old', 1.0, 6.0, 'shutdown', '127.0.0.1:1', 5.0,
                 '{\"id\":\"old\",\"state\":\"ended\",\"sample_rate\":16000,\"encoding\":\"pcm_s16le\",
                   \"language\":\"en\",\"diarize\":true,\"transcript\":[]}');
             INSERT INTO segments VALUES ('old', 0, 0, 0.5, 2.0, 'hi', 'S1');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&config_at(dir.clone(), 0)).unwrap();
        let old = store.get("old").unwrap().expect("kept through the migration");
        assert_eq!((old.close_reason, old.header.sample_rate), (Some(CloseReason::Shutdown), 16_000));
        let segment = &old.segments[0];
        assert_eq!((segment.text.as_str(), segment.words.len(), segment.speaker.as_deref()), ("hi", 0, Some("S1")));
        store.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_database_from_a_newer_release_is_refused_untouched() {
        let dir = std::env::temp_dir().join(format!("speech-store-newer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("speech.db")).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1)).unwrap();
        drop(conn);
        let refused = SqliteStore::open(&config_at(dir.clone(), 0)).err().expect("a newer schema is refused");
        assert!(matches!(refused, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1), "{refused}");
        let conn = Connection::open(dir.join("speech.db")).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION + 1, "the marker is left as found");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
