-- Names along the pipeline: the latest report per terminal (what ingest keeps) and the overview
-- line per terminal (what the evaluator writes for the dashboard). The triggers that keep
-- `starts` follow the renamed table (SQLite rewrites them with the table).
ALTER TABLE terminal_state RENAME TO latest_report;
ALTER TABLE terminal_status RENAME TO overview_line;

DROP INDEX terminal_status_state;
DROP INDEX terminal_status_clinic;
DROP INDEX terminal_status_clinic_name;
DROP INDEX terminal_status_host;
DROP INDEX terminal_status_start;
DROP INDEX terminal_status_cert;
DROP INDEX terminal_status_prefecture;
CREATE INDEX overview_line_state ON overview_line(state_rank DESC, open_alerts DESC, host_key);
CREATE INDEX overview_line_clinic ON overview_line(clinic_id, state_rank);
CREATE INDEX overview_line_clinic_name ON overview_line(clinic_name, host_key);
CREATE INDEX overview_line_host ON overview_line(host_key);
CREATE INDEX overview_line_start ON overview_line(last_start);
CREATE INDEX overview_line_cert ON overview_line(cert_not_after);
CREATE INDEX overview_line_prefecture ON overview_line(prefecture, state_rank);

-- Staff actions on an alert name it in the audit log.
ALTER TABLE audit_log ADD COLUMN alert_id INTEGER;
CREATE INDEX audit_log_alert ON audit_log(alert_id, id) WHERE alert_id IS NOT NULL;
