-- Finalization of a complete run, in one transaction, in this order:
-- tombstones and stale edges in the mirror, then the application side
-- derived from the mirror, then the run's outcome. $1 is always the
-- tenant. No statement reads the wall clock: times come from the caller.
--
-- A run's pages are those of the fetch attempt its RunFetched names,
-- pages_first .. pages_first + pages_total - 1; the statements that read
-- sync_run_pages take that range as [lo, hi). Pages of other attempts of
-- the run are recorded too, but say nothing about what the run saw.

-- name: RunProgress
SELECT r.status, r.pages_total,
       (SELECT count(*) FROM sync_run_pages p
        WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
          AND p.page >= r.pages_first AND p.page < r.pages_first + r.pages_total)
FROM sync_runs r
WHERE r.tenant_id = $1 AND r.id = $2;

-- name: RunPagesTotal
SELECT pages_total::bigint FROM sync_runs WHERE tenant_id = $1 AND id = $2;

-- name: GetTenantSeats
SELECT seats FROM tenants WHERE id = $1;

-- name: RunPageKinds
-- $3, $4: the run's page range [lo, hi).
SELECT count(*) FILTER (WHERE kind = 'users'), count(*) FILTER (WHERE kind = 'groups')
FROM sync_run_pages
WHERE tenant_id = $1 AND run_id = $2 AND page >= $3 AND page < $4;

-- name: TombstoneUnseenUsers
-- Users the run did not see (in its pages, $4 ≤ page < $5) are gone from
-- Entra. The tombstone carries the version (run seq, max page, 0): newer
-- than anything of this run, of whichever attempt (their pages stay below
-- the largest int32, see the proto's MaxFetchAttempts), or of an older
-- run; older than anything of a later run.
WITH seen AS MATERIALIZED (
    SELECT DISTINCT s.id
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = $1 AND p.run_id = $2 AND p.kind = 'users' AND p.page >= $4 AND p.page < $5
)
UPDATE dir_users d
SET deleted = true, v_run_seq = $3, v_page = 2147483647, v_idx = 0
WHERE d.tenant_id = $1
  AND NOT d.deleted
  AND (d.v_run_seq, d.v_page, d.v_idx) < ($3, 2147483647, 0)
  AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.id = d.entra_id);

-- name: TombstoneUnseenGroups
-- As TombstoneUnseenUsers.
WITH seen AS MATERIALIZED (
    SELECT DISTINCT s.id
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = $1 AND p.run_id = $2 AND p.kind = 'groups' AND p.page >= $4 AND p.page < $5
)
UPDATE dir_groups d
SET deleted = true, v_run_seq = $3, v_page = 2147483647, v_idx = 0
WHERE d.tenant_id = $1
  AND NOT d.deleted
  AND (d.v_run_seq, d.v_page, d.v_idx) < ($3, 2147483647, 0)
  AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.id = d.entra_id);

-- name: DropStaleEdges
-- An edge goes when its group is gone, or when the run saw the group's
-- complete member list (parts 0..n, the last one marked) without it.
-- Edges a later run wrote stay. $4, $5: the run's page range [lo, hi).
WITH member_pages AS MATERIALIZED (
    SELECT group_id, part, last, object_ids
    FROM sync_run_pages
    WHERE tenant_id = $1 AND run_id = $2 AND kind = 'members' AND page >= $4 AND page < $5
),
complete AS (
    SELECT group_id
    FROM member_pages
    GROUP BY group_id
    HAVING bool_or(last)
       AND count(DISTINCT part) = max(part) + 1
       AND max(part) FILTER (WHERE last) = max(part)
),
seen AS (
    SELECT DISTINCT mp.group_id, s.id
    FROM member_pages mp, unnest(mp.object_ids) AS s(id)
    WHERE mp.group_id IN (SELECT group_id FROM complete)
),
alive AS (
    SELECT entra_id FROM dir_groups WHERE tenant_id = $1 AND NOT deleted
)
DELETE FROM dir_members d
WHERE d.tenant_id = $1
  AND (d.v_run_seq, d.v_page, d.v_idx) < ($3, 2147483647, 0)
  AND (NOT EXISTS (SELECT 1 FROM alive a WHERE a.entra_id = d.group_id)
       OR (EXISTS (SELECT 1 FROM complete c WHERE c.group_id = d.group_id)
           AND NOT EXISTS (SELECT 1 FROM seen s WHERE s.group_id = d.group_id AND s.id = d.member_id)));

