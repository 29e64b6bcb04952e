// Package bus is entrasync's only door to NATS JetStream.
//
// Connect declares the streams and durable consumers the services share
// (SYNC_JOBS with the consumer "fetchers", SYNC_EVENTS with "reconcilers",
// and SYNC_DLQ for dead letters), so a fresh NATS server needs no manual
// set-up and a changed setting reaches a running cluster on the next deploy.
//
// Jobs and events travel as the messages of proto/entrasync/sync/v1.
// NewJob builds a run's job from plain values (what the store says of the
// run), so that the api and the scheduler publish jobs without the store
// knowing the wire format.
//
// Publishing is idempotent: every job and event carries a Nats-Msg-Id
// (the run id, "<run>/<page>", "<run>/started|fetched|failed", or the
// scheduler's "sched/<tenant>/<slot>") so a retried publish, or a second
// scheduler replica, is dropped by JetStream's duplicate window.
//
// Consuming hides acknowledgement from the services. A handler returns nil
// (ack), Retry(err, d) (redeliver after d, for as long as it takes),
// Permanent(err) (dead-letter), Transient(err) (an outage: called again
// in process with backoff, keeping the message, for up to TransientFor,
// so that an outage delays messages without spending their deliveries),
// or
// any other error (redeliver with a growing delay until the consumer's last
// allowed delivery, then dead-letter). A handler that must not let its
// message be dead-lettered silently (the fetcher ends the run instead)
// reads DeliveryFromContext to know when it is on the last delivery. Payloads that do not decode, or whose
// tenant differs from their subject's, never reach a handler: they go
// straight to SYNC_DLQ. A message whose process shuts down while its
// handler runs is handed back, on its last delivery as a fresh copy
// (HeaderRequeues), never dead-lettered for the shutdown. A message whose
// process died during its last delivery, which JetStream keeps but never
// delivers again, is found through JetStream's MAX_DELIVERIES advisory
// (kept in SYNC_STRANDED so that no advisory is missed while no replica
// runs) and published again, or dead-lettered once it stranded
// MaxStrandings times (rescue.go). Before a handled message is
// dead-lettered, ConsumeOptions.OnDeadLetter lets the service record why. While a handler runs the bus tells JetStream the
// message is in progress, so a long Graph page is not handed to a second
// replica. A dead letter keeps the original payload and carries headers
// with the reason, the original subject, the stream sequence and the
// delivery count (see the Header* constants).
//
// NewBudget hands out libs/budget's Graph budget on the bus's connection:
// its buckets are a JetStream KV (GRAPH_BUDGET) every fetcher replica
// shares, and the bus stays the only owner of the connection.
//
// The bus only uses JetStream features that NATS server 2.9 already has,
// so it runs against the server Debian ships as well as a current one.
package bus
