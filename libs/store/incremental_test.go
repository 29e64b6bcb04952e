package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// world is a random directory that changes between syncs: users, groups
// nested into each other (cycles included), and direct member lists.
type world struct {
	rng     *rand.Rand
	next    int                        // next new user or group number
	users   map[string]bool            // id -> account enabled
	groups  map[string]bool            // present in Entra ID
	members map[string]map[string]bool // group -> member id (user or group)
	// contacts are users the member lists show as organizational
	// contacts. Entra ID never changes an object's type, but a page can
	// say another type than the last one did, and the mirror follows it.
	contacts map[string]bool
	// renamed counts each user's and group's renames: part of its
	// display name.
	renamed map[string]int
}

func uID(n int) string       { return fmt.Sprintf("00000001-0000-4000-8000-%012d", n) }
func gID(n int) string       { return fmt.Sprintf("00000002-0000-4000-8000-%012d", n) }
func isGroup(id string) bool { return strings.HasPrefix(id, "00000002") }

func newWorld(seed uint64, users, groups int) *world {
	w := &world{rng: rand.New(rand.NewPCG(seed, 1)), users: map[string]bool{}, groups: map[string]bool{},
		members: map[string]map[string]bool{}, contacts: map[string]bool{}, renamed: map[string]int{}}
	for range users {
		w.next++
		w.users[uID(w.next)] = true
	}
	for range groups {
		w.next++
		w.groups[gID(w.next)] = true
	}
	for range users * 3 {
		w.addEdge(w.pick(w.groupIDs()), w.pick(w.userIDs()))
	}
	for range groups * 2 {
		w.addEdge(w.pick(w.groupIDs()), w.pick(w.groupIDs()))
	}
	return w
}

func (w *world) userIDs() []string  { return sortedKeys(w.users) }
func (w *world) groupIDs() []string { return sortedKeys(w.groups) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (w *world) pick(ids []string) string { return ids[w.rng.IntN(len(ids))] }

func (w *world) addEdge(group, member string) {
	if group == member {
		return
	}
	if w.members[group] == nil {
		w.members[group] = map[string]bool{}
	}
	w.members[group][member] = true
}

// churn changes the directory the way an organisation does between two
// syncs: members come and go at every depth, users join and leave, an
// account is disabled, a group is deleted and another created.
func (w *world) churn() {
	for range 6 {
		g := w.pick(w.groupIDs())
		if ms := sortedKeys(w.members[g]); len(ms) > 0 && w.rng.IntN(2) == 0 {
			delete(w.members[g], w.pick(ms))
		} else {
			w.addEdge(g, w.pick(w.userIDs()))
		}
	}
	for range 2 {
		g, h := w.pick(w.groupIDs()), w.pick(w.groupIDs())
		if w.members[g][h] {
			delete(w.members[g], h)
		} else {
			w.addEdge(g, h)
		}
	}
	for range 2 {
		delete(w.users, w.pick(w.userIDs()))
		w.next++
		id := uID(w.next)
		w.users[id] = true
		for range 1 + w.rng.IntN(3) {
			w.addEdge(w.pick(w.groupIDs()), id)
		}
	}
	w.users[w.pick(w.userIDs())] = false
	w.renamed[w.pick(w.userIDs())]++
	w.renamed[w.pick(w.groupIDs())]++
	if u := w.pick(w.userIDs()); !w.users[u] {
		w.users[u] = true // enabled again
	}
	if u := w.pick(w.userIDs()); w.rng.IntN(2) == 0 {
		w.contacts[u] = !w.contacts[u]
	}
	if w.rng.IntN(3) == 0 {
		delete(w.groups, w.pick(w.groupIDs()))
		w.next++
		id := gID(w.next)
		w.groups[id] = true
		w.addEdge(w.pick(w.groupIDs()), id)
		w.addEdge(id, w.pick(w.userIDs()))
	}
}

// entraCount is how many users are in group g's nested membership, as
// Graph's transitiveMembers would count them.
func (w *world) entraCount(g string) int {
	seen, users := map[string]bool{g: true}, map[string]bool{}
	queue := []string{g}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for id := range w.members[next] {
			switch {
			case isGroup(id) && w.groups[id] && !seen[id]:
				seen[id] = true
				queue = append(queue, id)
			case !isGroup(id) && !w.contacts[id]:
				if _, ok := w.users[id]; ok {
					users[id] = true
				}
			}
		}
	}
	return len(users)
}

