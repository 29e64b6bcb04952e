-- name: RunKindFacts :one
-- What plan.RunKind needs: the tenant's saved delta links (how many, and
-- when the older was taken), when its last full run succeeded (the epoch
-- stands for never), and how many groups the last run could not read.
SELECT (SELECT count(*) FROM tenant_delta_links l WHERE l.tenant_id = @tenant_id) AS links,
       COALESCE((SELECT min(l.taken_at) FROM tenant_delta_links l WHERE l.tenant_id = @tenant_id),
                'epoch')::timestamptz AS links_taken_at,
       COALESCE((SELECT max(r.finished_at) FROM sync_runs r
                 WHERE r.tenant_id = @tenant_id AND r.kind = 'full' AND r.status = 'succeeded'),
                'epoch')::timestamptz AS last_full_at,
       (SELECT count(*) FROM app_groups g
        WHERE g.tenant_id = @tenant_id AND g.status = 'enabled' AND NOT g.last_ok) AS unreadable_groups;
