DROP TABLE app_authorizations;
DROP TABLE account_invites;
DROP TABLE console_sessions;
DROP TABLE recovery_codes;
DROP TABLE account_credentials;
ALTER TABLE accounts DROP COLUMN is_operator;
