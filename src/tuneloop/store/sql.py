"""Every SQL statement of the store: the schema migrations first, then the queries, table by table.

Keeping the SQL in one file means one read shows the schema and everything that touches it.
Times are unix seconds (REAL): windows such as "the last hour" are plain comparisons.

Migrations are append-only: migration N (``MIGRATIONS[N - 1]``) moves a store from schema
version N - 1 to N, and ``PRAGMA user_version`` records the version reached. Never edit a
migration that has shipped; add the next one.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: model versions and their stage history, request log, feedback, API keys.
    (
        """
        CREATE TABLE versions (
            id            TEXT PRIMARY KEY,              -- '<project>:v<number>'
            project       TEXT NOT NULL,
            number        INTEGER NOT NULL,
            run_path      TEXT NOT NULL UNIQUE,          -- absolute run folder
            artifact_path TEXT NOT NULL,                 -- its adapter/ or model/
            parent_id     TEXT REFERENCES versions(id),
            dataset_hash  TEXT,                          -- data.json's dataset_hash
            config_hash   TEXT NOT NULL,
            metrics       TEXT,                          -- metrics.json (JSON); NULL before `tuneloop eval`
            stage         TEXT NOT NULL CHECK (stage IN ('candidate', 'production', 'archived')),
            created_at    REAL NOT NULL,
            UNIQUE (project, number)
        )
        """,
        # At most one production version per project, whatever the code does.
        "CREATE UNIQUE INDEX versions_one_production ON versions(project) WHERE stage = 'production'",
        """
        CREATE TABLE stage_events (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            version_id TEXT NOT NULL REFERENCES versions(id),
            action     TEXT NOT NULL CHECK (action IN ('register', 'promote', 'rollback', 'archive')),
            from_stage TEXT,
            to_stage   TEXT NOT NULL,
            reason     TEXT NOT NULL,
            at         REAL NOT NULL
        )
        """,
        "CREATE INDEX stage_events_version ON stage_events(version_id)",
        """
        CREATE TABLE requests (
            id                TEXT PRIMARY KEY,             -- 'req_<hex>': handed to the client for feedback
            project           TEXT,
            version_id        TEXT REFERENCES versions(id), -- NULL: answered by the base model
            model             TEXT NOT NULL,                -- what the client asked for
            prompt            TEXT NOT NULL,
            response          TEXT NOT NULL,
            latency_ms        REAL NOT NULL,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            api_key           TEXT,                         -- name of the key that sent it
            created_at        REAL NOT NULL
        )
        """,
        "CREATE INDEX requests_time ON requests(created_at)",
        "CREATE INDEX requests_project_time ON requests(project, created_at)",
        "CREATE INDEX requests_version_time ON requests(version_id, created_at)",
        """
        CREATE TABLE feedback (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id  TEXT NOT NULL REFERENCES requests(id), -- preference: the chosen answer
            kind        TEXT NOT NULL CHECK (kind IN ('rating', 'preference', 'correction')),
            rating      INTEGER CHECK (rating IN (-1, 1)),
            rejected_id TEXT REFERENCES requests(id),
            correction  TEXT,
            comment     TEXT,
            created_at  REAL NOT NULL,
            CHECK ((kind = 'rating') = (rating IS NOT NULL)),
            CHECK ((kind = 'preference') = (rejected_id IS NOT NULL)),
            CHECK ((kind = 'correction') = (correction IS NOT NULL))
        )
        """,
        "CREATE INDEX feedback_request ON feedback(request_id, kind)",
        "CREATE INDEX feedback_time ON feedback(kind, created_at)",
        """
        CREATE TABLE api_keys (
            name       TEXT PRIMARY KEY,
            key_id     TEXT NOT NULL UNIQUE,  -- public part of the key: finds the row to check
            kdf        TEXT NOT NULL,         -- e.g. 'scrypt:n=16384,r=8,p=1'
            salt       BLOB NOT NULL,
            hash       BLOB NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        )
        """,
    ),
    # 2: alignment rounds (`tuneloop align`): the feedback each round used, its scores and the decision.
    (
        """
        CREATE TABLE align_rounds (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            project          TEXT NOT NULL,
            production_id    TEXT NOT NULL REFERENCES versions(id), -- the version the round started from
            candidate_id     TEXT NOT NULL REFERENCES versions(id),
            objective        TEXT NOT NULL,                          -- dpo or kto
            feedback_ids     TEXT NOT NULL,                          -- JSON list of the feedback rows used
            feedback_through INTEGER NOT NULL,                       -- the newest feedback id the round read
            scores           TEXT NOT NULL,                          -- JSON: the gate's checks, win rate
            promoted         INTEGER NOT NULL CHECK (promoted IN (0, 1)),
            reason           TEXT NOT NULL,
            created_at       REAL NOT NULL
        )
        """,
        "CREATE INDEX align_rounds_project ON align_rounds(project, id)",
    ),
    # 3: a 'refuse' stage event: the gate's trust limits kept a candidate from production (it stays a candidate).
    # SQLite cannot change a CHECK constraint in place: the table is rebuilt with its rows.
    (
        """
        CREATE TABLE stage_events_new (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            version_id TEXT NOT NULL REFERENCES versions(id),
            action     TEXT NOT NULL CHECK (action IN ('register', 'promote', 'rollback', 'archive', 'refuse')),
            from_stage TEXT,
            to_stage   TEXT NOT NULL,
            reason     TEXT NOT NULL,
            at         REAL NOT NULL
        )
        """,
        "INSERT INTO stage_events_new (id, version_id, action, from_stage, to_stage, reason, at) "
        "SELECT id, version_id, action, from_stage, to_stage, reason, at FROM stage_events",
        "DROP TABLE stage_events",
        "ALTER TABLE stage_events_new RENAME TO stage_events",
        "CREATE INDEX stage_events_version ON stage_events(version_id)",
    ),
)

# --- versions -------------------------------------------------------------------------------

INSERT_VERSION = """
    INSERT INTO versions (id, project, number, run_path, artifact_path, parent_id, dataset_hash,
                          config_hash, metrics, stage, created_at)
    VALUES (:id, :project, :number, :run_path, :artifact_path, :parent_id, :dataset_hash,
            :config_hash, :metrics, :stage, :created_at)
