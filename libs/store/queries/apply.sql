-- name: RunState :one
-- What an event needs to know about its run. superseded_by is the newest
-- run after this one that was planned (applied or held), 0 when there is
-- none (seqs start at 1): events of a run older than that change nothing.
SELECT r.seq, r.status, r.pages_first, r.pages_total, r.fetch_attempts,
       COALESCE((SELECT max(n.seq) FROM sync_runs n
                 WHERE n.tenant_id = r.tenant_id AND n.status IN ('succeeded', 'awaiting_approval', 'rejected')
                   AND n.seq > r.seq), 0)::bigint AS superseded_by
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.id = @run_id;

-- Row locks a transaction takes on its run before RunState reads it (sqlc
-- gives a statement one text, so the lock is a statement of its own
-- rather than a clause appended to RunState). A run that does not exist
-- locks nothing, and RunState then finds nothing.

-- name: LockRunForUpdate :exec
SELECT true FROM sync_runs WHERE tenant_id = @tenant_id AND id = @run_id FOR UPDATE;

-- name: LockRunForNoKeyUpdate :exec
-- NO KEY UPDATE: it does not wait for the key-share locks that concurrent
-- page inserts take on the run through their foreign key.
SELECT true FROM sync_runs WHERE tenant_id = @tenant_id AND id = @run_id FOR NO KEY UPDATE;

-- name: RecordPage :one
INSERT INTO sync_run_pages (tenant_id, run_id, page, kind, group_id, part, last, object_ids, applied_at, error)
VALUES (@tenant_id, @run_id, @page, @kind, @group_id, @part, @last, @object_ids, @applied_at, sqlc.narg(error))
ON CONFLICT (tenant_id, run_id, page) DO NOTHING
RETURNING true AS inserted;

-- name: GetPage :one
SELECT kind, group_id, part, last
FROM sync_run_pages
WHERE tenant_id = @tenant_id AND run_id = @run_id AND page = @page;

-- name: MaxRecordedPageIn :one
-- The last page recorded in [@lo, @hi), -1 when there is none (pages
-- start at 0).
SELECT COALESCE(max(page), -1)::integer
FROM sync_run_pages
WHERE tenant_id = @tenant_id AND run_id = @run_id AND page >= @lo AND page < @hi;

-- name: MarkRunStarted :exec
-- A run is running from its first sign of life: RunStarted, or a page that
-- overtook it. started_at is set once.
UPDATE sync_runs
SET status = CASE WHEN status = 'queued' THEN 'running' ELSE status END,
    started_at = COALESCE(started_at, @at::timestamptz)
WHERE tenant_id = @tenant_id AND id = @run_id
  AND status IN ('queued', 'running', 'applying')
  AND (status = 'queued' OR started_at IS NULL);

-- name: MarkRunFetched :exec
-- @pages_first is the attempt's first page, @pages_total its number of
-- pages; the delta links are NULL when the attempt took none.
UPDATE sync_runs
SET status = 'applying',
    pages_first = @pages_first::integer,
    pages_total = @pages_total::integer,
    users_delta_link = sqlc.narg(users_delta_link)::text,
    groups_delta_link = sqlc.narg(groups_delta_link)::text,
    caught_up = @caught_up,
    users_filtered = @users_filtered,
    graph_requests = @graph_requests, graph_throttled = @graph_throttled, graph_retries = @graph_retries,
    started_at = COALESCE(started_at, @at::timestamptz),
    fetched_at = @at::timestamptz
WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: MarkRunFailed :one
-- Graph stats only grow: a failure found after RunFetched (finalization)
-- passes none and keeps the fetcher's. pages_applied counts the pages of
-- the run's current attempt, as GetRun does while the run goes on.
UPDATE sync_runs r
SET status = 'failed',
    error = @error,
    graph_requests = GREATEST(r.graph_requests, @graph_requests),
    graph_throttled = GREATEST(r.graph_throttled, @graph_throttled),
    graph_retries = GREATEST(r.graph_retries, @graph_retries),
    started_at = COALESCE(r.started_at, @at::timestamptz),
    finished_at = @at::timestamptz,
    pages_applied = (SELECT count(*) FROM sync_run_pages p
                     WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
                       AND p.page >= COALESCE(r.pages_first, GREATEST(r.fetch_attempts - 1, 0)::bigint * @attempt_page_span::bigint)
                       AND p.page < COALESCE(r.pages_first + r.pages_total, 2147483647))
