DROP INDEX signing_keys_one_next_idx;
DROP TABLE revoked_tokens;
ALTER TABLE clients DROP COLUMN tokens_not_before;
