-- Stage normalization writes stage_normalized on every deal after a first sync (100k deals) and on each deal
-- whose stage a sync moves, and deals_stage_close (migration 0002) had that column in its key, so every one of
-- those writes was a new entry in each of the deals' ten indexes instead of a heap-only update on the room
-- migration 0019 leaves. The readers it served ask for deals by close date (a quarter's forecast, what closes
-- next) and filter the stage among those; an index on the close date alone serves them the same way.
DROP INDEX deals_stage_close;
CREATE INDEX deals_close ON deals (workspace_id, close_date);
