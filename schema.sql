-- chatd schema, version 1. Applied on first start; later versions append
-- migrations (schema_v2.sql and on, listed in chatd.go) and never edit
-- this file's statements.

-- Accounts. name_key is the lower-cased name: names are unique
-- case-insensitively but keep the spelling their owner chose.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL UNIQUE,
    password_hash TEXT,                       -- NULL for bots
    role          TEXT    NOT NULL CHECK (role IN ('user', 'admin', 'bot')),
    banned        INTEGER NOT NULL DEFAULT 0,
    status        TEXT    NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'offline')),
    created_at    INTEGER NOT NULL,           -- unix milliseconds
    last_seen     INTEGER
);

-- Server-side session records. The cookie carries the session id; only its
-- hash is stored, so a database dump cannot be replayed as a cookie.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    user_agent TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Bearer tokens for bots, stored only as a hash.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used  INTEGER
);
CREATE INDEX tokens_user ON tokens (user_id);

-- Secrets the server generates on first start (cookie keys).
CREATE TABLE secrets (
    name       TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE rooms (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    topic      TEXT    NOT NULL DEFAULT '',
    kind       TEXT    NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    created_by INTEGER REFERENCES users (id),
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
-- A deleted room keeps its row (old events refer to it) but frees its name.
CREATE UNIQUE INDEX rooms_name ON rooms (name) WHERE deleted_at IS NULL;

-- Membership intervals. A user is a member of a room for the events with
-- since_event <= id <= until_event (until_event NULL: still a member). The
-- intervals let a replay from any cursor decide what the user could see at
-- the time of each event.
CREATE TABLE memberships (
    room_id     INTEGER NOT NULL REFERENCES rooms (id),
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    since_event INTEGER NOT NULL,
    until_event INTEGER
);
CREATE UNIQUE INDEX memberships_current ON memberships (room_id, user_id) WHERE until_event IS NULL;
CREATE INDEX memberships_user ON memberships (user_id, room_id);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    room_id    INTEGER NOT NULL REFERENCES rooms (id),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text       TEXT    NOT NULL,
    html       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    deleted_at INTEGER
);
CREATE INDEX messages_room ON messages (room_id, id);
CREATE INDEX messages_user ON messages (user_id, id);

-- The durable event log. data is the event's JSON without its id and ts,
-- which are spliced in when it is delivered. audience says who may see it:
-- 1 the room's members at the time, 2 the subject and everyone sharing a
-- room with them at the time, 3 every user, 4 the target user only. The
-- target user also sees room and peer events addressed to them (a kick).
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         INTEGER NOT NULL,
    audience   INTEGER NOT NULL CHECK (audience BETWEEN 1 AND 4),
    room_id    INTEGER,
    subject_id INTEGER,
    target_id  INTEGER,
    data       TEXT    NOT NULL
);
CREATE INDEX events_room ON events (room_id, id) WHERE room_id IS NOT NULL;
CREATE INDEX events_target ON events (target_id, id) WHERE target_id IS NOT NULL;
CREATE INDEX events_ts ON events (ts);

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,
    admin_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    admin    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT ''
);

-- Small facts about the log itself (the highest pruned event id).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

INSERT INTO rooms (name, topic, kind, created_at) VALUES ('lobby', 'Everyone is here', 'public', CAST(strftime('%s', 'now') AS INTEGER) * 1000);
