-- A prompt's category as each study gives it: prompts are stored once per text, and two
-- studies (or a Generate call) may file the same prompt under different categories.
ALTER TABLE study_prompts ADD COLUMN category text;
UPDATE study_prompts sp SET category = p.category FROM prompts p WHERE p.id = sp.prompt_id;
ALTER TABLE study_prompts ALTER COLUMN category SET NOT NULL;
