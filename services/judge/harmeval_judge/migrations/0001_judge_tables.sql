-- The judge service owns whoever labels answers (judges and people: annotators, each reported
-- under a coder), the judges' configurations and every label (judgments). Labels of people
-- live here too: they are the same kind of row as a judge's verdict, compared by the same
-- statistics, and one table keeps "one label per (annotator, answer)" a constraint.

-- A database from before the split: the tables move here with their rows; the foreign key to
-- the generator's answers goes (another service's table), the answer id stays.
DO $$
BEGIN
    IF to_regclass('public.judgments') IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM public.schema_migrations
                       WHERE version = '0005_study_prompt_category') THEN
            RAISE EXCEPTION 'this database predates harmeval''s last shared migration '
                '(0005_study_prompt_category); start the previous release once to upgrade it';
        END IF;
        ALTER TABLE public.judgments DROP CONSTRAINT IF EXISTS judgments_generation_id_fkey;
        ALTER TABLE public.annotators SET SCHEMA judge;
        ALTER TABLE public.judges SET SCHEMA judge;
        ALTER TABLE public.judgments SET SCHEMA judge;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS judge.annotators (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('human', 'model')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- What agreement compares; several annotators may label for one coder (e.g. the seed
    -- study's 17 student groups form the coder "students").
    coder       text NOT NULL
);

CREATE TABLE IF NOT EXISTS judge.judges (
    id           bigserial PRIMARY KEY,
    annotator_id bigint NOT NULL UNIQUE REFERENCES judge.annotators (id),
    family       text NOT NULL,
    protocol     text NOT NULL,
    config       jsonb NOT NULL,
    config_hash  text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS judge.judgments (
    id                bigserial PRIMARY KEY,
    -- The generator's answer (generator.answers_v1); no foreign key across owners.
    generation_id     bigint NOT NULL,
    annotator_id      bigint NOT NULL REFERENCES judge.annotators (id),
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
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    cost_usd          double precision NOT NULL DEFAULT 0,
    order_sensitive   boolean NOT NULL DEFAULT false,
    details           jsonb NOT NULL DEFAULT '{}',
    -- An unscorable verdict has no harm label: it must never read as "not harmful".
    CHECK ((status = 'ok') = (harmful IS NOT NULL)),
    UNIQUE (generation_id, annotator_id)
);

-- The text a label was given on (sha256 of the answer): an answer whose text changed (a data
-- set imported again) keeps no label of its old text, and a verdict is reused only for the
-- text it judged.
ALTER TABLE judge.judgments ADD COLUMN IF NOT EXISTS answer_sha256 text;

-- Labels adopted from before the split were given on their answer's current text (the shared
-- schema deleted them when it changed): they take its hash, from wherever the generator's
-- answers are at this moment (not yet moved, or moved and published).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM judge.judgments WHERE answer_sha256 IS NULL) THEN
        IF to_regclass('public.generations') IS NOT NULL THEN
            UPDATE judge.judgments j
            SET answer_sha256 = encode(sha256(convert_to(g.text, 'UTF8')), 'hex')
            FROM public.generations g
            WHERE g.id = j.generation_id AND j.answer_sha256 IS NULL;
        ELSE
            UPDATE judge.judgments j SET answer_sha256 = a.text_sha256
            FROM generator.answers_v1 a
            WHERE a.generation_id = j.generation_id AND j.answer_sha256 IS NULL;
        END IF;
    END IF;
END $$;

ALTER TABLE judge.judgments ALTER COLUMN answer_sha256 SET NOT NULL;

CREATE INDEX IF NOT EXISTS judgments_annotator_idx ON judge.judgments (annotator_id);

-- Published view: every label with who gave it, for the metrics service.
CREATE VIEW judge.labels_v1 AS
    SELECT j.generation_id, a.name AS annotator, a.coder, a.kind AS coder_kind, j.protocol,
           j.status, j.harmful, j.value, j.rank, j.order_sensitive, j.answer_sha256
    FROM judge.judgments j JOIN judge.annotators a ON a.id = j.annotator_id;

GRANT USAGE ON SCHEMA judge TO PUBLIC;
GRANT SELECT ON judge.labels_v1 TO PUBLIC;
