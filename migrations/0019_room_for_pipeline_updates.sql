-- Room on every page for a second version of each row. After a sync the pipeline rewrites values no index
-- reads: contacts' engagement, deals' and accounts' scores and last activity, the stage of each history row,
-- a conversation's internal classification. With room on the page such an update is HOT (heap-only: no entry in
-- any of the table's ten-odd indexes); on a page packed full by the sync's COPY every one of them is a new
-- entry in every index (36-90 µs a row here, against ~10 µs). A first run over a million contacts rewrites half
-- of them. A page is filled to 45 % so the second versions fit even when the update grows the row (a score and
-- a date on a NULL: ~20 bytes); conversations to 40 %, as their classification adds a sentence (~70 bytes on
-- rows of 300-800). The space costs little more than what those updates left behind anyway, each moving its
-- row to a new page. Applies to pages written from now on; existing rows keep their layout until rewritten.
ALTER TABLE contacts SET (fillfactor = 45);
ALTER TABLE conversations SET (fillfactor = 40);
ALTER TABLE deals SET (fillfactor = 45);
ALTER TABLE accounts SET (fillfactor = 45);
ALTER TABLE deal_stage_history SET (fillfactor = 45);

-- An index on a column an update sets makes that update non-HOT, and this one (migration 0017) covered the
-- column the internal filter sets on every conversation. Unclassified conversations are new ones, which the
-- filter finds among the rows written since its last run like any other (core/pipeline/internal.py).
DROP INDEX conversations_unclassified;
