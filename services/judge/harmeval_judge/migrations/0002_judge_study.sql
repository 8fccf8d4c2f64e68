-- The study a judge defined through the API belongs to: only a definition for that study
-- replaces it ('' for a judge defined without a study). NULL: a built-in judge (the service's
-- settings and judges file), or one defined before judges had owners, which the first study
-- to redefine it takes.
ALTER TABLE judge.judges ADD COLUMN IF NOT EXISTS study text;
