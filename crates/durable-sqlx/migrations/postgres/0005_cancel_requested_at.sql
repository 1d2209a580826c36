-- durable:compatible-from 2
-- When cancelling the task was asked while an attempt ran it: the attempt's runtime stops
-- it, and the attempt's end (an error, its token, a shutdown's hand-back, an expired lease)
-- makes the row `cancelled` instead of retrying it. NULL: no request. A nullable column
-- without default: no rewrite of the table.
ALTER TABLE durable_tasks ADD COLUMN cancel_requested_at timestamptz;
