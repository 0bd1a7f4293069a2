-- A terminal with a warning nobody has acknowledged for `[alerts] neglected_warning_days` moves up
-- among the terminals of its severity in the overview's default order.
ALTER TABLE overview_line ADD COLUMN neglected BOOLEAN NOT NULL DEFAULT FALSE;
DROP INDEX overview_line_severity;
DROP INDEX overview_line_liveness;
DROP INDEX overview_line_handling;
CREATE INDEX overview_line_severity ON overview_line(severity_rank DESC, neglected DESC, open_alerts DESC, host_key, terminal_id);
CREATE INDEX overview_line_liveness ON overview_line(liveness, severity_rank DESC, neglected DESC, open_alerts DESC, host_key, terminal_id);
CREATE INDEX overview_line_handling ON overview_line(handling, severity_rank DESC, neglected DESC, open_alerts DESC, host_key, terminal_id);
