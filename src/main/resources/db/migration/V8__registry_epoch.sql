-- One counter that every change to tenants, keys or adapter versions increments in its own
-- transaction. Each gateway polls it and reloads its in-memory serving directory when it moves,
-- so a revocation or an activation reaches every replica within the poll interval, and serving
-- needs no database round trip (and survives the database being away).
create table registry_epoch (
    id integer primary key,
    epoch bigint not null
);
insert into registry_epoch (id, epoch) values (1, 0);
