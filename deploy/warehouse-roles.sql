-- Least privilege for the Newswire warehouse on PostgreSQL.
--
-- Two roles: newswire_owner owns the schema and every table and is the only role that runs migrations
-- (`newswire migrate`); newswire_app is what Airflow and `newswire run` connect as, and can read and write
-- rows but cannot create, alter or drop anything. Feed-supplied text only ever reaches SQL as bound
-- parameters; this file makes sure that even a bug there could not change the schema.
--
-- Run once per warehouse database, as a superuser or the database owner:
--   psql -v ON_ERROR_STOP=1 -d newswire -f deploy/warehouse-roles.sql
--   psql -d newswire -c "ALTER ROLE newswire_owner PASSWORD '...'"   -- passwords never live in this file
--   psql -d newswire -c "ALTER ROLE newswire_app PASSWORD '...'"
-- Then migrate as the owner, and run the pipeline as the app role, both on the `newswire` schema:
--   NEWSWIRE_WAREHOUSE_URL='postgresql://newswire_owner:...@host:5432/newswire?schema=newswire' newswire migrate
--   NEWSWIRE_WAREHOUSE_URL='postgresql://newswire_app:...@host:5432/newswire?schema=newswire'   (DAGs, CLI)
-- The pipeline checks the schema version with a read at start and issues no DDL when it is current; after
-- an upgrade that adds a migration, run `newswire migrate` as the owner before restarting the pipeline.
-- A warehouse already migrated by another role: REASSIGN OWNED BY <that role> TO newswire_owner first.

CREATE ROLE newswire_owner LOGIN;
CREATE ROLE newswire_app LOGIN;

CREATE SCHEMA IF NOT EXISTS newswire AUTHORIZATION newswire_owner;
REVOKE ALL ON SCHEMA newswire FROM PUBLIC;
-- USAGE without CREATE: the app role can name the tables but not add any.
GRANT USAGE ON SCHEMA newswire TO newswire_app;

-- Nothing else to create objects in: the public schema (PostgreSQL < 15 lets everyone) and temporary tables.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;

-- Row access to every table the owner creates, now and in future migrations.
ALTER DEFAULT PRIVILEGES FOR ROLE newswire_owner IN SCHEMA newswire
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO newswire_app;
ALTER DEFAULT PRIVILEGES FOR ROLE newswire_owner IN SCHEMA newswire
    GRANT USAGE, SELECT ON SEQUENCES TO newswire_app;
-- Tables that already exist when this file is applied to a warehouse migrated earlier.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA newswire TO newswire_app;
