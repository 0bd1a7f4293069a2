-- Scoped staff: a user sees and acts on the clinics of some prefectures and/or of some named
-- clinic groups only. users.scope is JSON {"prefectures": [...], "groups": [ids]}; NULL is the
-- whole fleet.
ALTER TABLE users ADD COLUMN scope TEXT;

CREATE TABLE clinic_groups (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE clinic_group_members (
    group_id  INTEGER NOT NULL REFERENCES clinic_groups(id),
    clinic_id INTEGER NOT NULL REFERENCES clinics(id),
    PRIMARY KEY (group_id, clinic_id)
) WITHOUT ROWID;
CREATE INDEX clinic_group_members_clinic ON clinic_group_members(clinic_id);
