package reconciler_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// newDeltaRun creates the tenant's next run as a delta run.
func (e *env) newDeltaRun(tenant string) store.Run {
	e.t.Helper()
	runs, err := e.st.ListRuns(context.Background(), tenant, 0, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	next := 1
	if len(runs) > 0 {
		next = int(runs[0].Seq) + 1
	}
	r, err := e.st.CreateRun(context.Background(), store.NewRun{ID: runID(next), TenantID: tenant, Kind: store.KindDelta,
		Trigger: store.TriggerManual})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// withLinks sets the delta links on a run's RunFetched (its last event).
func withLinks(evs []*syncv1.SyncEvent, users, groups string) []*syncv1.SyncEvent {
	f := evs[len(evs)-1].GetFetched()
	f.UsersDeltaLink, f.GroupsDeltaLink = users, groups
	return evs
}

// appSide is what the app holds of a tenant, member counts left out (a
// delta run reads no transitive lists).
func (e *env) appSide(tenant string) string {
	e.t.Helper()
	s := describeUsers(e.users(tenant))
	for _, g := range e.groups(tenant) {
		s += fmt.Sprintf("group %s %q %s %s dynamic=%v\n", g.EntraID, g.DisplayName, g.Kind, g.Status, g.Dynamic)
	}
	return s + fmt.Sprint(e.members(tenant))
}

// A delta run's events, applied after a full run, leave the app side a
// full run of the changed directory would: changed, new and removed
// users, a new group, and member changes (nested too), in any order,
// each event twice. The delta links of each run become the tenant's.
func TestDeltaRunAfterAFullRunAgreesWithAFullRun(t *testing.T) {
	t.Parallel()
	user, grp := syncv1.MemberType_MEMBER_TYPE_USER, syncv1.MemberType_MEMBER_TYPE_GROUP
	d := testDirectory()
	d2 := d.clone()
	d2.users[uid(2)].DisplayName = "User Two"
	d2.deleteUser(uid(5))
	d2.users[uid(20)] = &syncv1.User{Id: uid(20), DisplayName: "User 20", Mail: "user20@contoso.example",
		UserPrincipalName: "u20@contoso.example", UserType: "Member", AccountEnabled: true}
	d2.addMember(groupEmpty, uid(20), user)
	d2.addMember(groupLarge, uid(20), user)
	d2.removeMember(groupC, uid(4))
	d2.removeMember(groupA, groupB) // B's users leave A's nesting
	d2.groups[gid(8)] = &syncv1.Group{Id: gid(8), DisplayName: "New", SecurityEnabled: true}
	d2.addMember(gid(8), uid(1), user)
	d2.addMember(gid(8), groupC, grp)

	// The reference: two full runs.
	ref := newEnv(t)
	refTenant := ref.tenant(5)
	ref.sync(refTenant, d, 5)
	ref.sync(refTenant, d2, 5)

	e := newEnv(t)
	tenant := e.tenant(5)
	full := e.newRun(tenant)
	e.apply(withLinks(events(d, tenant, full.ID, full.Seq, 5), "https://graph/users?d=1", "https://graph/groups?d=1"))
	e.finished(tenant, full.ID)
	if l, err := e.st.DeltaLinks(context.Background(), tenant); err != nil || l.Users != "https://graph/users?d=1" ||
		l.Groups != "https://graph/groups?d=1" || l.RunSeq != 1 {
		t.Fatalf("links after the full run: %+v %v", l, err)
	}

	run := e.newDeltaRun(tenant)
	ev := func(page int32) *syncv1.SyncEvent {
		return &syncv1.SyncEvent{TenantId: tenant, RunId: run.ID, RunSeq: run.Seq, Page: page, ObservedAt: timestamppb.New(fixedNow)}
	}
	started, users, groups, fetched := ev(-1), ev(0), ev(1), ev(-1)
	started.Body = &syncv1.SyncEvent_Started{Started: &syncv1.RunStarted{Fetcher: "test", Attempt: 1}}
	users.Body = &syncv1.SyncEvent_UsersDelta{UsersDelta: &syncv1.UsersDeltaPage{
		Users:   []*syncv1.User{d2.users[uid(2)], d2.users[uid(20)]},
		Removed: []*syncv1.Removed{{Id: uid(5)}},
	}}
	groups.Body = &syncv1.SyncEvent_GroupsDelta{GroupsDelta: &syncv1.GroupsDeltaPage{
		Groups: []*syncv1.Group{d2.groups[gid(8)]},
		Members: []*syncv1.GroupMembersDelta{
			{GroupId: groupEmpty, Added: []*syncv1.Member{{Id: uid(20), Type: user}}},
			{GroupId: groupLarge, Added: []*syncv1.Member{{Id: uid(20), Type: user}}, Removed: []string{uid(5)}},
			{GroupId: groupX, Removed: []string{uid(5)}},
			{GroupId: groupC, Removed: []string{uid(4)}},
			{GroupId: groupA, Removed: []string{groupB}},
			{GroupId: gid(8), Added: []*syncv1.Member{{Id: uid(1), Type: user}, {Id: groupC, Type: grp}}},
		},
	}}
	fetched.Body = &syncv1.SyncEvent_Fetched{Fetched: &syncv1.RunFetched{Pages: 2, Stats: &syncv1.GraphStats{Requests: 3},
		UsersDeltaLink: "https://graph/users?d=2", GroupsDeltaLink: "https://graph/groups?d=2"}}
	e.apply(twiceShuffled([]*syncv1.SyncEvent{started, users, groups, fetched}, 7))
	got := e.finished(tenant, run.ID)
	if got.Kind != store.KindDelta {
		t.Fatalf("run kind %q", got.Kind)
	}
	if a, b := e.appSide(tenant), ref.appSide(refTenant); a != b {
		t.Fatalf("app side after the delta run:\n%s\nafter a full run:\n%s", a, b)
	}
	if l, err := e.st.DeltaLinks(context.Background(), tenant); err != nil || l.Users != "https://graph/users?d=2" ||
		l.Groups != "https://graph/groups?d=2" || l.RunSeq != run.Seq {
		t.Fatalf("links after the delta run: %+v %v", l, err)
	}
}
