package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stranded messages.
//
// When a message's last allowed delivery is never answered (the process
// handling it died, or hung past its ack wait), JetStream does not
// deliver it again, and a work queue does not remove it either: it would
// sit in its stream for ever, counted by TenantInFlight, so the stuck-run
// sweep would never give its run up. JetStream says so only once, in a
// MAX_DELIVERIES advisory, a core NATS message that nobody may be
// listening for at that moment (the only replica is the one that died).
// So SYNC_STRANDED keeps those advisories in a work queue, and every
// consumer of the bus reads its own consumer's, whenever it runs:
//
//   - a message stranded fewer than MaxStrandings times is published
//     again as a fresh copy (HeaderStrandings, HeaderRequeues): a dead
//     process is no verdict on its message;
//   - after that it is dead-lettered, as a message that keeps killing its
//     process would be, after ConsumeOptions.OnDeadLetter was told (the
//     reconciler fails the run with the reason).
//
// Either way the stranded original is then deleted from its stream. Each
// step can be repeated: the copy's and the dead letter's message ids are
// fixed by the original's stream sequence, so a rescue that died half-way
// and runs again publishes nothing twice.

// HeaderStrandings counts how often a message was published again
// because its last delivery was never answered.
const HeaderStrandings = "Entrasync-Strandings"

// advisoryMaxDeliveries is the subject of JetStream's MAX_DELIVERIES
// advisories of one consumer.
func advisoryMaxDeliveries(stream, consumer string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + "." + consumer
}

// maxDeliveriesAdvisory is the part of the advisory the bus reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// rescueLoop reads the consumer's stranded-message advisories until the
// consumer stops.
func (c *consumer) rescueLoop() {
	defer close(c.rescueDone)
	for c.loopCtx.Err() == nil {
		fctx, cancel := context.WithTimeout(c.loopCtx, c.b.opts.PollWait)
		batch, err := c.stranded.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if c.loopCtx.Err() != nil || errors.Is(err, nats.ErrConnectionClosed) {
				return
			}
			c.pause(time.Second)
			continue
		}
		for m := range batch.Messages() {
			c.rescue(m)
		}
		cancel()
	}
}

// rescue handles one advisory: see the top of this file.
func (c *consumer) rescue(adv jetstream.Msg) {
	var a maxDeliveriesAdvisory
	if err := json.Unmarshal(adv.Data(), &a); err != nil || a.StreamSeq == 0 {
		c.log.Error().Err(err).Str("advisory", string(adv.Data())).Msg("unreadable MAX_DELIVERIES advisory")
		_ = adv.Term()
		return
	}
	log := c.log.With().Uint64("stream_seq", a.StreamSeq).Uint64("delivery", a.Deliveries).Logger()
	// Shutdown must not stop a rescue half-way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 30*time.Second)
	defer cancel()
	retry := func(err error, what string) {
		log.Warn().Err(err).Msg("rescue of a stranded message failed (" + what + "); will retry")
		_ = adv.NakWithDelay(c.backoff(1))
	}
	orig, err := c.stream.GetMsg(ctx, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Acknowledged late after all, or rescued already.
		_ = adv.Ack()
		return
	}
	if err != nil {
		retry(err, "read the message")
		return
	}
	hdr := nats.Header{}
	for k, v := range orig.Header {
		if !strings.HasPrefix(k, "Nats-") {
			hdr[k] = v
		}
	}
	origID := orig.Header.Get(nats.MsgIdHdr)
	strandings, _ := strconv.Atoi(hdr.Get(HeaderStrandings))
	reason := fmt.Sprintf("its last allowed delivery (%d) was never answered: the process handling it stopped or hung", a.Deliveries)

	var out *nats.Msg
	var id, verdict string
	if strandings < c.b.opts.MaxStrandings {
		requeues, _ := strconv.Atoi(hdr.Get(HeaderRequeues))
		hdr.Set(HeaderRequeues, strconv.Itoa(requeues+1))
		hdr.Set(HeaderStrandings, strconv.Itoa(strandings+1))
		if origID != "" && hdr.Get(HeaderOriginalMsgID) == "" {
			hdr.Set(HeaderOriginalMsgID, origID)
		}
		out = &nats.Msg{Subject: orig.Subject, Data: orig.Data, Header: hdr}
		id, verdict = fmt.Sprintf("stranded/%s/%d", a.Stream, a.StreamSeq), "published again"
	} else {
		reason = fmt.Sprintf("%s, %d times over", reason, strandings+1)
		if env, err := c.decode(orig.Subject, orig.Data); err == nil {
			if err := c.tellDeadLetter(ctx, env, reason); err != nil {
				retry(err, "tell the service")
				return
			}
		}
		out = c.dlqMessage(orig.Subject, orig.Data, orig.Header, a.Stream, a.Consumer, a.StreamSeq, a.Deliveries, reason)
		id, verdict = fmt.Sprintf("%s/%d", a.Stream, a.StreamSeq), "dead-lettered"
	}
	if _, err := c.b.js.PublishMsg(ctx, out, jetstream.WithMsgID(id)); err != nil {
		retry(err, "publish")
		return
	}
	if err := c.stream.DeleteMsg(ctx, a.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		retry(err, "delete the original")
		return
	}
	_ = adv.Ack()
	log.Warn().Str("subject", orig.Subject).Str("reason", reason).Int("strandings", strandings+1).
		Msg("stranded message " + verdict)
}

// tellDeadLetter gives the service its say before a decoded message is
// dead-lettered (ConsumeOptions.OnDeadLetter).
func (c *consumer) tellDeadLetter(ctx context.Context, env envelope, reason string) error {
	if c.onDeadLetter == nil || env.msg == nil {
		return nil
	}
	return c.onDeadLetter(ctx, env.msg, reason)
}
