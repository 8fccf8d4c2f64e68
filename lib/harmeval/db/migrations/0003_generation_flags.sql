-- Pathologies of small-model answers (stored as flags; the text is never altered) and the
-- time to first token.
ALTER TABLE generations ADD COLUMN flags text[] NOT NULL DEFAULT '{}';
ALTER TABLE generations ADD COLUMN ttft_seconds double precision;
