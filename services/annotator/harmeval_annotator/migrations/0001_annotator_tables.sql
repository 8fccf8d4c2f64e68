-- The annotation app owns labelling queues: which of a study's prompts people label (with the
-- probability each had of being chosen), under which guidelines, and what each person did
-- with each prompt (labelled, skipped, flagged), in the order they saw its answers. The
-- labels themselves are stored as the judge service's human labels (ImportAnnotations).

CREATE TABLE IF NOT EXISTS annotator.queues (
    study        text PRIMARY KEY CHECK (study <> ''),
    -- 'all': every prompt; 'uniform' / 'active': drawn by the metrics service's PlanLabelling.
    design       text NOT NULL CHECK (design IN ('all', 'uniform', 'active')),
    -- 'rank': the k answers ranked (N/A, or 1..k with k the most harmful); 'binary': each
    -- answer harmful or not.
    scale        text NOT NULL CHECK (scale IN ('rank', 'binary')),
    overlap      integer NOT NULL CHECK (overlap >= 1),
    budget       integer NOT NULL CHECK (budget >= 1),
    seed         bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS annotator.guidelines (
    study        text NOT NULL REFERENCES annotator.queues (study) ON DELETE CASCADE,
    version      integer NOT NULL CHECK (version >= 1),
    text         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (study, version)
);

CREATE TABLE IF NOT EXISTS annotator.units (
    study        text NOT NULL REFERENCES annotator.queues (study) ON DELETE CASCADE,
    prompt_id    bigint NOT NULL,
    -- How ImportAnnotations names the prompt: its external id, else its text.
    prompt_key   text NOT NULL,
    -- The order people get the queue's prompts in: a random permutation (seeded by the
    -- queue's seed), so the prompts labelled so far are a uniform sample of the queue.
    position     integer NOT NULL,
    inclusion_probability double precision NOT NULL
        CHECK (inclusion_probability > 0 AND inclusion_probability <= 1),
    PRIMARY KEY (study, prompt_id)
);

CREATE INDEX IF NOT EXISTS units_position_idx ON annotator.units (study, position);

CREATE TABLE IF NOT EXISTS annotator.assignments (
    study        text NOT NULL,
    prompt_id    bigint NOT NULL,
    annotator    text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('labelled', 'skipped', 'flagged')),
    -- The shuffle of the answers this person saw, and the study model behind each letter.
    order_seed   bigint NOT NULL,
    shown_order  jsonb NOT NULL,
    -- {study model: rank (0 = N/A) or 0/1}, for labelled units.
    labels       jsonb,
    guideline_version integer NOT NULL,
    inclusion_probability double precision NOT NULL,
    note         text NOT NULL DEFAULT '',
    seconds      double precision,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (study, prompt_id, annotator),
    FOREIGN KEY (study, prompt_id) REFERENCES annotator.units (study, prompt_id)
        ON DELETE CASCADE,
    CHECK ((outcome = 'labelled') = (labels IS NOT NULL))
);

CREATE TABLE IF NOT EXISTS annotator.sessions (
    -- SHA-256 of the cookie's value: a copy of this table signs no one in.
    id           text PRIMARY KEY,
    annotator    text NOT NULL,
    role         text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    -- When the person read the content warning (NULL: not yet this session).
    warned_at    timestamptz,
    expires_at   timestamptz NOT NULL
);

-- What estimates that combine judge and human labels need: which prompts were queued, with the
-- probability each had of being drawn, and which of them people labelled (a queue is worked
-- through in a random order, so the labelled ones are a uniform part of the queued ones).
CREATE VIEW annotator.queued_v1 AS
SELECT u.study, u.prompt_id, u.inclusion_probability
FROM annotator.units u;

CREATE VIEW annotator.labelled_v1 AS
SELECT a.study, a.prompt_id, a.annotator, a.guideline_version, a.inclusion_probability,
       a.created_at
FROM annotator.assignments a
WHERE a.outcome = 'labelled';

GRANT USAGE ON SCHEMA annotator TO PUBLIC;
GRANT SELECT ON annotator.queued_v1, annotator.labelled_v1 TO PUBLIC;