"""
NEXT_VERSION_NUMBER = "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE project = ?"
VERSION_BY_ID = "SELECT * FROM versions WHERE id = ?"
VERSION_BY_RUN_PATH = "SELECT * FROM versions WHERE run_path = ?"
PRODUCTION_VERSION = "SELECT * FROM versions WHERE project = ? AND stage = 'production'"
LATEST_CANDIDATE = "SELECT * FROM versions WHERE project = ? AND stage = 'candidate' ORDER BY number DESC LIMIT 1"
PROJECT_EXISTS = "SELECT 1 FROM versions WHERE project = ? LIMIT 1"
LIST_VERSIONS = "SELECT * FROM versions WHERE (:project IS NULL OR project = :project) ORDER BY project, number"
SET_STAGE = "UPDATE versions SET stage = ? WHERE id = ?"
LINEAGE = """
    WITH RECURSIVE chain(id, depth) AS (
        SELECT ?, 0
        UNION ALL
        SELECT v.parent_id, c.depth + 1 FROM chain c JOIN versions v ON v.id = c.id WHERE v.parent_id IS NOT NULL
    )
    SELECT v.* FROM chain c JOIN versions v ON v.id = c.id ORDER BY c.depth
"""

# --- stage events ---------------------------------------------------------------------------

INSERT_STAGE_EVENT = """
    INSERT INTO stage_events (version_id, action, from_stage, to_stage, reason, at)
    VALUES (?, ?, ?, ?, ?, ?)
"""
VERSION_EVENTS = "SELECT * FROM stage_events WHERE version_id = ? ORDER BY id"
PROJECT_EVENTS = """
    SELECT e.* FROM stage_events e JOIN versions v ON v.id = e.version_id
    WHERE v.project = ? ORDER BY e.id
"""
PRODUCTION_EVENTS = """
    SELECT e.version_id, e.action FROM stage_events e JOIN versions v ON v.id = e.version_id
    WHERE v.project = ? AND e.to_stage = 'production' ORDER BY e.id
"""

# --- requests -------------------------------------------------------------------------------

INSERT_REQUEST = """
    INSERT INTO requests (id, project, version_id, model, prompt, response, latency_ms,
                          prompt_tokens, completion_tokens, api_key, created_at)
    VALUES (:id, :project, :version_id, :model, :prompt, :response, :latency_ms,
            :prompt_tokens, :completion_tokens, :api_key, :created_at)
"""
REQUEST_BY_ID = "SELECT * FROM requests WHERE id = ?"
RECENT_REQUESTS = """
    SELECT * FROM requests
    WHERE (:project IS NULL OR project = :project)
      AND (:version_id IS NULL OR version_id = :version_id)
      AND (:since IS NULL OR created_at >= :since)
    ORDER BY created_at DESC, rowid DESC
    LIMIT :limit
"""

# --- feedback -------------------------------------------------------------------------------

INSERT_FEEDBACK = """
    INSERT INTO feedback (request_id, kind, rating, rejected_id, correction, comment, created_at)
    VALUES (:request_id, :kind, :rating, :rejected_id, :correction, :comment, :created_at)
"""
# Per (project, version): requests served in the window and how their latest rating went.
# A user who changes their vote changes the count; the earlier vote stays in the table.
RATING_COUNTS = """
    WITH latest AS (
        SELECT request_id, rating FROM feedback
        WHERE id IN (SELECT MAX(id) FROM feedback WHERE kind = 'rating' GROUP BY request_id)
    )
    SELECT r.project, r.version_id, COUNT(*) AS requests,
           COALESCE(SUM(l.rating = 1), 0) AS up, COALESCE(SUM(l.rating = -1), 0) AS down
    FROM requests r LEFT JOIN latest l ON l.request_id = r.id
    WHERE (:project IS NULL OR r.project = :project)
      AND (:since IS NULL OR r.created_at >= :since)
      AND (:until IS NULL OR r.created_at < :until)
    GROUP BY r.project, r.version_id
    ORDER BY r.project, r.version_id
