-- Who sent a version: the Kafka producer named in its event (the trainer's principal), the admin
-- API's caller, or the demo seeding. Adapter events no longer create tenants.
alter table adapter add column producer varchar(128);
