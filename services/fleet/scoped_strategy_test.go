package fleet_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/services/graphsim"
)

// TestScopedTenantIsReadThroughTransitiveMembers: two tenants on one
// directory sync only the members of a group with nested groups. One
// imports no groups, so once a whole read has sized it, its runs read
// only the scope group's transitiveMembers (the simulator's request log
// shows nothing else); the other imports groups and reads the whole
// directory. Both end with the same app users, those graphsim's
// TransitiveUsers gives; a user taken out of a nested group leaves both
// apps, and the transitive tenant's mirror keeps every user it did not
// see (a scoped read tombstones nobody).
func TestScopedTenantIsReadThroughTransitiveMembers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	scoped := h.addEntraTenant(smallSpec)
	// The same directory under a second Entra tenant (own app
	// registration), read the whole way.
	whole := entraTenant{ID: uuid.NewString(), ClientID: uuid.NewString(), Secret: "s3cret-" + uuid.NewString(), Dir: scoped.Dir}
	h.sim.AddTenant(whole.ID, whole.ClientID, whole.Secret, whole.Dir)
	dir := scoped.Dir
	chain := dir.NestedChain()
	outer := chain[0]
	if len(chain) < 3 {
		t.Fatalf("nesting chain %v: want three levels", chain)
	}

	a := h.connect(scoped, 1000)
	b := h.connect(whole, 1000)
	expected := func() map[string]bool {
		want := map[string]bool{}
		for _, u := range dir.TransitiveUsers(outer) {
			if u.UserType != "Guest" {
				want[u.ID] = true
			}
		}
		return want
	}
	sameUsers := func(when string) {
		t.Helper()
		ua, ub, want := h.appUsers(a), h.appUsers(b), expected()
		if !reflect.DeepEqual(ua, ub) {
			t.Fatalf("%s: app users differ between the transitive and the whole read:\ntransitive %v\nwhole      %v", when, ua, ub)
		}
		if len(ua) != len(want) {
			t.Fatalf("%s: %d app users, want the scope's %d", when, len(ua), len(want))
		}
		for id := range ua {
			if !want[id] {
				t.Fatalf("%s: app user %s is not in the scope group", when, id)
			}
		}
	}

	noGroups := map[string]any{"microsoft365": false, "security": false, "distribution": false, "include": []string{}}
	h.settle(a, h.patchTenant(a, map[string]any{"scope": map[string]any{"groups": []string{outer}}, "groups": noGroups}), "succeeded")
	h.settle(b, h.patchTenant(b, map[string]any{"scope": map[string]any{"groups": []string{outer}}}), "succeeded")
	sameUsers("after the first reads")
	mirrored := h.mirrorUsers(a)

	// The sized tenant is read transitively from now on.
	transitiveRun := func() runView {
		t.Helper()
		before := len(h.sim.Requests())
		run := h.sync(a)
		if s := h.readStrategy(run.RunID); s != "transitive" || run.Kind != "full" || run.ReadStrategy != s {
			t.Fatalf("run %s: kind %s, read %s (the api says %q); want a full run read transitively", run.RunID, run.Kind, s, run.ReadStrategy)
		}
		reqs, ru := 0, 0
		for _, r := range h.sim.Requests()[before:] {
			if !strings.EqualFold(r.Tenant, scoped.ID) || !strings.HasPrefix(r.Path, "/v1.0/") {
				continue
			}
			reqs++
			ru += r.ResourceUnits
			if !strings.EqualFold(r.Path, "/v1.0/groups/"+outer+"/transitiveMembers/graph.user") {
				t.Errorf("the transitive run sent %s %s", r.Method, r.Path)
			}
		}
		if reqs != 1 || run.GraphRequests != 1 {
			t.Errorf("transitive run: %d Graph requests in the log, %d counted, want 1 (%d users fit a page)",
				reqs, run.GraphRequests, len(dir.TransitiveUsers(outer)))
		}
		t.Logf("transitive run %s: %d requests, %d RU", run.RunID, reqs, ru)
		return run
	}
	transitiveRun()
	h.sync(b)
	sameUsers("after a transitive read")
	if got := h.mirrorUsers(a); !reflect.DeepEqual(got, mirrored) {
		t.Fatalf("the transitive read changed the mirror's users: %d live before, %d after", len(mirrored), len(got))
	}

	// A user leaves the innermost group: it leaves the scope, and the app.
	inner := chain[len(chain)-1]
	var leaver string
	for _, m := range dir.DirectMembers(inner) {
		if m.Type != graphsim.TypeUser || !expected()[m.ID] {
			continue
		}
		if err := dir.RemoveMember(inner, m.ID); err != nil {
			t.Fatal(err)
		}
		if !expected()[m.ID] {
			leaver = m.ID
			break
		}
		if err := dir.AddMember(inner, m); err != nil { // in the scope another way: put back
			t.Fatal(err)
		}
	}
	if leaver == "" {
		t.Fatalf("no user of group %s is in the scope through it alone", inner)
	}
	transitiveRun()
	h.sync(b)
	if _, ok := h.appUsers(a)[leaver]; ok {
		t.Fatalf("user %s left the scope group but is still in the transitive tenant's app", leaver)
	}
	sameUsers("after a user left the scope")
	if got := h.mirrorUsers(a); !reflect.DeepEqual(got, mirrored) || !got[leaver] {
		t.Fatalf("the transitive read changed the mirror's users (leaver %s kept: %v)", leaver, got[leaver])
	}
}

// mirrorUsers are the ids of the users a tenant's mirror holds alive.
func (h *harness) mirrorUsers(tenant string) map[string]bool {
	h.t.Helper()
	rows, err := h.db.Query(h.t.Context(), `SELECT entra_id FROM dir_users WHERE tenant_id = $1 AND NOT deleted`, tenant)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			h.t.Fatal(err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// readStrategy is how a run read the directory (sync_runs.read_strategy).
func (h *harness) readStrategy(runID string) string {
	h.t.Helper()
	var s string
	if err := h.db.QueryRow(h.t.Context(), `SELECT read_strategy FROM sync_runs WHERE id = $1`, runID).Scan(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}
