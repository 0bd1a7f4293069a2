-- Onshi Watch foundation schema (SQLite dialect). Times are Unix milliseconds (UTC).

CREATE TABLE clinics (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Enrollment codes are typed by installers; only their SHA-256 is kept.
CREATE TABLE enrollment_codes (
    code_hash   TEXT    PRIMARY KEY,
    clinic_id   INTEGER NOT NULL REFERENCES clinics(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX enrollment_codes_clinic ON enrollment_codes(clinic_id);

-- One row per enrolled agent. token_hash is the SHA-256 of the 256-bit agent token.
CREATE TABLE terminals (
    id            TEXT    PRIMARY KEY,
    clinic_id     INTEGER NOT NULL REFERENCES clinics(id),
    token_hash    TEXT    NOT NULL UNIQUE,
    hostname      TEXT    NOT NULL,
    agent_version TEXT    NOT NULL,
    os            TEXT    NOT NULL,
    enrolled_at   INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX terminals_clinic ON terminals(clinic_id);
CREATE INDEX terminals_revoked ON terminals(revoked_at) WHERE revoked_at IS NOT NULL;

-- The latest state per terminal (highest seq wins): small, hot columns rewritten by every report.
-- WITHOUT ROWID keeps it one B-tree keyed by terminal, so an upsert touches one page.
CREATE TABLE terminal_state (
    terminal_id     TEXT    PRIMARY KEY REFERENCES terminals(id),
    seq             INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    collected_at    INTEGER NOT NULL,
    uptime_secs     INTEGER NOT NULL,
    hostname        TEXT    NOT NULL,
    last_start      INTEGER NOT NULL,
    last_start_kind TEXT    NOT NULL,
    last_boot       INTEGER NOT NULL,
    cert_not_after  INTEGER,
    problems        INTEGER NOT NULL
) WITHOUT ROWID;

-- The latest snapshot body, without the fields that change on every report (collected_at,
-- uptime, probe latency: those live in terminal_state). Rewritten only when its hash changes.
CREATE TABLE terminal_snapshot (
    terminal_id  TEXT    PRIMARY KEY REFERENCES terminals(id),
    seq          INTEGER NOT NULL,
    hash         INTEGER NOT NULL,
    body         TEXT    NOT NULL
);

-- Change events, stored once per event id (a replayed report adds nothing).
CREATE TABLE events (
    id           TEXT    PRIMARY KEY,
    terminal_id  TEXT    NOT NULL REFERENCES terminals(id),
    seq          INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    body         TEXT    NOT NULL
);
CREATE INDEX events_terminal ON events(terminal_id, at);

-- Every start a terminal reported (restart, fast-startup power-on, resume), kept by triggers
-- on terminal_state so the writer needs no extra statement per report.
CREATE TABLE starts (
    terminal_id  TEXT    NOT NULL REFERENCES terminals(id),
    started_at   INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    PRIMARY KEY (terminal_id, started_at)
) WITHOUT ROWID;

CREATE TRIGGER starts_on_first_state AFTER INSERT ON terminal_state
BEGIN
    INSERT OR IGNORE INTO starts (terminal_id, started_at, kind)
    VALUES (NEW.terminal_id, NEW.last_start, NEW.last_start_kind);
END;

CREATE TRIGGER starts_on_new_start AFTER UPDATE OF last_start ON terminal_state
WHEN NEW.last_start <> OLD.last_start
BEGIN
    INSERT OR IGNORE INTO starts (terminal_id, started_at, kind)
    VALUES (NEW.terminal_id, NEW.last_start, NEW.last_start_kind);
END;
