-- The evaluator reads every terminal's body hash on each pass to know which parsed bodies it can
-- keep: a covering index answers that without reading the 1.7 KB rows.
CREATE INDEX terminal_snapshot_hash ON terminal_snapshot(terminal_id, hash);
