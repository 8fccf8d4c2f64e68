-- The study a judge defined through the API belongs to: only a definition for that study
-- replaces it ('' for a judge defined without a study). NULL: a built-in judge (the service's
-- settings and judges file), or one defined before judges had owners, which the first study
-- to redefine it takes.
ALTER TABLE judge.judges ADD COLUMN IF NOT EXISTS study text;
-- A judge some replica's settings or judges file made: never replaced through DefineJudge,
-- even by a replica whose own settings (mid-rollout, or after an edit) lack it.
ALTER TABLE judge.judges ADD COLUMN IF NOT EXISTS builtin boolean NOT NULL DEFAULT false;
