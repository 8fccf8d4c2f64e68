-- The generator owns prompts, the models it serves (and imported answers' models) and every
-- answer. Other services read them only through the views below.

-- A database from before the split kept these tables in "public" (migrations 0001-0005 of the
-- shared folder): they move here with their rows.
DO $$
BEGIN
    IF to_regclass('public.generations') IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM public.schema_migrations
                       WHERE version = '0005_study_prompt_category') THEN
            RAISE EXCEPTION 'this database predates harmeval''s last shared migration '
                '(0005_study_prompt_category); start the previous release once to upgrade it';
        END IF;
        ALTER TABLE public.prompts SET SCHEMA generator;
        ALTER TABLE public.models SET SCHEMA generator;
        ALTER TABLE public.generations SET SCHEMA generator;
    END IF;
END $$;

-- One row per distinct prompt text, shared by every study that uses it.
CREATE TABLE IF NOT EXISTS generator.prompts (
    id          bigserial PRIMARY KEY,
    text_sha256 text NOT NULL UNIQUE,
    text        text NOT NULL CHECK (text <> ''),
    category    text NOT NULL DEFAULT 'uncategorized',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Models as served by a generator (backend and its settings); backend "imported" for answers
-- made elsewhere.
CREATE TABLE IF NOT EXISTS generator.models (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    backend     text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS generator.generations (
    id                bigserial PRIMARY KEY,
    prompt_id         bigint NOT NULL REFERENCES generator.prompts (id),
    model_id          bigint NOT NULL REFERENCES generator.models (id),
    params            jsonb NOT NULL,
    -- Hash of the canonical parameters (seed and prompt template included): the cache key.
    params_hash       text NOT NULL,
    seed              bigint NOT NULL,
    text              text NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    latency_seconds   double precision NOT NULL,
    finish_reason     text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- Pathologies of small-model answers (the text is never altered).
    flags             text[] NOT NULL DEFAULT '{}',
    ttft_seconds      double precision,
    UNIQUE (prompt_id, model_id, params_hash)
);

CREATE INDEX IF NOT EXISTS generations_model_idx ON generator.generations (model_id, params_hash);

-- sha256 of the text, kept by the store with it: labels record the hash of the text they were
-- given on, and readers compare the two on every label (computing it there cost most of a
-- study's label query).
ALTER TABLE generator.generations ADD COLUMN IF NOT EXISTS text_sha256 text;
UPDATE generator.generations SET text_sha256 = encode(sha256(convert_to(text, 'UTF8')), 'hex')
    WHERE text_sha256 IS NULL;
ALTER TABLE generator.generations ALTER COLUMN text_sha256 SET NOT NULL;

-- Published views: the generator's contract with the judge and metrics services, which may
-- read these and nothing else of this schema. Versioned: a change that breaks a reader gets a
-- new view next to the old one.
CREATE VIEW generator.prompts_v1 AS
    SELECT id AS prompt_id, text, category FROM generator.prompts;

CREATE VIEW generator.answers_v1 AS
    SELECT g.id AS generation_id, g.prompt_id, m.name AS model_name, g.params_hash, g.text,
           g.text_sha256, g.flags
    FROM generator.generations g JOIN generator.models m ON m.id = g.model_id;

GRANT USAGE ON SCHEMA generator TO PUBLIC;
GRANT SELECT ON generator.prompts_v1, generator.answers_v1 TO PUBLIC;
