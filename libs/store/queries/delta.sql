-- Delta runs: what a Graph delta round's pages write to the mirror, and
-- the delta links a tenant's next round starts from. Versions as in
-- apply.sql: (run seq, page, index), the newer entry wins.

-- name: TombstoneUsers :exec
-- Users a delta page reports removed. A user the mirror lacks gets a
-- tombstone row too, so that an older page applied late cannot bring it
-- in. A tombstone blanks the user's properties: the same state whichever
-- order the pages came in (the plan reads only users that are not
-- deleted). A restored user comes again as changed (UpsertUsers). A
-- tombstone that deletes the user marks it changed by this run.
INSERT INTO dir_users AS d (tenant_id, entra_id, display_name, mail, user_principal_name, given_name, surname,
                            job_title, department, user_type, account_enabled, deleted, v_run_seq, v_page, v_idx,
                            changed_run_seq)
SELECT @tenant_id, r.id, '', '', '', '', '', '', '', '', false, true, @run_seq, @page, r.idx, @run_seq
FROM jsonb_to_recordset(@rows::jsonb) AS r(id text, idx integer)
ORDER BY r.id
ON CONFLICT (tenant_id, entra_id) DO UPDATE
SET display_name = '', mail = '', user_principal_name = '', given_name = '', surname = '',
    job_title = '', department = '', user_type = '', account_enabled = false,
    deleted = true,
    v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx,
    changed_run_seq = CASE WHEN d.deleted THEN d.changed_run_seq ELSE EXCLUDED.changed_run_seq END
WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx);

-- name: TombstoneGroups :exec
-- As TombstoneUsers, for groups.
INSERT INTO dir_groups AS d (tenant_id, entra_id, display_name, description, mail, group_types, security_enabled,
                             mail_enabled, membership_rule, renewed_at, deleted, v_run_seq, v_page, v_idx)
SELECT @tenant_id, r.id, '', '', '', '{}'::text[], false, false, '', NULL, true, @run_seq, @page, r.idx
FROM jsonb_to_recordset(@rows::jsonb) AS r(id text, idx integer)
ORDER BY r.id
ON CONFLICT (tenant_id, entra_id) DO UPDATE
SET display_name = '', description = '', mail = '', group_types = '{}'::text[], security_enabled = false,
    mail_enabled = false, membership_rule = '', renewed_at = NULL,
    deleted = true,
    v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx
WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx);

-- name: RecordMemberRemovals :exec
-- Edges a delta page took out of their groups, kept as versioned
-- tombstones (newer wins) so that UpsertMembers refuses an older add.
INSERT INTO dir_member_removals AS d (tenant_id, group_id, member_id, v_run_seq, v_page, v_idx)
SELECT @tenant_id, r.group_id, r.id, @run_seq, @page, r.idx
FROM jsonb_to_recordset(@rows::jsonb) AS r(group_id text, id text, idx integer)
ORDER BY r.group_id, r.id
ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE
SET v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx
WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx);

