-- Alerts, silences, audit log and the mail outbox (SQLite dialect). Times are Unix ms (UTC).

-- Business hours (JST minutes after midnight), closed weekdays (`sun,sat`), whether public
-- holidays are closed, and the clinic's own support desk (named first in e-mails).
ALTER TABLE clinics ADD COLUMN open_minute INTEGER NOT NULL DEFAULT 540;
ALTER TABLE clinics ADD COLUMN close_minute INTEGER NOT NULL DEFAULT 1080;
ALTER TABLE clinics ADD COLUMN closed_weekdays TEXT NOT NULL DEFAULT 'sun';
ALTER TABLE clinics ADD COLUMN closed_on_holidays INTEGER NOT NULL DEFAULT 1;
ALTER TABLE clinics ADD COLUMN desk_name TEXT;
ALTER TABLE clinics ADD COLUMN desk_phone TEXT;

-- The version each watched app should have: set by staff, else the fleet's most common version
-- (kept by the evaluator). `since` starts the 24 h grace.
CREATE TABLE expected_versions (
    app        TEXT    NOT NULL,
    source     TEXT    NOT NULL CHECK (source IN ('staff', 'fleet')),
    version    TEXT    NOT NULL,
    since      INTEGER NOT NULL,
    set_by     TEXT,
    PRIMARY KEY (app, source)
);

-- One alert per (terminal, rule). `occurrence` is what the current firing is about (an expiry
-- step, an event id); NULL once a staff-resolved condition has cleared.
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    terminal_id  TEXT    NOT NULL REFERENCES terminals(id),
    clinic_id    INTEGER NOT NULL REFERENCES clinics(id),
    rule         TEXT    NOT NULL,
    severity     TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status       TEXT    NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    detail       TEXT    NOT NULL,
    occurrence   TEXT,
    opened_at    INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    clear_since  INTEGER,
    ack_by       TEXT,
    ack_note     TEXT,
    ack_until    INTEGER,
    resolved_at  INTEGER,
    resolved_by  TEXT,
    times_opened INTEGER NOT NULL DEFAULT 1,
    UNIQUE (terminal_id, rule)
);
CREATE INDEX alerts_status ON alerts(status, severity);
CREATE INDEX alerts_clinic ON alerts(clinic_id, status);

-- Who did what to an alert (`evaluator` for the automatic steps).
CREATE TABLE alert_history (
    id        INTEGER PRIMARY KEY,
    alert_id  INTEGER NOT NULL REFERENCES alerts(id),
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    severity  TEXT,
    note      TEXT
);
CREATE INDEX alert_history_alert ON alert_history(alert_id, id);

-- A maintenance window: alerts still open, but no mail goes out for them.
CREATE TABLE silences (
    id          INTEGER PRIMARY KEY,
    terminal_id TEXT    REFERENCES terminals(id),
    clinic_id   INTEGER REFERENCES clinics(id),
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    CHECK ((terminal_id IS NULL) <> (clinic_id IS NULL)),
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_end ON silences(ends_at);

-- Changes to the accounts a clinic may change, and staff actions: recorded, never alerted on.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    terminal_id TEXT,
    clinic_id   INTEGER,
    what        TEXT    NOT NULL,
    event_id    TEXT    UNIQUE
);

-- Mail to send, written in the same transaction as the alert change that caused it.
-- pending -> sending (claimed until claimed_until) -> sent | failed; a claim that expires
-- (the sender died) makes the row due again.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    clinic_id       INTEGER REFERENCES clinics(id),
    alert_id        INTEGER REFERENCES alerts(id),
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    message_id      TEXT    NOT NULL UNIQUE,
    body_text       TEXT    NOT NULL,
    body_html       TEXT    NOT NULL,
    dedupe_key      TEXT    UNIQUE,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
