-- The change feed behind each instance's in-memory view of clients, API keys, accounts and
-- revocations (src/cache). Every write that can change what the hot path decides notifies
-- channel `tollgate_changes` with "<kind> <key>", whoever makes it (any instance, the CLI,
-- hand-written SQL). PostgreSQL delivers a notification only when its transaction commits,
-- to every session listening at that moment; an instance that loses its listening session
-- forgets its whole view before trusting it again.
CREATE FUNCTION tollgate_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tollgate_changes', TG_ARGV[0] || ' ' || (to_jsonb(OLD) ->> TG_ARGV[1]));
    ELSE
        PERFORM pg_notify('tollgate_changes', TG_ARGV[0] || ' ' || (to_jsonb(NEW) ->> TG_ARGV[1]));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER clients_feed AFTER INSERT OR UPDATE OR DELETE ON clients
FOR EACH ROW EXECUTE FUNCTION tollgate_feed('client', 'id');
-- Not on `last_used_at`: every key's use would otherwise be a change.
CREATE TRIGGER api_keys_feed
AFTER INSERT OR DELETE OR UPDATE OF id, account_id, digest, scopes, expires_at, revoked_at ON api_keys
FOR EACH ROW EXECUTE FUNCTION tollgate_feed('api_key', 'id');
CREATE TRIGGER accounts_feed AFTER INSERT OR UPDATE OR DELETE ON accounts
FOR EACH ROW EXECUTE FUNCTION tollgate_feed('account', 'id');
CREATE TRIGGER revoked_tokens_feed AFTER INSERT OR DELETE ON revoked_tokens
FOR EACH ROW EXECUTE FUNCTION tollgate_feed('revocation', 'jti');
