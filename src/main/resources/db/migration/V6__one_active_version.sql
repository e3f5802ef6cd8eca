-- At most one ACTIVE version per (tenant, adapter), held by the schema itself on H2 and PostgreSQL:
-- active_key is 'tenant/name' on the active row and null on every other (a unique constraint lets
-- NULLs repeat). Rows that broke the rule before are demoted, keeping the newest active version.
update adapter set status = 'REGISTERED'
 where status = 'ACTIVE'
   and exists (select 1 from adapter b
                where b.tenant_id = adapter.tenant_id and b.name = adapter.name
                  and b.status = 'ACTIVE' and b.version > adapter.version);
alter table adapter add column active_key varchar(200);
update adapter set active_key = tenant_id || '/' || name where status = 'ACTIVE';
alter table adapter add constraint adapter_one_active unique (active_key);
