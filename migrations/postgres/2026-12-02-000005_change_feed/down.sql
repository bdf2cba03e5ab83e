DROP TRIGGER revoked_tokens_feed ON revoked_tokens;
DROP TRIGGER accounts_feed ON accounts;
DROP TRIGGER api_keys_feed ON api_keys;
DROP TRIGGER clients_feed ON clients;
DROP FUNCTION tollgate_feed();