-- name: DeleteRemovedMembers :exec
-- The edges a delta page took out, where the edge is older than the
-- removal; a newer add stays. The edges that go are recorded for the
-- plan and for Entra's member counts (dir_edge_changes, with the type an
-- edge had at its first change since the counts' last refresh).
-- Each removal names its edge whole (group and member), so that each is
-- found through the primary key whatever its group's size: matched on
-- the member alone, within one group, the delete was planned for a group
-- of average size and read all 3,462 edges of a large one to remove 6.
-- The rows name each edge once (the caller keeps an edge's latest entry).
WITH gone AS (
    DELETE FROM dir_members e
    USING jsonb_to_recordset(@rows::jsonb) AS r(group_id text, id text, idx integer)
    WHERE e.tenant_id = @tenant_id AND e.group_id = r.group_id AND e.member_id = r.id
      AND (e.v_run_seq, e.v_page, e.v_idx) < (@run_seq::bigint, @page::integer, r.idx)
    RETURNING e.group_id, e.member_id, e.member_type
)
INSERT INTO dir_edge_changes AS d (tenant_id, group_id, member_id, run_seq, type_before)
SELECT @tenant_id, gone.group_id, gone.member_id, @run_seq, gone.member_type FROM gone
ORDER BY gone.group_id, gone.member_id
ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE
SET run_seq = greatest(d.run_seq, EXCLUDED.run_seq),
    type_before = CASE WHEN d.counted THEN EXCLUDED.type_before ELSE d.type_before END,
    counted = false;

-- name: DropMemberRemovals :exec
-- Once run @run_seq is finalized no page of it or of an older run is
-- applied any more (they are over): their edge tombstones have done
-- their work.
DELETE FROM dir_member_removals
WHERE tenant_id = @tenant_id AND v_run_seq <= @run_seq;

-- name: SaveDeltaLinks :exec
-- The links run @run_id's fetch ended with become the tenant's, in the
-- transaction that applies the run's plan, unless a newer run saved its
-- own already. taken_at is when the run was fetched.
INSERT INTO tenant_delta_links AS t (tenant_id, resource, link, taken_at, run_seq)
SELECT r.tenant_id, 'users', r.users_delta_link, COALESCE(r.fetched_at, @at::timestamptz), r.seq
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.id = @run_id AND r.users_delta_link IS NOT NULL
UNION ALL
SELECT r.tenant_id, 'groups', r.groups_delta_link, COALESCE(r.fetched_at, @at::timestamptz), r.seq
FROM sync_runs r
WHERE r.tenant_id = @tenant_id AND r.id = @run_id AND r.groups_delta_link IS NOT NULL
ON CONFLICT (tenant_id, resource) DO UPDATE
SET link = EXCLUDED.link, taken_at = EXCLUDED.taken_at, run_seq = EXCLUDED.run_seq
WHERE t.run_seq < EXCLUDED.run_seq;

-- name: RunUsersFiltered :one
SELECT users_filtered FROM sync_runs WHERE tenant_id = @tenant_id AND id = @run_id;

-- name: DropDeltaLinks :exec
-- The tenant's delta links go, unless a run newer than @run_seq saved
-- them.
DELETE FROM tenant_delta_links
WHERE tenant_id = @tenant_id AND run_seq < @run_seq;

-- name: DeltaLinks :many
SELECT resource, link, taken_at, run_seq
FROM tenant_delta_links
WHERE tenant_id = @tenant_id
ORDER BY resource;

-- name: AddDeltaDevices :exec
-- The devices of a delta page's member adds. members@delta names nobody
-- (Graph sends a member's type and id), so a device the mirror has keeps
-- its name, and a new one is named by the next full read; versions as in
-- UpsertDevices. A device added to several groups on the page is written
-- once, with its latest entry and the last name any entry gave.
INSERT INTO dir_devices AS d (tenant_id, entra_id, display_name, v_run_seq, v_page, v_idx)
SELECT @tenant_id, m.id,
       COALESCE((array_agg(m.name ORDER BY m.idx DESC) FILTER (WHERE m.name <> ''))[1], ''),
       @run_seq, @page, max(m.idx)
FROM jsonb_to_recordset(@rows::jsonb) AS m(id text, type text, name text, idx integer)
WHERE m.type = 'device'
GROUP BY m.id
ORDER BY m.id
ON CONFLICT (tenant_id, entra_id) DO UPDATE
SET display_name = CASE WHEN EXCLUDED.display_name = '' THEN d.display_name ELSE EXCLUDED.display_name END,
    v_run_seq = EXCLUDED.v_run_seq, v_page = EXCLUDED.v_page, v_idx = EXCLUDED.v_idx
WHERE (d.v_run_seq, d.v_page, d.v_idx) < (EXCLUDED.v_run_seq, EXCLUDED.v_page, EXCLUDED.v_idx);
