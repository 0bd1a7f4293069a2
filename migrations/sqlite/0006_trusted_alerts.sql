-- Alerts a clinic can trust: calendars that fit real clinics, protected account names per
-- clinic and terminal with a baseline per terminal, severity, handling and liveness as separate
-- columns of the overview, silences with scopes and recurrence, rule settings per clinic, and
-- the clinic's own certificate backup password (sealed).

-- Business hours: windows per weekday (`mon=09:00-12:30,15:00-18:30;...`; a day left out is
-- closed), 年末年始 (12/29–1/3) and お盆 (8/13–8/16), dated closures (臨時休診).
ALTER TABLE clinics ADD COLUMN week_hours TEXT NOT NULL DEFAULT '';
ALTER TABLE clinics ADD COLUMN closed_new_year INTEGER NOT NULL DEFAULT 1;
ALTER TABLE clinics ADD COLUMN closed_obon INTEGER NOT NULL DEFAULT 0;
UPDATE clinics SET week_hours = rtrim(
    (SELECT group_concat(d || '=' || printf('%02d:%02d-%02d:%02d',
            open_minute / 60, open_minute % 60, close_minute / 60, close_minute % 60), ';')
     FROM (SELECT 'mon' AS d UNION ALL SELECT 'tue' UNION ALL SELECT 'wed' UNION ALL
           SELECT 'thu' UNION ALL SELECT 'fri' UNION ALL SELECT 'sat' UNION ALL SELECT 'sun')
     WHERE instr(',' || replace(closed_weekdays, ' ', '') || ',', ',' || d || ',') = 0),
    ';');
UPDATE clinics SET week_hours = '' WHERE week_hours IS NULL;
ALTER TABLE clinics DROP COLUMN open_minute;
ALTER TABLE clinics DROP COLUMN close_minute;
ALTER TABLE clinics DROP COLUMN closed_weekdays;

CREATE TABLE clinic_closures (
    id          INTEGER PRIMARY KEY,
    clinic_id   INTEGER NOT NULL REFERENCES clinics(id),
    from_date   TEXT    NOT NULL,          -- YYYY-MM-DD (JST), inclusive
    to_date     TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    CHECK (to_date >= from_date)
);
CREATE INDEX clinic_closures_clinic ON clinic_closures(clinic_id, to_date);
-- The evaluator reads the closures that can still matter (ending in the last few days or later).
CREATE INDEX clinic_closures_to ON clinic_closures(to_date);

-- Bumped by every change of a clinic's settings, closures or account names: the evaluator
-- rebuilds its clinics only when the sum of these (or the number of clinics) changed.
ALTER TABLE clinics ADD COLUMN settings_version INTEGER NOT NULL DEFAULT 0;

-- Rule settings of a clinic over the server's (NULL: the server's).
ALTER TABLE clinics ADD COLUMN restart_warning_hours INTEGER;
ALTER TABLE clinics ADD COLUMN restart_critical_hours INTEGER;
ALTER TABLE clinics ADD COLUMN offline_after_intervals INTEGER;
ALTER TABLE clinics ADD COLUMN offline_critical_days INTEGER;
-- PendingFileRenameOperations alone counts as a pending reboot at this clinic.
ALTER TABLE clinics ADD COLUMN file_rename_counts INTEGER NOT NULL DEFAULT 0;

-- The names of the accounts an agent watches, by role, per clinic or per terminal (the
-- terminal's wins; a role named nowhere takes the server's [policy]).
CREATE TABLE account_names (
    id          INTEGER PRIMARY KEY,
    clinic_id   INTEGER REFERENCES clinics(id),
    terminal_id TEXT    REFERENCES terminals(id),
    role        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK ((clinic_id IS NULL) <> (terminal_id IS NULL))
);
CREATE UNIQUE INDEX account_names_clinic ON account_names(clinic_id, role)
    WHERE clinic_id IS NOT NULL;
CREATE UNIQUE INDEX account_names_terminal ON account_names(terminal_id, role)
    WHERE terminal_id IS NOT NULL;

