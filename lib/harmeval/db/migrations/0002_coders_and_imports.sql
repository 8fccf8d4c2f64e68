-- A coder is what agreement compares; several annotators may label for one coder
-- (e.g. the seed study's 17 student groups form the coder "students").
ALTER TABLE annotators ADD COLUMN coder text;
UPDATE annotators SET coder = name WHERE coder IS NULL;
ALTER TABLE annotators ALTER COLUMN coder SET NOT NULL;

-- "run" for studies harmeval generated, "import" for published data sets.
ALTER TABLE studies ADD COLUMN source text NOT NULL DEFAULT 'run';

-- Reference answers (e.g. HarmMetric Eval's slot 0): seen by reference-based metrics only.
CREATE TABLE study_references (
    study_id      bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    prompt_id     bigint NOT NULL REFERENCES prompts (id),
    generation_id bigint NOT NULL REFERENCES generations (id),
    PRIMARY KEY (study_id, generation_id)
);