-- name: DeriveAppUsers
-- $2 is the run's seq, $3 the time, $4 the tenant's seats.
-- App users are the directory's Member users (guests are out of scope).
-- Seats ($4 of them): holders keep theirs, oldest grants first; free seats
-- go to enabled users without one in order of Entra id; when the pool
-- shrank below the holders, the most recent grants go back first.
-- Only rows whose content changes are written.
WITH scope AS (
    SELECT entra_id,
           COALESCE(NULLIF(mail, ''), user_principal_name) AS email,
           display_name, given_name, surname, job_title, department,
           account_enabled AS enabled
    FROM dir_users
    WHERE tenant_id = $1 AND NOT deleted AND user_type = 'Member'
),
cur AS (
    SELECT * FROM app_users WHERE tenant_id = $1
),
holders AS (
    SELECT c.entra_id, c.license_run_seq, c.licensed_at,
           row_number() OVER (ORDER BY c.license_run_seq, c.entra_id) AS rank
    FROM cur c
    JOIN scope s USING (entra_id)
    WHERE c.license = 'assigned' AND s.enabled
),
kept AS (
    SELECT * FROM holders WHERE rank <= $4
),
granted AS (
    SELECT s.entra_id
    FROM scope s
    WHERE s.enabled AND NOT EXISTS (SELECT 1 FROM holders h WHERE h.entra_id = s.entra_id)
    ORDER BY s.entra_id
    LIMIT GREATEST($4 - (SELECT count(*) FROM kept), 0)
),
desired AS (
    SELECT s.*,
           CASE WHEN NOT s.enabled THEN 'disabled'
                WHEN k.entra_id IS NOT NULL OR g.entra_id IS NOT NULL THEN 'assigned'
                ELSE 'none'
           END AS license,
           CASE WHEN k.entra_id IS NOT NULL THEN k.license_run_seq
                WHEN g.entra_id IS NOT NULL THEN $2::bigint
           END AS license_run_seq,
           CASE WHEN k.entra_id IS NOT NULL THEN k.licensed_at
                WHEN g.entra_id IS NOT NULL THEN $3::timestamptz
           END AS licensed_at
    FROM scope s
    LEFT JOIN kept k USING (entra_id)
    LEFT JOIN granted g USING (entra_id)
),
removed AS (
    DELETE FROM app_users a
    WHERE a.tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM scope s WHERE s.entra_id = a.entra_id)
    RETURNING a.license
),
created AS (
    INSERT INTO app_users (tenant_id, entra_id, email, display_name, given_name, surname, job_title, department,
                           enabled, license, license_run_seq, licensed_at, created_at, updated_at)
    SELECT $1, d.entra_id, d.email, d.display_name, d.given_name, d.surname, d.job_title, d.department,
           d.enabled, d.license, d.license_run_seq, d.licensed_at, $3, $3
    FROM desired d
    WHERE NOT EXISTS (SELECT 1 FROM cur c WHERE c.entra_id = d.entra_id)
    ORDER BY d.entra_id
    RETURNING license
),
changed AS (
    SELECT d.*, c.enabled AS was_enabled, c.license AS was_license,
           (c.email, c.display_name, c.given_name, c.surname, c.job_title, c.department)
               IS DISTINCT FROM
           (d.email, d.display_name, d.given_name, d.surname, d.job_title, d.department) AS profile_changed
    FROM desired d
    JOIN cur c USING (entra_id)
    WHERE (c.email, c.display_name, c.given_name, c.surname, c.job_title, c.department,
           c.enabled, c.license, c.license_run_seq, c.licensed_at)
              IS DISTINCT FROM
          (d.email, d.display_name, d.given_name, d.surname, d.job_title, d.department,
           d.enabled, d.license, d.license_run_seq, d.licensed_at)
),
updated AS (
    UPDATE app_users a
    SET email = ch.email, display_name = ch.display_name, given_name = ch.given_name, surname = ch.surname,
        job_title = ch.job_title, department = ch.department, enabled = ch.enabled, license = ch.license,
        license_run_seq = ch.license_run_seq, licensed_at = ch.licensed_at, updated_at = $3
    FROM changed ch
    WHERE a.tenant_id = $1 AND a.entra_id = ch.entra_id
    RETURNING ch.was_enabled, ch.enabled, ch.was_license, ch.license, ch.profile_changed
)
SELECT (SELECT count(*) FROM created),
       (SELECT count(*) FROM updated WHERE profile_changed AND was_enabled = enabled),
       (SELECT count(*) FROM updated WHERE was_enabled AND NOT enabled),
       (SELECT count(*) FROM updated WHERE enabled AND NOT was_enabled),
       (SELECT count(*) FROM removed),
       (SELECT count(*) FROM created WHERE license = 'assigned')
           + (SELECT count(*) FROM updated WHERE license = 'assigned' AND was_license <> 'assigned'),
       (SELECT count(*) FROM removed WHERE license = 'assigned')
           + (SELECT count(*) FROM updated WHERE was_license = 'assigned' AND license <> 'assigned'),
       (SELECT count(*) FROM desired WHERE enabled AND license <> 'assigned'),
       (SELECT count(*) FROM desired);