"""
CORRECTIONS = """
    SELECT f.id, f.request_id, r.project, r.version_id, r.prompt, r.response, f.correction, f.created_at
    FROM feedback f JOIN requests r ON r.id = f.request_id
    WHERE f.kind = 'correction'
      AND (:project IS NULL OR r.project = :project)
      AND (:since IS NULL OR f.created_at >= :since)
    ORDER BY f.id
"""
PREFERENCES = """
    SELECT f.id, f.request_id AS chosen_id, f.rejected_id, c.project, c.prompt,
           c.response AS chosen, j.response AS rejected,
           c.version_id AS chosen_version, j.version_id AS rejected_version, f.created_at
    FROM feedback f JOIN requests c ON c.id = f.request_id JOIN requests j ON j.id = f.rejected_id
    WHERE f.kind = 'preference'
      AND (:project IS NULL OR c.project = :project)
      AND (:since IS NULL OR f.created_at >= :since)
    ORDER BY f.id
"""

# --- feedback exported as data files (store/feedback_export.py) ------------------------------
# One project's feedback, or one version's (:version_id): a rating or correction belongs to the
# version that gave the answer, a preference to both versions compared. Oldest first.

EXPORT_RATINGS = """
    SELECT f.id, f.rating, f.created_at, r.id AS request_id, r.version_id, r.prompt, r.response,
           r.created_at AS requested_at
    FROM feedback f JOIN requests r ON r.id = f.request_id
    WHERE f.id IN (SELECT MAX(id) FROM feedback WHERE kind = 'rating' GROUP BY request_id)
      AND r.project = :project AND (:version_id IS NULL OR r.version_id = :version_id)
    ORDER BY f.id
"""
EXPORT_CORRECTIONS = """
    SELECT f.id, f.correction, f.created_at, r.id AS request_id, r.version_id, r.prompt, r.response,
           r.created_at AS requested_at
    FROM feedback f JOIN requests r ON r.id = f.request_id
    WHERE f.kind = 'correction'
      AND r.project = :project AND (:version_id IS NULL OR r.version_id = :version_id)
    ORDER BY f.id
"""
EXPORT_PREFERENCES = """
    SELECT f.id, f.created_at, c.prompt,
           c.id AS chosen_request_id, c.version_id AS chosen_version, c.response AS chosen, c.created_at AS chosen_requested_at,
           j.id AS rejected_request_id, j.version_id AS rejected_version, j.response AS rejected, j.created_at AS rejected_requested_at
    FROM feedback f JOIN requests c ON c.id = f.request_id JOIN requests j ON j.id = f.rejected_id
    WHERE f.kind = 'preference'
      AND (c.project = :project OR j.project = :project)
      AND (:version_id IS NULL OR c.version_id = :version_id OR j.version_id = :version_id)
    ORDER BY f.id
"""

# Feedback a round has not used yet: newer than :after (a feedback id) and, with :since, recorded since then.
# A rating counts by the latest vote on its answer; a preference belongs to the project of either answer.
NEW_FEEDBACK_IDS = """
    SELECT f.id FROM feedback f
    JOIN requests r ON r.id = f.request_id LEFT JOIN requests j ON j.id = f.rejected_id
    WHERE f.id > :after AND (:since IS NULL OR f.created_at >= :since)
      AND (r.project = :project OR j.project = :project)
    ORDER BY f.id
"""
MAX_FEEDBACK_ID = "SELECT COALESCE(MAX(id), 0) FROM feedback"

# --- alignment rounds -----------------------------------------------------------------------

INSERT_ALIGN_ROUND = """
    INSERT INTO align_rounds (project, production_id, candidate_id, objective, feedback_ids, feedback_through,
                              scores, promoted, reason, created_at)
    VALUES (:project, :production_id, :candidate_id, :objective, :feedback_ids, :feedback_through,
            :scores, :promoted, :reason, :created_at)
"""
ALIGN_ROUNDS = "SELECT * FROM align_rounds WHERE project = ? ORDER BY id"
LAST_ALIGN_ROUND = "SELECT * FROM align_rounds WHERE project = ? ORDER BY id DESC LIMIT 1"

# --- API keys -------------------------------------------------------------------------------

INSERT_KEY = """
    INSERT INTO api_keys (name, key_id, kdf, salt, hash, created_at)
    VALUES (?, ?, ?, ?, ?, ?)
"""
KEY_BY_KEY_ID = "SELECT * FROM api_keys WHERE key_id = ?"
KEY_BY_NAME = "SELECT * FROM api_keys WHERE name = ?"
REVOKE_KEY = "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"
LIST_KEYS = "SELECT name, key_id, created_at, revoked_at FROM api_keys ORDER BY created_at, name"
