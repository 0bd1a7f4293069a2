-- What kind of change an audit line records (alert, silence, clinic, code, contact, closure,
-- terminal, user, login, agent, …), for the audit page's filters; older lines have none.
ALTER TABLE audit_log ADD COLUMN action TEXT;
CREATE INDEX audit_log_action ON audit_log(action, id) WHERE action IS NOT NULL;
CREATE INDEX audit_log_actor ON audit_log(actor, id);

-- Enrollment codes are shown by a label staff give them and the code's last characters (the
-- code itself is shown once), so a code read out over the phone can be found again.
ALTER TABLE enrollment_codes ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollment_codes ADD COLUMN last_chars TEXT NOT NULL DEFAULT '';

-- The outbox page's status filter and its newest-first paging.
CREATE INDEX outbox_status_id ON outbox(status, id);

-- The alerts page filtered by rule: that rule's unresolved alerts in the page's order, so a
-- page is read off the index instead of sorting every alert of the rule.
CREATE INDEX alerts_unresolved_rule ON alerts(
    rule, (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END), opened_at DESC)
    WHERE status IN ('open', 'acknowledged');
