-- What a verdict cost and how it came about: tokens, price, order sensitivity (listwise judges
-- shown several answer orders) and protocol details (rubric fields, permutations, panel votes).
ALTER TABLE judgments ADD COLUMN prompt_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE judgments ADD COLUMN completion_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE judgments ADD COLUMN cost_usd double precision NOT NULL DEFAULT 0;
ALTER TABLE judgments ADD COLUMN order_sensitive boolean NOT NULL DEFAULT false;
ALTER TABLE judgments ADD COLUMN details jsonb NOT NULL DEFAULT '{}';
