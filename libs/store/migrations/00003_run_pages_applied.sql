-- How many pages of a run's current fetch attempt are applied, in one
-- place for every query that reads runs. While a run is going, that is the
-- number of pages recorded for its current attempt: the one its RunFetched
-- names once applied, before that the latest one a fetcher began (span is
-- the proto's AttemptPageSpan). Once the run is over, the count stored on
-- the run (its page rows are gone by then).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION run_pages_applied(r sync_runs, span bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN r.status IN ('succeeded', 'failed') THEN r.pages_applied
           ELSE (SELECT count(*) FROM sync_run_pages p
                 WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id
                   AND p.page >= COALESCE(r.pages_first, GREATEST(r.fetch_attempts - 1, 0)::bigint * span)
                   AND p.page < COALESCE(r.pages_first + r.pages_total, 2147483647))::int
           END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION run_pages_applied(sync_runs, bigint);