-- The accounts a terminal had when the baseline was taken: `baseline_key` is the key of the
-- names it was taken for (`accounts_key` of the protected roles), `baseline_at` the collection
-- time of the snapshot it was taken from (account changes before it are history),
-- `baseline_missing` the protected roles not found under their names then. Staff confirm the
-- names on the terminal page: `accounts_confirmed_key` is the key of the names they confirmed
-- (NULL: the names of the next baseline).
ALTER TABLE terminals ADD COLUMN baseline_key INTEGER;
ALTER TABLE terminals ADD COLUMN baseline_at INTEGER;
ALTER TABLE terminals ADD COLUMN baseline_missing TEXT NOT NULL DEFAULT '';
ALTER TABLE terminals ADD COLUMN accounts_confirmed_at INTEGER;
ALTER TABLE terminals ADD COLUMN accounts_confirmed_by TEXT;
ALTER TABLE terminals ADD COLUMN accounts_confirmed_key INTEGER;
-- Bumped by every write of the columns above: the evaluator keeps each terminal's record
-- between passes and reads it again only when this changed (0: nothing recorded yet).
ALTER TABLE terminals ADD COLUMN accounts_version INTEGER NOT NULL DEFAULT 0;
-- Terminals already watched keep today's behaviour: a baseline from their enrollment (its key
-- is filled in by the first evaluation) and their names count as confirmed.
UPDATE terminals SET
    accounts_version = 1,
    baseline_at = enrolled_at,
    accounts_confirmed_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
    accounts_confirmed_by = 'migration';

-- The overview: the worst open finding, how staff handle it, whether the terminal reports.
DROP INDEX overview_line_state;
DROP INDEX overview_line_clinic;
DROP INDEX overview_line_prefecture;
ALTER TABLE overview_line DROP COLUMN state;
ALTER TABLE overview_line DROP COLUMN state_rank;
ALTER TABLE overview_line ADD COLUMN severity_rank INTEGER NOT NULL DEFAULT 0; -- 0 none .. 3 critical
ALTER TABLE overview_line ADD COLUMN handling TEXT NOT NULL DEFAULT 'none';     -- none, unhandled, in_progress, silenced
ALTER TABLE overview_line ADD COLUMN handling_by TEXT;
ALTER TABLE overview_line ADD COLUMN handling_until INTEGER;
ALTER TABLE overview_line ADD COLUMN handling_note TEXT;
ALTER TABLE overview_line ADD COLUMN liveness TEXT NOT NULL DEFAULT 'receiving'; -- receiving, outside_hours, offline
CREATE INDEX overview_line_severity ON overview_line(severity_rank DESC, open_alerts DESC, host_key);
CREATE INDEX overview_line_clinic ON overview_line(clinic_id, severity_rank);
CREATE INDEX overview_line_prefecture ON overview_line(prefecture, severity_rank);
CREATE INDEX overview_line_liveness ON overview_line(liveness, severity_rank DESC, open_alerts DESC, host_key);
CREATE INDEX overview_line_handling ON overview_line(handling, severity_rank DESC, open_alerts DESC, host_key);

-- Silences: where (one terminal, clinic or prefecture, or the fleet), optionally one rule,
-- between starts_at and ends_at, optionally only in a daily window (JST minutes; from > to
-- crosses midnight) on some weekdays (bit 0 = Monday).
CREATE TABLE silences_scoped (
    id          INTEGER PRIMARY KEY,
    terminal_id TEXT    REFERENCES terminals(id),
    clinic_id   INTEGER REFERENCES clinics(id),
    prefecture  TEXT,
    fleet       INTEGER NOT NULL DEFAULT 0,
    rule        TEXT,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    daily_from  INTEGER,
    daily_to    INTEGER,
    weekdays    INTEGER,
    reason      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    ended_by    TEXT,
    CHECK (ends_at > starts_at),
    CHECK ((terminal_id IS NOT NULL) + (clinic_id IS NOT NULL) + (prefecture IS NOT NULL) + fleet = 1),
    CHECK ((daily_from IS NULL) = (daily_to IS NULL))
);
INSERT INTO silences_scoped (id, terminal_id, clinic_id, starts_at, ends_at, reason, created_by,
                             created_at)
    SELECT id, terminal_id, clinic_id, starts_at, ends_at, reason, created_by, created_at
    FROM silences;
DROP TABLE silences;
ALTER TABLE silences_scoped RENAME TO silences;
CREATE INDEX silences_end ON silences(ends_at);

-- A critical mail held back by a silence: sent once the window is over if the alert is still
-- open and nobody took it.
ALTER TABLE alerts ADD COLUMN mail_held INTEGER NOT NULL DEFAULT 0;

-- The password a clinic chose for its certificate backups instead of 1357, sealed with the
-- server's key (AES-256-GCM); agents of the clinic get it to check their backups.
CREATE TABLE backup_passwords (
    clinic_id  INTEGER PRIMARY KEY REFERENCES clinics(id),
    nonce      BLOB    NOT NULL,
    sealed     BLOB    NOT NULL,
    set_by     TEXT    NOT NULL,
    set_at     INTEGER NOT NULL
);