WHERE r.tenant_id = @tenant_id AND r.id = @run_id
RETURNING r.seq, (SELECT t.name FROM tenants t WHERE t.id = r.tenant_id)::text AS tenant_name;

-- name: DeleteRunPages :exec
DELETE FROM sync_run_pages
WHERE tenant_id = @tenant_id AND run_id = @run_id;

-- The mirror's upserts take a page's entries as one JSON array (@rows),
-- unpacked by jsonb_to_recordset: one round trip per page, whatever its
-- size.

-- name: UpsertUsers :exec
-- A row is written whenever this entry is newer than the one that last
-- wrote it, even when it says the same: its version must advance, or a
-- page or tombstone of a version in between, arriving late, would win over
-- this newer one (any order must give the same final state). Replays and
-- older pages change nothing. An unchanged entry only moves the version
-- columns, which no index covers, so Postgres rewrites the row in place
-- (a HOT update) without touching an index; the application side, which
-- is compared by content, is not rewritten. An entry that changes the
-- row (or brings back a deleted user) marks it changed by this run
-- (changed_run_seq, migration 00021): the next plan decides that user
-- again.
--
-- When @note_drift (a full run's page), the entries that differ from the
-- mirror as it was before this statement (every part of a statement reads
-- the tables as they were when it began) are noted as drift candidates
-- (migration 00018), in this statement: a statement of its own sent the
-- page to Postgres a second time. The page is unpacked twice only when
-- notes are taken: otherwise the note's condition, false for the whole
-- statement, keeps Postgres from reading it.
WITH noted AS (
    INSERT INTO sync_run_drift (tenant_id, run_id, kind, group_id, object_id)
    SELECT @tenant_id, @run_id, 'user', '', u.id
    FROM jsonb_to_recordset(@rows::jsonb) AS u(id text, display_name text, mail text, upn text, given_name text,
                                               surname text, job_title text, department text, user_type text,
                                               account_enabled boolean)
    LEFT JOIN dir_users d ON d.tenant_id = @tenant_id AND d.entra_id = u.id
    WHERE @note_drift::boolean
      AND EXISTS (SELECT 1 FROM tenant_delta_links l WHERE l.tenant_id = @tenant_id)
      AND (d.entra_id IS NULL OR d.deleted
           OR (d.display_name, d.mail, d.user_principal_name, d.given_name, d.surname, d.job_title, d.department,
               d.user_type, d.account_enabled)
              IS DISTINCT FROM (u.display_name, u.mail, u.upn, u.given_name, u.surname, u.job_title, u.department,
                                u.user_type, u.account_enabled))
    ON CONFLICT DO NOTHING
)
INSERT INTO dir_users AS d (tenant_id, entra_id, display_name, mail, user_principal_name, given_name, surname,
                            job_title, department, user_type, account_enabled, deleted, v_run_seq, v_page, v_idx,
                            changed_run_seq)
SELECT @tenant_id, u.id, u.display_name, u.mail, u.upn, u.given_name, u.surname,
       u.job_title, u.department, u.user_type, u.account_enabled, false, @run_seq, @page, u.idx, @run_seq
FROM jsonb_to_recordset(@rows::jsonb) AS u(id text, display_name text, mail text, upn text, given_name text,
                                           surname text, job_title text, department text, user_type text,
                                           account_enabled boolean, idx integer)
ORDER BY u.id
ON CONFLICT (tenant_id, entra_id) DO UPDATE
SET display_name = EXCLUDED.display_name,
    mail = EXCLUDED.mail,
    user_principal_name = EXCLUDED.user_principal_name,
    given_name = EXCLUDED.given_name,
    surname = EXCLUDED.surname,
    job_title = EXCLUDED.job_title,
    department = EXCLUDED.department,
    user_type = EXCLUDED.user_type,
    account_enabled = EXCLUDED.account_enabled,
    deleted = false,
    v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx,
    changed_run_seq = CASE
        WHEN (d.display_name, d.mail, d.user_principal_name, d.given_name, d.surname, d.job_title, d.department,
              d.user_type, d.account_enabled, d.deleted)
             IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.mail, EXCLUDED.user_principal_name, EXCLUDED.given_name,
                               EXCLUDED.surname, EXCLUDED.job_title, EXCLUDED.department, EXCLUDED.user_type,
                               EXCLUDED.account_enabled, false)
        THEN EXCLUDED.changed_run_seq ELSE d.changed_run_seq END
WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx);

-- name: UpsertGroups :exec
-- As UpsertUsers: every newer entry advances the version, and drift
-- candidates are noted in the same statement when @note_drift.
WITH noted AS (
    INSERT INTO sync_run_drift (tenant_id, run_id, kind, group_id, object_id)
    SELECT @tenant_id, @run_id, 'group', '', g.id
    FROM jsonb_to_recordset(@rows::jsonb) AS g(id text, display_name text, description text, mail text,
                                               group_types text[], security_enabled boolean, mail_enabled boolean,
                                               membership_rule text, renewed_at timestamptz)
    LEFT JOIN dir_groups d ON d.tenant_id = @tenant_id AND d.entra_id = g.id
    WHERE @note_drift::boolean
      AND EXISTS (SELECT 1 FROM tenant_delta_links l WHERE l.tenant_id = @tenant_id)
      AND (d.entra_id IS NULL OR d.deleted
           OR (d.display_name, d.description, d.mail, d.group_types, d.security_enabled, d.mail_enabled,
               d.membership_rule, d.renewed_at)
              IS DISTINCT FROM (g.display_name, g.description, g.mail, g.group_types, g.security_enabled,
                                g.mail_enabled, g.membership_rule, g.renewed_at))
    ON CONFLICT DO NOTHING
)
INSERT INTO dir_groups AS d (tenant_id, entra_id, display_name, description, mail, group_types, security_enabled,
                             mail_enabled, membership_rule, renewed_at, deleted, v_run_seq, v_page, v_idx)
SELECT @tenant_id, g.id, g.display_name, g.description, g.mail, g.group_types, g.security_enabled,
       g.mail_enabled, g.membership_rule, g.renewed_at, false, @run_seq, @page, g.idx
FROM jsonb_to_recordset(@rows::jsonb) AS g(id text, display_name text, description text, mail text,
                                           group_types text[], security_enabled boolean, mail_enabled boolean,
                                           membership_rule text, renewed_at timestamptz, idx integer)
ORDER BY g.id
ON CONFLICT (tenant_id, entra_id) DO UPDATE
SET display_name = EXCLUDED.display_name,
    description = EXCLUDED.description,
    mail = EXCLUDED.mail,
    group_types = EXCLUDED.group_types,
    security_enabled = EXCLUDED.security_enabled,
    mail_enabled = EXCLUDED.mail_enabled,
    membership_rule = EXCLUDED.membership_rule,
    renewed_at = EXCLUDED.renewed_at,
    deleted = false,
    v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx
WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx);

