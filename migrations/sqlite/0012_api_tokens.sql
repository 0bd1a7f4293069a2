-- API tokens for other systems (the read API and acknowledge/resolve): named, scoped like a
-- user, shown once; only the SHA-256 of the token is kept. Revoked tokens stay, for the audit
-- log's sake, and never work again.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    token_hash   TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
    scope        TEXT,
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
