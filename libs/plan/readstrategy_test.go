package plan

import (
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestReadStrategyLowerBounds(t *testing.T) {
	big := ReadFacts{LastWholeReadAt: now, Users: 100_000, Groups: 5_000, MemberPages: 5_000, ScopeUsers: []int{2_000, 2_000, 2_000}}
	if got := FullReadRU(big); got != 2+101+6+2*5_000 {
		t.Errorf("full read of 100k users, 5k groups: %d RU, want 10109", got)
	}
	if got := TransitiveReadRU(big); got != 3*4*3 {
		t.Errorf("3 scope groups of 2,000 users: %d RU, want 36", got)
	}
	// An empty scope group's transitive list is still one page.
	if got := TransitiveReadRU(ReadFacts{ScopeUsers: []int{0, 999, 1000}}); got != 4*(1+1+2) {
		t.Errorf("scope groups of 0, 999, 1000 users: %d RU, want 16", got)
	}
	if got := FullReadRU(ReadFacts{Users: 999, Groups: 1000, MemberPages: 3}); got != 2+1+2+6 {
		t.Errorf("999 users, 1000 groups, 3 member pages: %d RU, want 11", got)
	}
}

func TestReadStrategyIsTransitiveOnlyWhereItServesAndIsCheaper(t *testing.T) {
	scoped := func(edit func(*ReadFacts)) ReadFacts {
		s := DefaultSettings()
		s.Scope.Groups = []string{"a", "b", "c"}
		s.Groups = GroupKinds{Include: []string{}}
		f := ReadFactsOf(s)
		f.LastWholeReadAt, f.Users, f.Groups, f.MemberPages = now.Add(-24*time.Hour), 100_000, 5_000, 5_000
		f.ScopeUsers = []int{2_000, 2_000, 2_000}
		if edit != nil {
			edit(&f)
		}
		return f
	}
	withSettings := func(edit func(*Settings)) ReadFacts {
		s := DefaultSettings()
		s.Scope.Groups = []string{"a"}
		s.Groups = GroupKinds{Include: []string{}}
		edit(&s)
		f := ReadFactsOf(s)
		f.LastWholeReadAt, f.Users, f.Groups, f.MemberPages = now.Add(-24*time.Hour), 100_000, 5_000, 5_000
		return f
	}
	for _, c := range []struct {
		name  string
		facts ReadFacts
		want  string
	}{
		{"few scope users in a large tenant", scoped(nil), ReadTransitive},
		{"no scope groups", withSettings(func(s *Settings) { s.Scope.Groups = []string{} }), ReadFull},
		{"basic tier", withSettings(func(s *Settings) { s.Plan = TierBasic }), ReadFull},
		{"imports security groups", withSettings(func(s *Settings) { s.Groups.Security = true }), ReadFull},
		{"imports one listed group", withSettings(func(s *Settings) { s.Groups.Include = []string{"g"} }), ReadFull},
		{"user filter", withSettings(func(s *Settings) { s.Scope.UserFilter = "department eq 'x'" }), ReadFull},
		{"no whole read yet", scoped(func(f *ReadFacts) { f.LastWholeReadAt = time.Time{} }), ReadFull},
		{"whole read 6 days ago", scoped(func(f *ReadFacts) { f.LastWholeReadAt = now.Add(-6 * 24 * time.Hour) }), ReadTransitive},
		{"whole read a week ago", scoped(func(f *ReadFacts) { f.LastWholeReadAt = now.Add(-FullSyncEvery) }), ReadFull},
		// 2 + 1 + 1 + 2·10 = 24 RU in full; 3 scope groups of 2,000
		// users cost 36: the whole small tenant is cheaper.
		{"small tenant", scoped(func(f *ReadFacts) { f.Users, f.Groups, f.MemberPages = 900, 10, 10 }), ReadFull},
		// Equal cost: full, which also takes delta links.
		{"equal cost", scoped(func(f *ReadFacts) {
			f.Users, f.Groups, f.MemberPages, f.ScopeUsers = 999, 999, 10, []int{1, 1, 1, 1, 1, 1}
		}), ReadFull},
	} {
		got := ReadStrategy(c.facts, now)
		if got.Strategy != c.want || got.Why == "" || got.FullRU != FullReadRU(c.facts) {
			t.Errorf("%s: %+v, want %s", c.name, got, c.want)
		}
		if got.Strategy == ReadTransitive && (got.TransitiveRU >= got.FullRU || !strings.Contains(got.Why, "less")) {
			t.Errorf("%s: transitive chosen at %d RU against %d", c.name, got.TransitiveRU, got.FullRU)
		}
	}
}
