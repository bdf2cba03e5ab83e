DROP TABLE audit_events;
DROP TABLE pairing_challenges;
DROP TABLE api_keys;
DROP TABLE accounts;
