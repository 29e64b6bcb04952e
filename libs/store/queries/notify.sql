-- name: ClaimNotifications :many
-- Claims up to @max_rows pending tasks due at @now, oldest due first:
-- each is counted as an attempt and not due again before @lease_until,
-- so another worker skips it (SKIP LOCKED while this statement runs, the
-- lease after) and a crashed worker's claim runs out. The tenant's
-- settings and sealed signing secret come along: the worker decides.
WITH due AS (
    SELECT n.tenant_id, n.id
    FROM notification_tasks n
    WHERE n.status = 'pending' AND n.next_attempt_at <= @now::timestamptz
    ORDER BY n.next_attempt_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notification_tasks n
    SET attempts = n.attempts + 1, next_attempt_at = @lease_until::timestamptz
    FROM due
    WHERE n.tenant_id = due.tenant_id AND n.id = due.id
    RETURNING n.tenant_id, n.id, n.kind, n.run_id, n.recipients, n.subject, n.body, n.created_at, n.attempts,
              n.last_error
)
SELECT c.tenant_id, c.id, c.kind, COALESCE(c.run_id::text, '')::text AS run_id, c.recipients, c.subject, c.body,
       c.created_at, c.attempts, c.last_error, t.settings, t.notify_secret_sealed
FROM claimed c
JOIN tenants t ON t.id = c.tenant_id
ORDER BY c.created_at, c.id;

-- name: RecordDelivered :execrows
-- Only the claim that made attempt @attempts records its outcome.
UPDATE notification_tasks
SET status = 'delivered', delivered_at = @at::timestamptz, last_error = ''
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending' AND attempts = @attempts;

-- name: RecordFailed :execrows
UPDATE notification_tasks
SET status = 'failed', failed_at = @at::timestamptz, last_error = @last_error
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending' AND attempts = @attempts;

-- name: RecordRetry :execrows
-- @attempts_after is what the task's attempts become: a task that was
-- not sent (no webhook yet) gives its attempt back.
UPDATE notification_tasks
SET next_attempt_at = @next_attempt_at::timestamptz, last_error = @last_error, attempts = @attempts_after
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending' AND attempts = @attempts;

-- name: SetNotifySecret :execrows
UPDATE tenants
SET notify_secret_sealed = @notify_secret_sealed, updated_at = @now::timestamptz
WHERE id = @id;
