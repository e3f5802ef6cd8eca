-- The base model an adapter version was checked against: the served model's configured name and its
-- fingerprint, never a path from adapter_config.json. Held-out evaluation (eval losses, greedy
-- samples, the quality gate's verdict) can exceed the old 4000 characters with non-Latin text.
alter table adapter add column base_fingerprint varchar(64);
alter table adapter alter column metrics set data type varchar(16000);
alter table training_job add column metrics varchar(16000);
