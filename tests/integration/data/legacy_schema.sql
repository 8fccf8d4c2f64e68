-- The shared schema of harmeval before each service owned its tables (migrations 0001-0005
-- of lib/harmeval/db/migrations), for the upgrade test.
-- Studies compare small models (a served model under one decoding configuration) on prompts;
-- judges and people (annotators) label the answers.

CREATE TABLE studies (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per distinct prompt text, shared by every study that uses it.
CREATE TABLE prompts (
    id          bigserial PRIMARY KEY,
    text_sha256 text NOT NULL UNIQUE,
    text        text NOT NULL CHECK (text <> ''),
    category    text NOT NULL DEFAULT 'uncategorized',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE study_prompts (
    study_id    bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    prompt_id   bigint NOT NULL REFERENCES prompts (id),
    external_id text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (study_id, prompt_id)
);

-- Models as served by a generator (backend and its settings).
CREATE TABLE models (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    backend     text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A small model as compared in a study: a served model plus decoding parameters.
CREATE TABLE study_models (
    study_id    bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    name        text NOT NULL,
    model_name  text NOT NULL,
    params      jsonb NOT NULL,
    params_hash text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (study_id, name)
);

CREATE TABLE generations (
    id                bigserial PRIMARY KEY,
    prompt_id         bigint NOT NULL REFERENCES prompts (id),
    model_id          bigint NOT NULL REFERENCES models (id),
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
    UNIQUE (prompt_id, model_id, params_hash)
);

-- Whoever labels answers: a person or a judge.
CREATE TABLE annotators (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('human', 'model')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE judges (
    id           bigserial PRIMARY KEY,
    annotator_id bigint NOT NULL UNIQUE REFERENCES annotators (id),
    family       text NOT NULL,
    protocol     text NOT NULL,
    config       jsonb NOT NULL,
    config_hash  text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE study_judges (
    study_id    bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    judge_name  text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (study_id, judge_name)
);

CREATE TABLE judgments (
    id                bigserial PRIMARY KEY,
    generation_id     bigint NOT NULL REFERENCES generations (id),
    annotator_id      bigint NOT NULL REFERENCES annotators (id),
    protocol          text NOT NULL,
    -- Judge configuration the verdict came from; a changed judge does not reuse old verdicts.
    judge_config_hash text NOT NULL DEFAULT '',
    status            text NOT NULL CHECK (status IN ('ok', 'unscorable')),
    harmful           boolean,
    value             double precision,
    rank              integer CHECK (rank >= 0),
    raw_output        text NOT NULL DEFAULT '',
    reason            text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- An unscorable verdict has no harm label: it must never read as "not harmful".
    CHECK ((status = 'ok') = (harmful IS NOT NULL)),
    UNIQUE (generation_id, annotator_id)
);

CREATE INDEX judgments_annotator_idx ON judgments (annotator_id);
CREATE INDEX generations_model_idx ON generations (model_id, params_hash);
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
-- Pathologies of small-model answers (stored as flags; the text is never altered) and the
-- time to first token.
ALTER TABLE generations ADD COLUMN flags text[] NOT NULL DEFAULT '{}';
ALTER TABLE generations ADD COLUMN ttft_seconds double precision;
-- What a verdict cost and how it came about: tokens, price, order sensitivity (listwise judges
-- shown several answer orders) and protocol details (rubric fields, permutations, panel votes).
ALTER TABLE judgments ADD COLUMN prompt_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE judgments ADD COLUMN completion_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE judgments ADD COLUMN cost_usd double precision NOT NULL DEFAULT 0;
ALTER TABLE judgments ADD COLUMN order_sensitive boolean NOT NULL DEFAULT false;
ALTER TABLE judgments ADD COLUMN details jsonb NOT NULL DEFAULT '{}';
-- A prompt's category as each study gives it: prompts are stored once per text, and two
-- studies (or a Generate call) may file the same prompt under different categories.
ALTER TABLE study_prompts ADD COLUMN category text;
UPDATE study_prompts sp SET category = p.category FROM prompts p WHERE p.id = sp.prompt_id;
ALTER TABLE study_prompts ALTER COLUMN category SET NOT NULL;
CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO schema_migrations (version) VALUES ('0001_initial'), ('0002_coders_and_imports'), ('0003_generation_flags'), ('0004_judgment_costs'), ('0005_study_prompt_category');
