DROP TABLE pairing_guesses;
ALTER TABLE pairing_challenges DROP COLUMN owner_approved_at;
DELETE FROM pairing_challenges;
ALTER TABLE pairing_challenges ADD COLUMN code TEXT NOT NULL DEFAULT '';
