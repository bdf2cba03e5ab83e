-- Pairing codes are no longer stored: each is derived from the challenge id under a secret
-- derived from the master key, shown to those who may see it and compared on redemption.
-- Pending challenges (5 minutes long) made before this migration are dropped with their codes.
DELETE FROM pairing_challenges;
ALTER TABLE pairing_challenges DROP COLUMN code;
-- Set when the account owner (a credential that could mint the key) or an operator
-- approves the request: such a challenge may be redeemed even when the account's daily
-- guessing budget is spent.
ALTER TABLE pairing_challenges ADD COLUMN owner_approved_at BIGINT;

-- Code guesses per account per UTC day (`day` = unix seconds / 86400), shared by every
-- instance: each guess takes one atomically before it is evaluated; a right code gives
-- it back.
CREATE TABLE pairing_guesses (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    day BIGINT NOT NULL,
    guesses INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
);