-- name: DeriveAppGroupMembers
-- Transitive membership from the mirror's direct edges. UNION (not UNION
-- ALL) makes the walk stop at pairs it already has, so cycles end. Only
-- app users count.
WITH RECURSIVE reach (root, group_id) AS (
    SELECT g.entra_id, g.entra_id
    FROM dir_groups g
    WHERE g.tenant_id = $1 AND NOT g.deleted
    UNION
    SELECT r.root, e.member_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = $1 AND e.group_id = r.group_id AND e.member_type = 'group'
),
desired AS (
    SELECT DISTINCT r.root AS group_id, e.member_id AS user_id
    FROM reach r
    JOIN dir_members e ON e.tenant_id = $1 AND e.group_id = r.group_id AND e.member_type = 'user'
    JOIN app_users u ON u.tenant_id = $1 AND u.entra_id = e.member_id
),
removed AS (
    DELETE FROM app_group_members m
    WHERE m.tenant_id = $1
      AND NOT EXISTS (SELECT 1 FROM desired d WHERE d.group_id = m.group_id AND d.user_id = m.user_id)
    RETURNING 1
),
added AS (
    INSERT INTO app_group_members (tenant_id, group_id, user_id)
    SELECT $1, d.group_id, d.user_id
    FROM desired d
    WHERE NOT EXISTS (SELECT 1 FROM app_group_members m
                      WHERE m.tenant_id = $1 AND m.group_id = d.group_id AND m.user_id = d.user_id)
    ORDER BY d.group_id, d.user_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM removed);

