package reconciler_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/reconciler"
)

// FuzzApplyEvent decodes arbitrary bytes as the bus does and applies what
// decodes, through the real reconciler and store, to a tenant with a run
// under way. No event may panic; each is applied or refused as permanent
// (a healthy database has no passing failures to offer).
func FuzzApplyEvent(f *testing.F) {
	ctx := context.Background()
	st := storetest.New(f, store.WithClock(clock))
	r, err := reconciler.New(reconciler.Config{Clock: clock},
		reconciler.Deps{Store: st, Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	tn, err := st.CreateTenant(ctx, store.NewTenant{ID: tenantID, Name: "Contoso",
		EntraTenantID: "c0000000-0000-4000-8000-000000000000", ClientID: "c1000000-0000-4000-8000-000000000000",
		ClientSecret: "secret", Seats: 5})
	if err != nil {
		f.Fatal(err)
	}
	run, err := st.CreateRun(ctx, store.NewRun{ID: runID(1), TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: every event of a real run, and a few broken ones.
	for _, ev := range events(testDirectory(), tn.ID, run.ID, run.Seq, 3) {
		raw, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	// Delta pages: changes, removals soft and for good, member changes.
	for i, body := range []func(*syncv1.SyncEvent){
		func(ev *syncv1.SyncEvent) {
			ev.Body = &syncv1.SyncEvent_UsersDelta{UsersDelta: &syncv1.UsersDeltaPage{
				Users:   []*syncv1.User{{Id: uid(1), DisplayName: "One", AccountEnabled: true}},
				Removed: []*syncv1.Removed{{Id: uid(2), Restorable: true}, {Id: uid(99)}}}}
		},
		func(ev *syncv1.SyncEvent) {
			ev.Body = &syncv1.SyncEvent_GroupsDelta{GroupsDelta: &syncv1.GroupsDeltaPage{
				Groups:  []*syncv1.Group{{Id: gid(1), DisplayName: "A", SecurityEnabled: true}},
				Removed: []*syncv1.Removed{{Id: gid(2)}},
				Members: []*syncv1.GroupMembersDelta{{GroupId: gid(1),
					Added:   []*syncv1.Member{{Id: uid(3), Type: syncv1.MemberType_MEMBER_TYPE_USER}},
					Removed: []string{uid(1)}}}}}
		},
	} {
		ev := &syncv1.SyncEvent{TenantId: tn.ID, RunId: run.ID, RunSeq: run.Seq, Page: int32(100 + i)}
		body(ev)
		raw, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev syncv1.SyncEvent
		if proto.Unmarshal(raw, &ev) != nil {
			return // the bus dead-letters what does not decode
		}
		if err := r.Apply(ctx, &ev); err != nil && !bus.IsPermanent(err) {
			t.Fatalf("event %v: a passing failure on a healthy database: %v", &ev, err)
		}
	})
}
