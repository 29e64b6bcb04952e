-- Fetch attempts of a run.
--
-- A run's job can be delivered again after a fetcher already published some
-- of its pages (the fetcher died, lost its tenant lease, or handed the job
-- back on shutdown). Each delivery that starts fetching is an attempt: the
-- fetcher counts it here before it publishes anything, and numbers the
-- attempt's pages in a range of their own (attempt a from (a-1) * 2^20,
-- AttemptPageSpan in the proto package). The run is judged on the pages of
-- the attempt whose RunFetched the reconciler applied: pages_first ..
-- pages_first + pages_total - 1. Pages of other attempts stay in the mirror
-- as what Graph said at the time, with older versions, and count for
-- nothing else.

-- +goose Up

ALTER TABLE sync_runs
    ADD COLUMN fetch_attempts integer NOT NULL DEFAULT 0 CHECK (fetch_attempts >= 0),
    ADD COLUMN pages_first    integer CHECK (pages_first >= 0);

-- Runs fetched before attempts were counted had one, from page 0.
UPDATE sync_runs SET pages_first = 0 WHERE pages_total IS NOT NULL;

ALTER TABLE sync_runs
    ADD CONSTRAINT sync_runs_pages_range CHECK ((pages_first IS NULL) = (pages_total IS NULL));

-- The sweeper looks for queued runs whose job no fetcher has taken.
DROP INDEX sync_runs_queued;
CREATE INDEX sync_runs_queued ON sync_runs (created_at) WHERE status = 'queued' AND fetch_attempts = 0;

-- +goose Down

DROP INDEX sync_runs_queued;
CREATE INDEX sync_runs_queued ON sync_runs (created_at) WHERE status = 'queued';

ALTER TABLE sync_runs
    DROP CONSTRAINT sync_runs_pages_range,
    DROP COLUMN pages_first,
    DROP COLUMN fetch_attempts;
