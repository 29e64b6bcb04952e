package store

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// graphOf is a directory's edges: edge → member type.
type graphOf map[edge]string

// entraCounts counts, for every group, the users in its nested
// membership: the plain definition, walked down from each group.
func (g graphOf) entraCounts(groups []string) map[string]int {
	children := map[string][]edge{}
	for e := range g {
		children[e.group] = append(children[e.group], e)
	}
	out := map[string]int{}
	for _, root := range groups {
		seen, users := map[string]bool{root: true}, map[string]bool{}
		walk := []string{root}
		for len(walk) > 0 {
			x := walk[0]
			walk = walk[1:]
			for _, e := range children[x] {
				switch g[e] {
				case "user":
					users[e.member] = true
				case "group":
					if !seen[e.member] {
						seen[e.member] = true
						walk = append(walk, e.member)
					}
				}
			}
		}
		out[root] = len(users)
	}
	return out
}

// TestCountMovesMatchRecounts: on random nestings (cycles, devices, edges
// added, removed, added again and retyped between two refreshes), the
// counts of the last refresh moved by countMoves equal a recount of the
// new edges, with the users to look at found by belowChanges from the
// current edges alone, as the store finds them.
func TestCountMovesMatchRecounts(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			nGroups, nUsers := 2+rnd.IntN(8), 1+rnd.IntN(12)
			var groups []string
			for i := range nGroups {
				groups = append(groups, fmt.Sprintf("g%d", i))
			}
			randomEdge := func() (edge, string) {
				g := groups[rnd.IntN(nGroups)]
				switch rnd.IntN(6) {
				case 0, 1:
					return edge{g, groups[rnd.IntN(nGroups)]}, "group"
				case 2:
					return edge{g, fmt.Sprintf("d%d", rnd.IntN(3))}, "device"
				default:
					return edge{g, fmt.Sprintf("u%d", rnd.IntN(nUsers))}, "user"
				}
			}
			then := graphOf{}
			for range rnd.IntN(3 * nGroups) {
				e, typ := randomEdge()
				then[e] = typ
			}
			now := graphOf{}
			for e, typ := range then {
				now[e] = typ
			}
			// The changes, each edge's first one kept with the type the
			// edge had before it, as the store records them.
			firstBefore := map[edge]string{}
			touch := func(e edge) {
				if _, ok := firstBefore[e]; !ok {
					firstBefore[e] = now[e]
				}
			}
			for range rnd.IntN(8) {
				switch rnd.IntN(4) {
				case 0, 1: // add (or retype, when the edge is there)
					e, typ := randomEdge()
					if now[e] != typ {
						touch(e)
						now[e] = typ
					}
				case 2: // remove one
					if len(now) > 0 {
						keys := sortedEdges(now)
						e := keys[rnd.IntN(len(keys))]
						touch(e)
						delete(now, e)
					}
				case 3: // retype one to a group edge
					if len(now) > 0 {
						keys := sortedEdges(now)
						e := keys[rnd.IntN(len(keys))]
						if now[e] != "group" && e.member[0] == 'g' {
							touch(e)
							now[e] = "group"
						}
					}
				}
			}
			var changes []edgeChange
			for _, e := range sortedEdges(firstBefore) {
				changes = append(changes, edgeChange{edge: e, before: firstBefore[e], now: now[e]})
			}
			var nesting []edge
			for _, e := range sortedEdges(now) {
				if now[e] == "group" {
					nesting = append(nesting, e)
				}
			}
			below, users := belowChanges(changes, nesting)
			direct := map[string][]string{}
			for _, e := range sortedEdges(now) {
				if now[e] == "user" && slices.Contains(below, e.group) {
					users = append(users, e.member)
				}
			}
			slices.Sort(users)
			users = slices.Compact(users)
			for _, e := range sortedEdges(now) {
				if now[e] == "user" && slices.Contains(users, e.member) {
					direct[e.member] = append(direct[e.member], e.group)
				}
			}

			moves := countMoves(changes, nesting, users, direct)
			was, is := then.entraCounts(groups), now.entraCounts(groups)
			for _, g := range groups {
				if was[g]+moves[g] != is[g] {
					t.Fatalf("group %s: counted %d, moved by %d, but counts %d now\nthen %v\nnow %v\nchanges %v",
						g, was[g], moves[g], is[g], then, now, changes)
				}
			}
		})
	}
}

func sortedEdges(g map[edge]string) []edge {
	keys := make([]edge, 0, len(g))
	for e := range g {
		keys = append(keys, e)
	}
	slices.SortFunc(keys, func(a, b edge) int {
		if c := cmp.Compare(a.group, b.group); c != 0 {
			return c
		}
		return cmp.Compare(a.member, b.member)
	})
	return keys
}

// TestCountMovesJSONOneEntryPerGroup: a group whose two counts both move
// gets one entry (one write), groups that do not move none, in id order.
func TestCountMovesJSONOneEntryPerGroup(t *testing.T) {
	synced := []dbsqlc.SyncedCountMovesRow{{GroupID: "g-b", N: 1}, {GroupID: "g-c", N: 0}, {GroupID: "g-a", N: -1}}
	got, err := countMovesJSON(map[string]int{"g-a": 2, "g-b": 0, "g-d": 0, "g-e": -3}, synced)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"id":"g-a","entra":2,"synced":-1},{"id":"g-b","entra":0,"synced":1},{"id":"g-e","entra":-3,"synced":0}]`
	if string(got) != want {
		t.Errorf("moves\n got %s\nwant %s", got, want)
	}
	if got, err := countMovesJSON(map[string]int{"g-a": 0}, []dbsqlc.SyncedCountMovesRow{{GroupID: "g-a"}}); err != nil || got != nil {
		t.Errorf("nothing moves: %s %v, want nil", got, err)
	}
}
