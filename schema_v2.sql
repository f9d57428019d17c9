-- chatd schema, version 2: a log of the changes that end or alter what a
-- credential stands for. Triggers write it, whichever process makes the
-- change (the server, an operator command, the sqlite3 shell), so a running
-- server drops the credentials it had checked within a second, and until
-- then trusts them without asking the database on every request.
CREATE TABLE auth_changes (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL
);

CREATE TRIGGER auth_session_deleted AFTER DELETE ON sessions
BEGIN
    INSERT INTO auth_changes (user_id) VALUES (OLD.user_id);
END;

CREATE TRIGGER auth_session_moved AFTER UPDATE OF id, user_id ON sessions
BEGIN
    INSERT INTO auth_changes (user_id) VALUES (OLD.user_id);
END;

CREATE TRIGGER auth_token_deleted AFTER DELETE ON tokens
BEGIN
    INSERT INTO auth_changes (user_id) VALUES (OLD.user_id);
END;

CREATE TRIGGER auth_token_moved AFTER UPDATE OF hash, user_id ON tokens
BEGIN
    INSERT INTO auth_changes (user_id) VALUES (OLD.user_id);
END;

CREATE TRIGGER auth_user_changed AFTER UPDATE OF name, name_key, role, banned ON users
BEGIN
    INSERT INTO auth_changes (user_id) VALUES (OLD.id);
END;

CREATE TRIGGER auth_user_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO auth_changes (user_id) VALUES (OLD.id);
END;