// sync runs one full sync of the world into a tenant of st.
func (w *world) sync(t *testing.T, st *store.Store, tenant string, at time.Time) store.Run {
	t.Helper()
	ctx := context.Background()
	r, err := st.CreateRun(ctx, store.NewRun{TenantID: tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	ref := store.PageRef{TenantID: tenant, RunID: r.ID, RunSeq: r.Seq}
	var users []store.DirUser
	for _, id := range w.userIDs() {
		users = append(users, store.DirUser{ID: id, DisplayName: fmt.Sprintf("User %s (%d)", id[24:], w.renamed[id]), Mail: id[24:] + "@contoso.com",
			UserPrincipalName: id[24:] + "@contoso.com", UserType: "Member", AccountEnabled: w.users[id]})
	}
	must(t, st.ApplyUsersPage(ctx, ref, users, at))
	var groups []store.DirGroup
	for _, id := range w.groupIDs() {
		groups = append(groups, store.DirGroup{ID: id, DisplayName: fmt.Sprintf("Group %s (%d)", id[24:], w.renamed[id]), SecurityEnabled: true})
	}
	ref.Page = 1
	must(t, st.ApplyGroupsPage(ctx, ref, groups, at))
	for _, g := range w.groupIDs() {
		var ms []store.DirMember
		for _, id := range sortedKeys(w.members[g]) {
			switch {
			case isGroup(id) && w.groups[id]:
				ms = append(ms, store.DirMember{ID: id, Type: store.MemberGroup})
			case !isGroup(id):
				if _, ok := w.users[id]; !ok {
					continue
				}
				typ := store.MemberUser
				if w.contacts[id] {
					typ = store.MemberOrgContact
				}
				ms = append(ms, store.DirMember{ID: id, Type: typ})
			}
		}
		ref.Page++
		must(t, st.ApplyMembersPage(ctx, ref, store.MembersPage{GroupID: g, Last: true, Members: ms}, at))
	}
	must(t, st.MarkRunFetched(ctx, ref, store.Fetched{Pages: int(ref.Page) + 1}, at))
	done, err := st.TryFinalize(ctx, tenant, r.ID, at)
	if err != nil || !done {
		t.Fatalf("finalize run %d: %v %v", r.Seq, done, err)
	}
	run, err := st.GetRun(ctx, tenant, r.ID)
	must(t, err)
	return run
}

// side is one of the two stores the test compares.
type side struct {
	name   string
	st     *store.Store
	db     *pgxpool.Pool
	tenant string
}

func newSide(t *testing.T, name string, opts ...store.Option) *side {
	st, url := storetest.NewWithURL(t, opts...)
	db, err := pgxpool.New(context.Background(), url)
	must(t, err)
	t.Cleanup(db.Close)
	s := &side{name: name, st: st, db: db, tenant: newTenant(t, st, 30).ID}
	ctx := context.Background()
	set, err := st.TenantSettings(ctx, s.tenant)
	must(t, err)
	set.DeletionGuard = plan.DeletionGuard{Percent: 100, Minimum: plan.MaxGuardMinimum}
	// Entra ID overwrites an admin's edit of a name or email: the plan
	// after an edit has to decide that user again to see it.
	set.LocalEdits = plan.EditsOverwrite
	_, _, err = st.UpdateSettings(ctx, s.tenant, set)
	must(t, err)
	for _, n := range []string{"R1", "R2"} {
		_, err := st.PutGrantName(ctx, s.tenant, plan.KindRole, n)
		must(t, err)
	}
	_, err = st.PutGrantName(ctx, s.tenant, plan.KindSharing, "S1")
	must(t, err)
	return s
}

// rows reads a query's rows as sorted strings.
func (s *side) rows(t *testing.T, query string, args ...any) []string {
	t.Helper()
	rs, err := s.db.Query(context.Background(), query, args...)
	must(t, err)
	defer rs.Close()
	var out []string
	for rs.Next() {
		vals, err := rs.Values()
		must(t, err)
		out = append(out, fmt.Sprint(vals...))
	}
	must(t, rs.Err())
	slices.Sort(out)
	return out
}

// state is what the app has, and what the run's plan said, without the
// tenant's and run's own ids.
func (s *side) state(t *testing.T, runID string) map[string][]string {
	return map[string][]string{
		"plan": s.rows(t, `SELECT action, ' ', entra_id, ' ', COALESCE(group_id, ''), ' ', COALESCE(role, ''), ' ',
			reason, ' ', COALESCE(before::text, ''), ' ', COALESCE(after::text, '') FROM sync_plan_items WHERE tenant_id = $1 AND run_id = $2`, s.tenant, runID),
		"users": s.rows(t, `SELECT entra_id, ' ', license, ' ', enabled, ' ', display_name, ' ', email, ' ',
			COALESCE(license_run_seq, 0) FROM app_users WHERE tenant_id = $1`, s.tenant),
		"roles": s.rows(t, `SELECT user_id, ' ', role FROM app_user_roles WHERE tenant_id = $1`, s.tenant),
		"groups": s.rows(t, `SELECT entra_id, ' ', status, ' ', synced_member_count FROM app_groups WHERE tenant_id = $1`,
			s.tenant),
		"memberships": s.rows(t, `SELECT group_id, ' ', user_id FROM app_group_members WHERE tenant_id = $1`, s.tenant),
		"grants": s.rows(t, `SELECT user_id, ' ', kind, ' ', name, ' ', group_id FROM app_user_grants WHERE tenant_id = $1`,
			s.tenant),
	}
}

// TestIncrementalPlansEqualFullOnes: a tenant whose plans recompute only
// the memberships and grants of what changed ends every run with the
// same plan and the same app side as one that recomputes everything,
// over rounds of random churn at every depth of nesting (cycles
// included), with roles and sharing bound, groups switched off and on,
// archived and deleted through the API in between. ENTRASYNC_SEED
// replays one seed.
func TestIncrementalPlansEqualFullOnes(t *testing.T) {
	t.Parallel()
	seeds := []uint64{1, 2}
	if v := os.Getenv("ENTRASYNC_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		must(t, err)
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			incremental, full := newSide(t, "incremental"), newSide(t, "full", store.WithFullMemberships())
			w := newWorld(seed, 40, 24)
			api := rand.New(rand.NewPCG(seed, 2))
			at := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
			recomputed := 0
			for round := range 10 {
				at = at.Add(time.Hour)
				if round > 0 {
					// Every third round the directory stands still: only the
					// admins' changes make the plan.
					if round%3 != 0 {
						w.churn()
					}
					// The same admin actions on both sides.
					ctx := context.Background()
					gs := incremental.rows(t, `SELECT entra_id FROM app_groups WHERE tenant_id = $1`, incremental.tenant)
					for range 2 {
						g := gs[api.IntN(len(gs))]
						var patch store.GroupBindingPatch
						switch api.IntN(6) {
						case 0, 1:
							roles := []string{[]string{"R1", "R2", plan.RoleAdministrator}[api.IntN(3)]}
							patch.Roles = &roles
						case 2:
							sharing := []string{"S1"}
							if api.IntN(2) == 0 {
								sharing = []string{}
							}
							patch.Sharing = &sharing
						case 3, 4:
							on := api.IntN(2) == 0
							patch.Enabled = &on
						case 5:
							for _, s := range []*side{incremental, full} {
								_, _ = s.st.ArchiveGroup(ctx, s.tenant, g)
							}
							continue
						}
						for _, s := range []*side{incremental, full} {
							// A refused change (an orphaned group's switch) is
							// refused on both sides alike.
							_, _ = s.st.UpdateGroupGrants(ctx, s.tenant, g, patch)
						}
					}
					if api.IntN(4) == 0 {
						g := gs[api.IntN(len(gs))]
						for _, s := range []*side{incremental, full} {
							_ = s.st.DeleteGroup(ctx, s.tenant, g)
						}
					}
					// Admins edit users too: the next plan decides those again.
					us := incremental.rows(t, `SELECT entra_id FROM app_users WHERE tenant_id = $1`, incremental.tenant)
					for range 2 {
						u := us[api.IntN(len(us))]
						var patch store.UserPatch
						switch api.IntN(5) {
						case 0:
							name := fmt.Sprintf("Edited %d", round)
							patch.DisplayName = &name
						case 1:
							email := fmt.Sprintf("edited%d@fabrikam.com", round)
							patch.Email = &email
						case 2:
							license := store.LicenseDisabled
							patch.License = &license
						case 3:
							license := store.LicenseAssigned
							patch.License = &license
						case 4:
							roles := []string{plan.RoleAdministrator}
							patch.Roles = &roles
						}
						for _, s := range []*side{incremental, full} {
							// No free seat, or a disabled account, refuses a
							// license on both sides alike.
							_, _ = s.st.UpdateAppUser(ctx, s.tenant, u, patch)
						}
					}
				}
				stale := incremental.rows(t, `SELECT memberships_stale FROM tenants WHERE id = $1`, incremental.tenant)
				if round > 0 && stale[0] == "false" {
					recomputed++
				}
				ri, rf := w.sync(t, incremental.st, incremental.tenant, at), w.sync(t, full.st, full.tenant, at)
				if ri.Status != store.StatusSucceeded || rf.Status != store.StatusSucceeded {
					t.Fatalf("round %d: runs %s and %s", round, ri.Status, rf.Status)
				}
				got, want := incremental.state(t, ri.ID), full.state(t, rf.ID)
				for _, table := range sortedKeys(want) {
					if !slices.Equal(got[table], want[table]) {
						t.Fatalf("round %d: %s differ:\n%s", round, table, diffLines(got[table], want[table]))
					}
				}
				// Entra's member counts come from the mirror's edges.
				for _, s := range []*side{incremental, full} {
					for _, row := range s.rows(t, `SELECT entra_id, ' ', entra_member_count FROM app_groups
						WHERE tenant_id = $1 AND status = 'enabled'`, s.tenant) {
						id, n, _ := strings.Cut(row, " ")
						if want := fmt.Sprint(w.entraCount(id)); n != want {
							t.Fatalf("round %d (%s): group %s counts %s users in Entra ID, want %s", round, s.name, id, n, want)
						}
					}
				}
				if left := incremental.rows(t, `SELECT group_id FROM dir_dirty_groups WHERE tenant_id = $1`,
					incremental.tenant); len(left) != 0 {
					t.Fatalf("round %d: groups still marked after the plan was applied: %v", round, left)
				}
				if left := incremental.rows(t, `SELECT entra_id FROM app_dirty_users WHERE tenant_id = $1`,
					incremental.tenant); len(left) != 0 {
					t.Fatalf("round %d: users still marked after the plan was applied: %v", round, left)
				}
			}
			// A group switched off keeps its members while Entra ID's
			// change; switched on again, it follows Entra ID at once.
			ctx := context.Background()
			var g string
			for _, id := range w.groupIDs() {
				if len(w.members[id]) > 0 && len(incremental.rows(t, `SELECT 1 FROM app_groups
					WHERE tenant_id = $1 AND entra_id = $2 AND status = 'enabled'`, incremental.tenant, id)) > 0 {
					g = id
					break
				}
			}
			if g == "" {
				t.Fatal("no enabled group with members is left")
			}
			for _, step := range []bool{false, true} {
				on := step
				for _, s := range []*side{incremental, full} {
					_, err := s.st.UpdateGroupGrants(ctx, s.tenant, g, store.GroupBindingPatch{Enabled: &on})
					must(t, err)
				}
				if !on {
					for _, id := range sortedKeys(w.members[g]) {
						delete(w.members[g], id)
					}
					w.addEdge(g, w.pick(w.userIDs()))
				}
				at = at.Add(time.Hour)
				ri, rf := w.sync(t, incremental.st, incremental.tenant, at), w.sync(t, full.st, full.tenant, at)
				got, want := incremental.state(t, ri.ID), full.state(t, rf.ID)
				for _, table := range sortedKeys(want) {
					if !slices.Equal(got[table], want[table]) {
						t.Fatalf("group switched on %v: %s differ:\n%s", on, table, diffLines(got[table], want[table]))
					}
				}
			}
			if recomputed < 9 {
				t.Fatalf("only %d of 9 later rounds planned incrementally", recomputed)
			}
		})
	}
}

