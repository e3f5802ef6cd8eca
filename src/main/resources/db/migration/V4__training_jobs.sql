-- Retraining jobs: created by POST /admin/tenants/{id}/retrain, updated from training-status events.
create table training_job (
    id varchar(36) primary key,
    request_id varchar(64) not null unique,
    tenant_id varchar(64) not null references tenant (id),
    adapter_name varchar(128) not null,
    dataset_id varchar(36) not null references dataset (id),
    -- queued, running, succeeded, failed
    state varchar(16) not null,
    progress double precision not null,
    step integer,
    loss double precision,
    reason varchar(2000),
    digest varchar(64),
    adapter_version integer,
    hyper_parameters varchar(2000),
    created_at timestamp not null,
    updated_at timestamp not null
);
