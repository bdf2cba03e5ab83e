-- The change feed behind each instance's in-memory view of clients, API keys, accounts and
-- revocations (src/cache). Every write that can change what the hot path decides adds a row
-- here in the same transaction, whoever makes it (any instance, the CLI, hand-written SQL);
-- instances read the rows after the last one they saw. SQLite has one writer at a time, so
-- `seq` grows in commit order and no reader can skip a row.
CREATE TABLE cache_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    changed_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);
CREATE INDEX cache_changes_changed_at ON cache_changes (changed_at);

CREATE TRIGGER clients_feed_insert AFTER INSERT ON clients
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('client', NEW.id); END;
CREATE TRIGGER clients_feed_update AFTER UPDATE ON clients
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('client', NEW.id); END;
CREATE TRIGGER clients_feed_delete AFTER DELETE ON clients
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('client', OLD.id); END;

-- Not on `last_used_at`: every key's use would otherwise be a change.
CREATE TRIGGER api_keys_feed_insert AFTER INSERT ON api_keys
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('api_key', NEW.id); END;
CREATE TRIGGER api_keys_feed_update
AFTER UPDATE OF id, account_id, digest, scopes, expires_at, revoked_at ON api_keys
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('api_key', NEW.id); END;
CREATE TRIGGER api_keys_feed_delete AFTER DELETE ON api_keys
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('api_key', OLD.id); END;

CREATE TRIGGER accounts_feed_insert AFTER INSERT ON accounts
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('account', NEW.id); END;
CREATE TRIGGER accounts_feed_update AFTER UPDATE ON accounts
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('account', NEW.id); END;
CREATE TRIGGER accounts_feed_delete AFTER DELETE ON accounts
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('account', OLD.id); END;

CREATE TRIGGER revoked_tokens_feed_insert AFTER INSERT ON revoked_tokens
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('revocation', NEW.jti); END;
CREATE TRIGGER revoked_tokens_feed_delete AFTER DELETE ON revoked_tokens
BEGIN INSERT INTO cache_changes (kind, key) VALUES ('revocation', OLD.jti); END;
