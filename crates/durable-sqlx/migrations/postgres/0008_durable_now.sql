-- durable:compatible-from 2
-- The time every statement of the store takes as "now". Production: the transaction's start,
-- as before. A SQL function this simple is inlined by the planner, so it costs nothing and
-- the claim statements still use their partial indexes. A test clock replaces it in the
-- store's schema with `now()` plus an offset, to move the store's time forward.
-- Created in the first schema of the search_path, where the store's tables are.
CREATE OR REPLACE FUNCTION durable_now() RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT now()';
