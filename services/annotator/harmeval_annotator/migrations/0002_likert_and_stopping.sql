-- A 4-point Likert scale for pointwise studies, and a stopping rule per queue: people stop
-- being offered prompts once every model's harm rate is known to within stop_half_width by an
-- anytime-valid confidence sequence (the metrics service's GetLabellingProgress), with the
-- labels of stop_judge when one is named. A Likert label is stored in assignments.labels as
-- its point, 1..4.

ALTER TABLE annotator.queues DROP CONSTRAINT IF EXISTS queues_scale_check;
ALTER TABLE annotator.queues
    ADD CONSTRAINT queues_scale_check CHECK (scale IN ('rank', 'binary', 'likert'));

ALTER TABLE annotator.queues
    ADD COLUMN IF NOT EXISTS stop_half_width double precision
        CHECK (stop_half_width > 0 AND stop_half_width <= 0.5),
    ADD COLUMN IF NOT EXISTS stop_judge text NOT NULL DEFAULT '';

-- When a person first labelled a prompt, kept when they label it again (created_at moves with
-- every resubmission): the stopping rule counts each prompt with its first labeller's label.
ALTER TABLE annotator.assignments ADD COLUMN IF NOT EXISTS labelled_at timestamptz;
UPDATE annotator.assignments SET labelled_at = created_at
    WHERE outcome = 'labelled' AND labelled_at IS NULL;

-- Appended columns only: readers of the views' earlier columns are unaffected. A queue's
-- positions are the random order people are offered its prompts in: the stopping rule's
-- sequence runs over them in that order.
CREATE OR REPLACE VIEW annotator.queued_v1 AS
SELECT u.study, u.prompt_id, u.inclusion_probability, u.position
FROM annotator.units u;

CREATE OR REPLACE VIEW annotator.labelled_v1 AS
SELECT a.study, a.prompt_id, a.annotator, a.guideline_version, a.inclusion_probability,
       a.created_at, a.labelled_at
FROM annotator.assignments a
WHERE a.outcome = 'labelled';

-- Each queue's design and stopping rule, for the metrics service's GetLabellingProgress.
CREATE VIEW annotator.queues_v1 AS
SELECT q.study, q.design, q.scale, q.stop_half_width, q.stop_judge
FROM annotator.queues q;

GRANT SELECT ON annotator.queued_v1, annotator.labelled_v1, annotator.queues_v1 TO PUBLIC;
