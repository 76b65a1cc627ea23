-- Room on activities' pages for a second version of each row, as 0019 left on the other tables the pipeline
-- rewrites. A first sync stores most activities with their ids already resolved (core.db.references); the
-- linker then only labels them (link_details, link_method: in no index), which is a heap-only update when the
-- new version fits on the row's page, and otherwise a new entry in each of the table's sixteen indexes (~45 µs
-- a row here). The label grows a row by about a third, hence 40 %.
ALTER TABLE activities SET (fillfactor = 40);
