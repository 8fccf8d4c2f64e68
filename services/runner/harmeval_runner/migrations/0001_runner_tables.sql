-- The runner service owns study runs: what each run does (a snapshot of its study), where it
-- stands, and one result row per finished chunk of work. The job queue itself (pgqueuer's
-- tables, in this schema too) is installed and upgraded by pgqueuer at start-up.

CREATE TABLE IF NOT EXISTS runner.runs (
    id           uuid PRIMARY KEY,
    -- A study has one run: starting it again resumes this row (attempt + 1 once it is done).
    study        text NOT NULL UNIQUE CHECK (study <> ''),
    state        text NOT NULL CHECK (state IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    attempt      integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- [{"name", "model", "params": {...}}] and ["judge", ...], as the attempt started.
    models       jsonb NOT NULL,
    judges       jsonb NOT NULL,
    rejudge_unscorable boolean NOT NULL DEFAULT false,
    n_prompts    integer NOT NULL CHECK (n_prompts >= 1),
    chunk_size   integer NOT NULL CHECK (chunk_size >= 1),
    error        text NOT NULL DEFAULT '',
    last_errors  jsonb NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);

CREATE INDEX IF NOT EXISTS runs_updated_idx ON runner.runs (updated_at DESC, id);

-- The run's prompts in study order, as the metrics service registered them.
CREATE TABLE IF NOT EXISTS runner.run_prompts (
    run_id       uuid NOT NULL REFERENCES runner.runs (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    prompt_id    bigint NOT NULL,
    external_id  text NOT NULL,
    text         text NOT NULL,
    category     text NOT NULL,
    PRIMARY KEY (run_id, position)
);

-- One row per (attempt, stage, model or judge, chunk) once that chunk is finished. A chunk done
-- twice (at-least-once delivery) overwrites its row, so progress counts every item once.
CREATE TABLE IF NOT EXISTS runner.chunk_results (
    run_id            uuid NOT NULL REFERENCES runner.runs (id) ON DELETE CASCADE,
    attempt           integer NOT NULL,
    stage             text NOT NULL CHECK (stage IN ('generate', 'judge')),
    subject           text NOT NULL,
    first             integer NOT NULL,
    done              integer NOT NULL DEFAULT 0,
    cached            integer NOT NULL DEFAULT 0,
    unscorable        integer NOT NULL DEFAULT 0,
    failed            integer NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_usd          double precision NOT NULL DEFAULT 0,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, attempt, stage, subject, first)
);
