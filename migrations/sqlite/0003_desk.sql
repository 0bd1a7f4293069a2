-- The support desk: staff accounts and sessions, clinic details, the per-terminal summary the
-- fleet overview sorts and filters on, and the hours in which each terminal reported.

ALTER TABLE clinics ADD COLUMN code TEXT;           -- 医療機関コード (10 digits), unique when set
ALTER TABLE clinics ADD COLUMN prefecture TEXT;
ALTER TABLE clinics ADD COLUMN phone TEXT;
ALTER TABLE clinics ADD COLUMN notes TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX clinics_code ON clinics(code) WHERE code IS NOT NULL;
CREATE INDEX clinics_name ON clinics(name);
CREATE INDEX clinics_prefecture ON clinics(prefecture);

CREATE TABLE clinic_contacts (
    id         INTEGER PRIMARY KEY,
    clinic_id  INTEGER NOT NULL REFERENCES clinics(id),
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL DEFAULT '',
    email      TEXT,
    phone      TEXT
);
CREATE INDEX clinic_contacts_clinic ON clinic_contacts(clinic_id);

-- Staff of the support desk. password_hash is an argon2id PHC string.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    role                TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash       TEXT    NOT NULL,
    disabled_at         INTEGER,
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);

-- Only the SHA-256 of the session id is stored; the CSRF token is per session.
CREATE TABLE sessions (
    id_hash     TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    csrf        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    address     TEXT    NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

ALTER TABLE audit_log ADD COLUMN user_id INTEGER;
CREATE INDEX audit_log_clinic ON audit_log(clinic_id, id) WHERE clinic_id IS NOT NULL;
CREATE INDEX audit_log_terminal ON audit_log(terminal_id, id) WHERE terminal_id IS NOT NULL;

-- What the overview shows and sorts on, one row per terminal, written by the evaluator only
-- when something in it changes. state: critical, offline, warning, silenced, ok;
-- state_rank orders them worst first.
CREATE TABLE terminal_status (
    terminal_id    TEXT    PRIMARY KEY REFERENCES terminals(id),
    clinic_id      INTEGER NOT NULL REFERENCES clinics(id),
    clinic_name    TEXT    NOT NULL,
    prefecture     TEXT,
    hostname       TEXT    NOT NULL,
    host_key       TEXT    NOT NULL,     -- lower-cased hostname, for prefix search
    state          TEXT    NOT NULL,
    state_rank     INTEGER NOT NULL,
    open_alerts    INTEGER NOT NULL,
    open_rules     INTEGER NOT NULL,     -- bit i: rules::key::ALL[i] has an unresolved alert
    apps_behind    INTEGER NOT NULL,
    backup         TEXT    NOT NULL,     -- ok, missing, stale, unknown
    last_start     INTEGER,
    cert_not_after INTEGER,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX terminal_status_state ON terminal_status(state_rank DESC, open_alerts DESC, host_key);
CREATE INDEX terminal_status_clinic ON terminal_status(clinic_id, state_rank);
CREATE INDEX terminal_status_clinic_name ON terminal_status(clinic_name, host_key);
CREATE INDEX terminal_status_host ON terminal_status(host_key);
CREATE INDEX terminal_status_start ON terminal_status(last_start);
CREATE INDEX terminal_status_cert ON terminal_status(cert_not_after);
CREATE INDEX terminal_status_prefecture ON terminal_status(prefecture, state_rank);

CREATE INDEX alerts_rule ON alerts(rule, status);
-- The alerts page: unresolved alerts, most severe first, newest first.
CREATE INDEX alerts_unresolved ON alerts(
    (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END), opened_at DESC)
    WHERE status IN ('open', 'acknowledged');
CREATE INDEX outbox_clinic ON outbox(clinic_id, id);

-- The hours (Unix ms at the start of the UTC hour) in which a terminal reported: the writer
-- adds a row only when a terminal's hour changes, so this costs one row per terminal per hour.
CREATE TABLE report_hours (
    terminal_id  TEXT    NOT NULL,
    hour         INTEGER NOT NULL,
    PRIMARY KEY (terminal_id, hour)
) WITHOUT ROWID;

-- The overview reads terminal_status now; the per-report problem count (a rule pass on the
-- request path) is gone.
ALTER TABLE terminal_state DROP COLUMN problems;

