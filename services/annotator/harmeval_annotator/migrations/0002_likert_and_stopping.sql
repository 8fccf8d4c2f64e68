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
