-- Plain SQL types only: this runs on H2 (dev, tests) and PostgreSQL (production).
create table tenant (
    id varchar(64) primary key,
    display_name varchar(200) not null,
    created_at timestamp not null
);
