-- Training data sets: JSONL of {"instruction", "input", "output"} records, validated on upload.
create table dataset (
    id varchar(36) primary key,
    tenant_id varchar(64) not null references tenant (id),
    name varchar(128) not null,
    digest varchar(64) not null,
    records integer not null,
    content bytea not null,
    created_at timestamp not null
);

create index dataset_tenant on dataset (tenant_id);