-- name: UpsertMembers :exec
-- As UpsertUsers: every newer entry advances the version, so that a
-- stale-edge sweep of an older run finalizing late keeps the edge. An
-- entry older than a delta page's removal of the edge
-- (dir_member_removals) does not bring it back. Each row names its group:
-- a members page's rows are all of one group, a delta page's of every
-- group whose members it changes.
--
-- The edges this page adds or retypes carry the page (migration 00020):
-- the next plan finds them by changed_run_seq, and when @note_drift (a
-- full run's page) they are noted as drift candidates, as NoteUsersDrift
-- notes users, in the same statement (the upsert in WITH runs to the end
-- whether or not anything is noted). The ON CONFLICT arbiter looks each
-- entry up by its full key, whatever plan Postgres picks; a separate
-- comparison of the page with the group's edges once let a cached
-- generic plan scan the group's whole edge list for each page and filter
-- it against every entry (up to 700 ms for one page of a group of
-- 13,000).
WITH up AS (
    INSERT INTO dir_members AS d (tenant_id, group_id, member_id, member_type, v_run_seq, v_page, v_idx,
                                  changed_run_seq, changed_page)
    SELECT @tenant_id, m.group_id, m.id, m.type, @run_seq, @page, m.idx, @run_seq, @page
    FROM jsonb_to_recordset(@rows::jsonb) AS m(group_id text, id text, type text, idx integer)
    WHERE NOT EXISTS (SELECT 1 FROM dir_member_removals x
                      WHERE x.tenant_id = @tenant_id AND x.group_id = m.group_id AND x.member_id = m.id
                        AND (x.v_run_seq, x.v_page, x.v_idx) > (@run_seq::bigint, @page::integer, m.idx))
    ORDER BY m.group_id, m.id
    ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE
    SET member_type = EXCLUDED.member_type,
        changed_run_seq = CASE WHEN d.member_type = EXCLUDED.member_type THEN d.changed_run_seq
                               ELSE EXCLUDED.changed_run_seq END,
        changed_page = CASE WHEN d.member_type = EXCLUDED.member_type THEN d.changed_page
                            ELSE EXCLUDED.changed_page END,
        v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx
    WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx)
    RETURNING d.group_id, d.member_id, d.changed_run_seq, d.changed_page
),
-- The added and retyped edges, for Entra's member counts (migration
-- 00024), with the type the edge had before: every part of one statement
-- reads the table as it was when the statement began. An edge a refresh
-- has not counted yet keeps the type of its first change.
counted AS (
    INSERT INTO dir_edge_changes AS c (tenant_id, group_id, member_id, run_seq, type_before)
    SELECT @tenant_id, up.group_id, up.member_id, @run_seq,
           (SELECT o.member_type FROM dir_members o
            WHERE o.tenant_id = @tenant_id AND o.group_id = up.group_id AND o.member_id = up.member_id)
    FROM up
    WHERE up.changed_run_seq = @run_seq::bigint AND up.changed_page = @page::integer
      AND NOT (SELECT t.memberships_stale FROM tenants t WHERE t.id = @tenant_id)
    ORDER BY up.group_id, up.member_id
    ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE
    SET run_seq = greatest(c.run_seq, EXCLUDED.run_seq),
        type_before = CASE WHEN c.counted THEN EXCLUDED.type_before ELSE c.type_before END,
        counted = false
)
INSERT INTO sync_run_drift (tenant_id, run_id, kind, group_id, object_id)
SELECT @tenant_id, @run_id, 'member', up.group_id, up.member_id
FROM up
WHERE up.changed_run_seq = @run_seq::bigint AND up.changed_page = @page::integer
  AND @note_drift::boolean
  AND EXISTS (SELECT 1 FROM tenant_delta_links l WHERE l.tenant_id = @tenant_id)
ORDER BY up.group_id, up.member_id
ON CONFLICT DO NOTHING;

-- name: UpsertDevices :exec
-- The devices of a member list, with their names; as UpsertUsers, the
-- newer entry wins (one device in many groups' lists is written by each).
INSERT INTO dir_devices AS d (tenant_id, entra_id, display_name, v_run_seq, v_page, v_idx)
SELECT @tenant_id, m.id, m.name, @run_seq, @page, m.idx
FROM jsonb_to_recordset(@rows::jsonb) AS m(id text, type text, name text, idx integer)
WHERE m.type = 'device'
ORDER BY m.id
ON CONFLICT (tenant_id, entra_id) DO UPDATE
SET display_name = EXCLUDED.display_name,
    v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx
WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx);
