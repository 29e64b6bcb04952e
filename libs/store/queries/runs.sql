-- name: NextRunSeq
-- Takes the tenant's row lock until commit: runs of one tenant get their
-- sequence numbers one after the other, without gaps.
UPDATE tenants
SET last_run_seq = last_run_seq + 1
WHERE id = $1
RETURNING last_run_seq, disconnected_at IS NOT NULL;

-- name: CreateRun
INSERT INTO sync_runs (tenant_id, id, seq, kind, trigger, slot, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING tenant_id::text, id::text, seq, kind, trigger, status, error, slot, counts, pages_total,
          pages_applied, graph_requests, graph_throttled, graph_retries, created_at, started_at, finished_at,
          fetch_attempts, pages_first, held_reason, held_message, plan_summary, decided_at;

-- name: GetRun
-- Pages applied come from run_pages_applied ($3 is the proto's
-- AttemptPageSpan); see migration 00003.
SELECT r.tenant_id::text, r.id::text, r.seq, r.kind, r.trigger, r.status, r.error, r.slot, r.counts, r.pages_total,
       run_pages_applied(r, $3::bigint),
       r.graph_requests, r.graph_throttled, r.graph_retries, r.created_at, r.started_at, r.finished_at,
       r.fetch_attempts, r.pages_first, r.held_reason, r.held_message, r.plan_summary, r.decided_at
FROM sync_runs r
WHERE r.tenant_id = $1 AND r.id = $2;

-- name: GetRunBySlot
SELECT r.tenant_id::text, r.id::text, r.seq, r.kind, r.trigger, r.status, r.error, r.slot, r.counts, r.pages_total,
       run_pages_applied(r, $3::bigint),
       r.graph_requests, r.graph_throttled, r.graph_retries, r.created_at, r.started_at, r.finished_at,
       r.fetch_attempts, r.pages_first, r.held_reason, r.held_message, r.plan_summary, r.decided_at
FROM sync_runs r
WHERE r.tenant_id = $1 AND r.slot = $2;

-- name: ListRuns
-- Newest first; keyset on seq.
SELECT r.tenant_id::text, r.id::text, r.seq, r.kind, r.trigger, r.status, r.error, r.slot, r.counts, r.pages_total,
       run_pages_applied(r, $3::bigint),
       r.graph_requests, r.graph_throttled, r.graph_retries, r.created_at, r.started_at, r.finished_at,
       r.fetch_attempts, r.pages_first, r.held_reason, r.held_message, r.plan_summary, r.decided_at
FROM sync_runs r
WHERE r.tenant_id = $1 AND r.seq < $2
ORDER BY r.seq DESC
LIMIT $4;

-- name: ListStaleQueuedRuns
-- A queued run with a fetch attempt had its job taken: the reconciler has
-- not applied RunStarted yet, but the job is not lost.
SELECT r.tenant_id::text, r.id::text, r.seq, r.kind, r.trigger, r.status, r.error, r.slot, r.counts, r.pages_total,
       0, r.graph_requests, r.graph_throttled, r.graph_retries, r.created_at, r.started_at, r.finished_at,
       r.fetch_attempts, r.pages_first, r.held_reason, r.held_message, r.plan_summary, r.decided_at
FROM sync_runs r
WHERE r.status = 'queued' AND r.fetch_attempts = 0 AND r.created_at < $1
ORDER BY r.created_at, r.tenant_id, r.seq;

-- name: BeginFetch
-- Counts a fetch attempt of a run that is still to be fetched.
UPDATE sync_runs
SET fetch_attempts = fetch_attempts + 1
WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'running')
RETURNING fetch_attempts;

-- name: RunStatus
SELECT status FROM sync_runs WHERE tenant_id = $1 AND id = $2;

-- name: ListStuckRuns
-- Runs that should be moving but are not (run_stuck, migration 00004):
-- no progress since $1, no live tenant lease at $2. The status filter
-- lets the partial index of open runs serve.
SELECT r.tenant_id::text, r.id::text, r.seq, r.kind, r.trigger, r.status, r.error, r.slot, r.counts, r.pages_total,
       run_pages_applied(r, $3::bigint),
       r.graph_requests, r.graph_throttled, r.graph_retries, r.created_at, r.started_at, r.finished_at,
       r.fetch_attempts, r.pages_first, r.held_reason, r.held_message, r.plan_summary, r.decided_at
FROM sync_runs r
WHERE r.status IN ('queued', 'running', 'applying') AND run_stuck(r, $1, $2)
ORDER BY r.created_at, r.tenant_id, r.seq;

-- name: RunStuck
-- ListStuckRuns for one run, under the run's row lock.
SELECT true
FROM sync_runs r
WHERE r.tenant_id = $1 AND r.id = $2 AND run_stuck(r, $3, $4)
FOR UPDATE OF r;

-- name: LockTenantRow
-- Serialises the creation of a tenant's runs (NextRunSeq takes the same
-- row lock) without taking a sequence number.
SELECT true FROM tenants WHERE id = $1 FOR UPDATE;

-- name: WaitingRun
-- The tenant's oldest queued run that no fetcher has begun.
SELECT r.tenant_id::text, r.id::text, r.seq, r.kind, r.trigger, r.status, r.error, r.slot, r.counts, r.pages_total,
       0, r.graph_requests, r.graph_throttled, r.graph_retries, r.created_at, r.started_at, r.finished_at,
       r.fetch_attempts, r.pages_first, r.held_reason, r.held_message, r.plan_summary, r.decided_at
FROM sync_runs r
WHERE r.tenant_id = $1 AND r.status = 'queued' AND r.fetch_attempts = 0
ORDER BY r.seq
LIMIT 1;
