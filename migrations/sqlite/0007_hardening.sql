-- Event ids are unique per terminal, not across the fleet: an id another terminal happens to
-- have used must not make this terminal's event disappear. A replayed report still adds
-- nothing (same terminal, same id). Rows keep their order (rowid), which readers rely on.
CREATE TABLE events_per_terminal (
    terminal_id  TEXT    NOT NULL REFERENCES terminals(id),
    id           TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (terminal_id, id)
);
INSERT INTO events_per_terminal (terminal_id, id, seq, at, received_at, kind, body)
    SELECT terminal_id, id, seq, at, received_at, kind, body FROM events ORDER BY rowid;
DROP TABLE events;
ALTER TABLE events_per_terminal RENAME TO events;
CREATE INDEX events_terminal ON events(terminal_id, at);

-- Which sender holds an outbox row's claim: a sender settles only rows it still holds, and
-- renews its claim while it sends (a slow SMTP server cannot make the claim run out mid-send).
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
