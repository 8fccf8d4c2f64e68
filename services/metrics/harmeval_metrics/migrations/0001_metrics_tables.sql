-- The metrics service owns studies: which prompts, small models (a served model under one
-- decoding configuration), judges and reference answers each compares. Prompts and answers
-- are the generator's (generator.prompts_v1, generator.answers_v1), labels the judge
-- service's (judge.labels_v1): ids only here, no foreign keys across owners.

-- A database from before the split: the tables move here with their rows.
DO $$
BEGIN
    IF to_regclass('public.studies') IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM public.schema_migrations
                       WHERE version = '0005_study_prompt_category') THEN
            RAISE EXCEPTION 'this database predates harmeval''s last shared migration '
                '(0005_study_prompt_category); start the previous release once to upgrade it';
        END IF;
        ALTER TABLE public.study_prompts DROP CONSTRAINT IF EXISTS study_prompts_prompt_id_fkey;
        ALTER TABLE public.study_references
            DROP CONSTRAINT IF EXISTS study_references_prompt_id_fkey,
            DROP CONSTRAINT IF EXISTS study_references_generation_id_fkey;
        ALTER TABLE public.studies SET SCHEMA metrics;
        ALTER TABLE public.study_prompts SET SCHEMA metrics;
        ALTER TABLE public.study_models SET SCHEMA metrics;
        ALTER TABLE public.study_judges SET SCHEMA metrics;
        ALTER TABLE public.study_references SET SCHEMA metrics;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS metrics.studies (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- "run" for studies harmeval generated, "import" for published data sets.
    source      text NOT NULL DEFAULT 'run'
);

CREATE TABLE IF NOT EXISTS metrics.study_prompts (
    study_id    bigint NOT NULL REFERENCES metrics.studies (id) ON DELETE CASCADE,
    prompt_id   bigint NOT NULL,
    external_id text NOT NULL,
    position    integer NOT NULL,
    -- A prompt's category as this study gives it (another study may file it differently).
    category    text NOT NULL,
    PRIMARY KEY (study_id, prompt_id)
);

CREATE TABLE IF NOT EXISTS metrics.study_models (
    study_id    bigint NOT NULL REFERENCES metrics.studies (id) ON DELETE CASCADE,
    name        text NOT NULL,
    model_name  text NOT NULL,
    params      jsonb NOT NULL,
    params_hash text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (study_id, name)
);

CREATE TABLE IF NOT EXISTS metrics.study_judges (
    study_id    bigint NOT NULL REFERENCES metrics.studies (id) ON DELETE CASCADE,
    judge_name  text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (study_id, judge_name)
);

-- Reference answers (e.g. HarmMetric Eval's slot 0): seen by reference-based metrics only.
CREATE TABLE IF NOT EXISTS metrics.study_references (
    study_id      bigint NOT NULL REFERENCES metrics.studies (id) ON DELETE CASCADE,
    prompt_id     bigint NOT NULL,
    generation_id bigint NOT NULL,
    PRIMARY KEY (study_id, generation_id)
);
