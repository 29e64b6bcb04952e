-- Drift candidates (migration 00018): entries of a full run's pages that
-- differ from the mirror as it is before the page is written. Noted only
-- for tenants with saved delta links: a first full read has nothing to
-- drift from. Finalization decides what is drift (store/drift.go).

-- name: NoteUsersDrift :exec
INSERT INTO sync_run_drift (tenant_id, run_id, kind, group_id, object_id)
SELECT @tenant_id, @run_id, 'user', '', u.id
FROM jsonb_to_recordset(@rows::jsonb) AS u(id text, display_name text, mail text, upn text, given_name text,
                                           surname text, job_title text, department text, user_type text,
                                           account_enabled boolean)
LEFT JOIN dir_users d ON d.tenant_id = @tenant_id AND d.entra_id = u.id
WHERE EXISTS (SELECT 1 FROM tenant_delta_links l WHERE l.tenant_id = @tenant_id)
  AND (d.entra_id IS NULL OR d.deleted
       OR (d.display_name, d.mail, d.user_principal_name, d.given_name, d.surname, d.job_title, d.department,
           d.user_type, d.account_enabled)
          IS DISTINCT FROM (u.display_name, u.mail, u.upn, u.given_name, u.surname, u.job_title, u.department,
                            u.user_type, u.account_enabled))
ON CONFLICT DO NOTHING;

-- name: NoteGroupsDrift :exec
INSERT INTO sync_run_drift (tenant_id, run_id, kind, group_id, object_id)
SELECT @tenant_id, @run_id, 'group', '', g.id
FROM jsonb_to_recordset(@rows::jsonb) AS g(id text, display_name text, description text, mail text,
                                           group_types text[], security_enabled boolean, mail_enabled boolean,
                                           membership_rule text, renewed_at timestamptz)
LEFT JOIN dir_groups d ON d.tenant_id = @tenant_id AND d.entra_id = g.id
WHERE EXISTS (SELECT 1 FROM tenant_delta_links l WHERE l.tenant_id = @tenant_id)
  AND (d.entra_id IS NULL OR d.deleted
       OR (d.display_name, d.description, d.mail, d.group_types, d.security_enabled, d.mail_enabled,
           d.membership_rule, d.renewed_at)
          IS DISTINCT FROM (g.display_name, g.description, g.mail, g.group_types, g.security_enabled,
                            g.mail_enabled, g.membership_rule, g.renewed_at))
ON CONFLICT DO NOTHING;

-- A member page's new or retyped edges are noted by UpsertMembers itself.

-- name: RunDriftNotes :many
SELECT kind, group_id, object_id FROM sync_run_drift
WHERE tenant_id = @tenant_id AND run_id = @run_id;

-- name: RunCaughtUp :one
SELECT caught_up FROM sync_runs WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: RunDeltaPageIDs :many
-- What the run's own delta rounds named (changed or removed), by page
-- kind, in any of its attempts: an earlier attempt's round explains the
-- notes its own listing pages made.
SELECT DISTINCT p.kind, s.id::text AS id
FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
WHERE p.tenant_id = @tenant_id AND p.run_id = @run_id AND p.kind IN ('users_delta', 'groups_delta');

-- name: DeleteRunDrift :exec
DELETE FROM sync_run_drift WHERE tenant_id = @tenant_id AND run_id = @run_id;

-- name: DeleteFinishedRunDrift :exec
-- Notes of runs that ended without being finalized (failed, superseded).
DELETE FROM sync_run_drift d
USING sync_runs r
WHERE d.tenant_id = @tenant_id AND r.tenant_id = @tenant_id AND r.id = d.run_id
  AND r.status IN ('succeeded', 'failed', 'rejected');
