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
