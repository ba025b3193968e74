-- 0004: what a Sieve vacation action says beyond JMAP's VacationResponse
-- (RFC 8621 8): how often a sender is answered (:days, or :seconds in
-- seconds), the :from address and the user's :addresses (JSON list).
-- See SCHEMA.md "Data kinds".
ALTER TABLE vacation ADD COLUMN days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vacation ADD COLUMN seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vacation ADD COLUMN from_address TEXT NOT NULL DEFAULT '';
ALTER TABLE vacation ADD COLUMN addresses TEXT NOT NULL DEFAULT '';