-- name: DeriveAppGroups
-- $2 is the run, $3 the time, $4 and $5 the run's page range [lo, hi).
-- Every directory group, with Graph's transitive user count from this
-- run's pages (kept from before when the run has none for the group) and
-- the app users of the local closure.
WITH transitive AS (
    SELECT p.group_id, count(DISTINCT s.id) AS n
    FROM sync_run_pages p, unnest(p.object_ids) AS s(id)
    WHERE p.tenant_id = $1 AND p.run_id = $2 AND p.kind = 'transitive' AND p.page >= $4 AND p.page < $5
    GROUP BY p.group_id
),
synced AS (
    SELECT group_id, count(*) AS n
    FROM app_group_members
    WHERE tenant_id = $1
    GROUP BY group_id
),
cur AS (
    SELECT * FROM app_groups WHERE tenant_id = $1
),
desired AS (
    SELECT g.entra_id, g.display_name,
           CASE WHEN 'Unified' = ANY (g.group_types) THEN 'microsoft365'
                WHEN g.security_enabled AND g.mail_enabled THEN 'mailEnabledSecurity'
                WHEN g.security_enabled THEN 'security'
                ELSE 'distribution'
           END AS kind,
           'DynamicMembership' = ANY (g.group_types) AS dynamic,
           COALESCE(t.n, c.entra_member_count, 0)::integer AS entra_member_count,
           COALESCE(sy.n, 0)::integer AS synced_member_count
    FROM dir_groups g
    LEFT JOIN transitive t ON t.group_id = g.entra_id
    LEFT JOIN synced sy ON sy.group_id = g.entra_id
    LEFT JOIN cur c ON c.entra_id = g.entra_id
    WHERE g.tenant_id = $1 AND NOT g.deleted
),
removed AS (
    DELETE FROM app_groups a
    WHERE a.tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM desired d WHERE d.entra_id = a.entra_id)
    RETURNING 1
),
created AS (
    INSERT INTO app_groups (tenant_id, entra_id, display_name, kind, dynamic, entra_member_count,
                            synced_member_count, created_at, updated_at)
    SELECT $1, d.entra_id, d.display_name, d.kind, d.dynamic, d.entra_member_count, d.synced_member_count, $3, $3
    FROM desired d
    WHERE NOT EXISTS (SELECT 1 FROM cur c WHERE c.entra_id = d.entra_id)
    ORDER BY d.entra_id
    RETURNING 1
),
changed AS (
    SELECT d.*,
           (c.display_name, c.kind, c.dynamic) IS DISTINCT FROM (d.display_name, d.kind, d.dynamic) AS attrs_changed
    FROM desired d
    JOIN cur c USING (entra_id)
    WHERE (c.display_name, c.kind, c.dynamic, c.entra_member_count, c.synced_member_count)
              IS DISTINCT FROM
          (d.display_name, d.kind, d.dynamic, d.entra_member_count, d.synced_member_count)
),
updated AS (
    UPDATE app_groups a
    SET display_name = ch.display_name, kind = ch.kind, dynamic = ch.dynamic,
        entra_member_count = ch.entra_member_count, synced_member_count = ch.synced_member_count,
        updated_at = $3
    FROM changed ch
    WHERE a.tenant_id = $1 AND a.entra_id = ch.entra_id
    RETURNING ch.attrs_changed
)
SELECT (SELECT count(*) FROM created),
       (SELECT count(*) FROM updated WHERE attrs_changed),
       (SELECT count(*) FROM removed);

-- name: CompleteRun
UPDATE sync_runs
SET status = 'succeeded',
    counts = $3,
    pages_applied = pages_total,
    started_at = COALESCE(started_at, $4),
    finished_at = $4
WHERE tenant_id = $1 AND id = $2;

-- name: SupersedeOlderRuns
-- Runs older than one that just succeeded can no longer change anything:
-- end them, so that nobody waits for them (or publishes their job again).
-- pages_applied as in MarkRunFailed ($4 is the proto's AttemptPageSpan).
UPDATE sync_runs r
SET status = 'failed',
    error = 'superseded by run ' || $2::bigint || ', which finished first',
    finished_at = $3,
    pages_applied = (SELECT count(*) FROM sync_run_pages p
                     WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
                       AND p.page >= COALESCE(r.pages_first, GREATEST(r.fetch_attempts - 1, 0)::bigint * $4::bigint)
                       AND p.page < COALESCE(r.pages_first + r.pages_total, 2147483647))
WHERE r.tenant_id = $1 AND r.seq < $2 AND r.status IN ('queued', 'running', 'applying');

-- name: DeleteFinishedRunPages
DELETE FROM sync_run_pages p
USING sync_runs r
WHERE p.tenant_id = $1 AND r.tenant_id = $1 AND r.id = p.run_id AND r.status IN ('succeeded', 'failed');
