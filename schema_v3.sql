-- chatd schema, version 3: the event log keeps only the indexes its
-- queries use. Replay reads a range of ids and decides visibility row by
-- row, the replay window is found through events_ts, and pruning deletes by
-- id, so nothing looks events up by room or by target. Each of these two
-- indexes cost every event an insert, and every commit a page per room (or
-- target) written to the WAL.
DROP INDEX events_room;
DROP INDEX events_target;
