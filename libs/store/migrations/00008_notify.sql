-- Notification delivery.
--
-- A delivery worker (services/notifier) sends each notification task to
-- the tenant's webhook as a signed CloudEvent and records how it went:
--
--   * a task is pending until it is delivered (a 2xx answer) or failed for
--     good (a 4xx other than 408/429, or 24 h of failed tries); status,
--     delivered_at and failed_at say which;
--   * next_attempt_at is when the task is next due. A worker claims a due
--     task by moving next_attempt_at to the end of its lease (and counting
--     the attempt), under FOR UPDATE SKIP LOCKED, so two workers never
--     send it at once and a crashed worker's claim runs out by itself.
--     The attempts count fences the claim: a worker whose lease ran out
--     records nothing over a newer claim;
--   * sync_completed is a new kind, written when a tenant asks to be told
--     of every applied run;
--   * tenants gain the webhook signing secret, sealed like the client
--     secret (libs/secret), never returned after it was made.

-- +goose Up

ALTER TABLE notification_tasks DROP CONSTRAINT notification_tasks_kind_check;
UPDATE notification_tasks SET next_attempt_at = created_at WHERE next_attempt_at IS NULL;
ALTER TABLE notification_tasks
    ADD CONSTRAINT notification_tasks_kind_check
        CHECK (kind IN ('seats_exhausted', 'sync_failed', 'run_held', 'sync_completed')),
    ALTER COLUMN next_attempt_at SET NOT NULL,
    ADD COLUMN status    text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    ADD COLUMN failed_at timestamptz;
UPDATE notification_tasks SET status = 'delivered' WHERE delivered_at IS NOT NULL;
ALTER TABLE notification_tasks
    ADD CONSTRAINT notification_tasks_delivered CHECK ((status = 'delivered') = (delivered_at IS NOT NULL)),
    ADD CONSTRAINT notification_tasks_failed CHECK ((status = 'failed') = (failed_at IS NOT NULL));

-- Workers look for pending tasks that are due, oldest due first.
CREATE INDEX notification_tasks_due ON notification_tasks (next_attempt_at) WHERE status = 'pending';
DROP INDEX notification_tasks_undelivered;

ALTER TABLE tenants ADD COLUMN notify_secret_sealed bytea;

-- +goose Down

ALTER TABLE tenants DROP COLUMN notify_secret_sealed;
CREATE INDEX notification_tasks_undelivered ON notification_tasks (created_at) WHERE delivered_at IS NULL;
DROP INDEX notification_tasks_due;
DELETE FROM notification_tasks WHERE kind = 'sync_completed';
ALTER TABLE notification_tasks
    DROP CONSTRAINT notification_tasks_failed,
    DROP CONSTRAINT notification_tasks_delivered,
    DROP COLUMN failed_at,
    DROP COLUMN status,
    ALTER COLUMN next_attempt_at DROP NOT NULL,
    DROP CONSTRAINT notification_tasks_kind_check,
    ADD CONSTRAINT notification_tasks_kind_check
        CHECK (kind IN ('seats_exhausted', 'sync_failed', 'run_held'));