// diffLines shows the lines only one side has.
func diffLines(got, want []string) string {
	var b strings.Builder
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "  only incremental: %s\n", g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "  only full:        %s\n", w)
		}
	}
	return b.String()
}

// TestNewGroupNestedInAnotherPassesItsMembersUp: a group created in Entra
// ID inside an existing one, with a user who was in no group, makes that
// user a member of the existing group and of every group above it, in an
// incremental plan as in a full one. The new group is one the groups pass
// creates, which recomputes it without the groups above it: the walk up
// from its member must not stop at it.
func TestNewGroupNestedInAnotherPassesItsMembersUp(t *testing.T) {
	t.Parallel()
	incremental, full := newSide(t, "incremental"), newSide(t, "full", store.WithFullMemberships())
	w := &world{users: map[string]bool{uID(1): true, uID(2): true}, groups: map[string]bool{gID(3): true, gID(4): true},
		members: map[string]map[string]bool{}, contacts: map[string]bool{}}
	w.addEdge(gID(3), gID(4)) // top ⊇ middle
	w.addEdge(gID(4), uID(1))
	at := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	w.sync(t, incremental.st, incremental.tenant, at)
	w.sync(t, full.st, full.tenant, at)

	w.groups[gID(5)] = true // new, under middle, with the user no group had
	w.addEdge(gID(4), gID(5))
	w.addEdge(gID(5), uID(2))
	at = at.Add(time.Hour)
	ri, rf := w.sync(t, incremental.st, incremental.tenant, at), w.sync(t, full.st, full.tenant, at)
	got, want := incremental.state(t, ri.ID), full.state(t, rf.ID)
	wantMembers := []string{gID(3) + " " + uID(1), gID(3) + " " + uID(2), gID(4) + " " + uID(1), gID(4) + " " + uID(2),
		gID(5) + " " + uID(2)}
	if !slices.Equal(want["memberships"], wantMembers) {
		t.Fatalf("full plan's memberships:\n%s", diffLines(want["memberships"], wantMembers))
	}
	for _, table := range sortedKeys(want) {
		if !slices.Equal(got[table], want[table]) {
			t.Fatalf("%s differ:\n%s", table, diffLines(got[table], want[table]))
		}
	}
}
