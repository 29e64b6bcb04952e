package reconciler

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// validate checks an event before anything is written, so that a bad event
// is rejected whole with a message that says what is wrong. The store
// checks again what only it can (the run exists, its seq matches, the page
// is within the run).
func validate(ev *syncv1.SyncEvent) error {
	if ev == nil {
		return errors.New("no event")
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !isUUID(ev.GetTenantId()) {
		bad("tenant_id %q is not a UUID", ev.GetTenantId())
	}
	if !isUUID(ev.GetRunId()) {
		bad("run_id %q is not a UUID", ev.GetRunId())
	}
	if ev.GetRunSeq() <= 0 {
		bad("run_seq %d is not positive", ev.GetRunSeq())
	}
	page := ev.GetPage()
	dataPage := func() {
		if page < 0 {
			bad("page %d of a data page is negative", page)
		}
	}
	controlEvent := func(what string) {
		if page != -1 {
			bad("page of %s is %d, want -1", what, page)
		}
	}
	switch b := ev.GetBody().(type) {
	case nil:
		bad("event has no body")
	case *syncv1.SyncEvent_Started:
		controlEvent("RunStarted")
		if a := b.Started.GetAttempt(); a < 0 || a > syncv1.MaxFetchAttempts {
			bad("RunStarted.attempt %d is out of range 0..%d", a, syncv1.MaxFetchAttempts)
		}
	case *syncv1.SyncEvent_Fetched:
		controlEvent("RunFetched")
		f := b.Fetched
		if n := f.GetPages(); n < 0 || n > syncv1.AttemptPageSpan {
			bad("RunFetched.pages %d is out of range 0..%d", n, syncv1.AttemptPageSpan)
		}
		// An attempt's pages start at a multiple of the span, so that no
		// two attempts share a page number.
		if first := f.GetFirstPage(); first < 0 || first%syncv1.AttemptPageSpan != 0 ||
			first > (syncv1.MaxFetchAttempts-1)*syncv1.AttemptPageSpan {
			bad("RunFetched.first_page %d is not where an attempt's pages start (a multiple of %d up to %d)",
				first, syncv1.AttemptPageSpan, (syncv1.MaxFetchAttempts-1)*syncv1.AttemptPageSpan)
		}
		checkStats(f.GetStats(), bad)
		for name, l := range map[string]string{"users_delta_link": f.GetUsersDeltaLink(), "groups_delta_link": f.GetGroupsDeltaLink()} {
			if strings.TrimSpace(l) != l || strings.ContainsRune(l, 0) {
				bad("RunFetched.%s %q is not a link", name, l)
			}
		}
		if f.GetCaughtUp() && (f.GetUsersDeltaLink() == "" || f.GetGroupsDeltaLink() == "") {
			bad("RunFetched.caught_up without both delta links: a catch-up round ends with them")
		}
		if f.GetUsersFiltered() && (f.GetUsersDeltaLink() != "" || f.GetGroupsDeltaLink() != "") {
			bad("RunFetched.users_filtered with delta links: a listing through a users filter takes none")
		}
	case *syncv1.SyncEvent_Failed:
		controlEvent("RunFailed")
		checkStats(b.Failed.GetStats(), bad)
	case *syncv1.SyncEvent_Users:
		dataPage()
		for i, u := range b.Users.GetUsers() {
			if strings.TrimSpace(u.GetId()) == "" {
				bad("users[%d] has no id", i)
			}
		}
	case *syncv1.SyncEvent_Groups:
		dataPage()
		for i, g := range b.Groups.GetGroups() {
			if strings.TrimSpace(g.GetId()) == "" {
				bad("groups[%d] has no id", i)
			}
			if ts := g.GetRenewedDateTime(); ts != nil && ts.CheckValid() != nil {
				bad("groups[%d] (%s) has renewed_date_time %v: %v", i, g.GetId(), ts, ts.CheckValid())
			}
		}
	case *syncv1.SyncEvent_Members:
		dataPage()
		m := b.Members
		checkList("members page", m.GetGroupId(), m.GetPart(), bad)
		for i, mem := range m.GetMembers() {
			if strings.TrimSpace(mem.GetId()) == "" {
				bad("members[%d] has no id", i)
			}
			if _, ok := memberTypes[mem.GetType()]; !ok {
				bad("members[%d] (%s) has type %v", i, mem.GetId(), mem.GetType())
			}
		}
	case *syncv1.SyncEvent_TransitiveMembers:
		dataPage()
		t := b.TransitiveMembers
		checkList("transitive members page", t.GetGroupId(), t.GetPart(), bad)
		for i, id := range t.GetUserIds() {
			if strings.TrimSpace(id) == "" {
				bad("user_ids[%d] is empty", i)
			}
		}
	case *syncv1.SyncEvent_UsersDelta:
		dataPage()
		d := b.UsersDelta
		for i, u := range d.GetUsers() {
			if strings.TrimSpace(u.GetId()) == "" {
				bad("users[%d] has no id", i)
			}
		}
		checkRemoved(d.GetRemoved(), bad)
	case *syncv1.SyncEvent_GroupsDelta:
		dataPage()
		d := b.GroupsDelta
		for i, g := range d.GetGroups() {
			if strings.TrimSpace(g.GetId()) == "" {
				bad("groups[%d] has no id", i)
			}
			if ts := g.GetRenewedDateTime(); ts != nil && ts.CheckValid() != nil {
				bad("groups[%d] (%s) has renewed_date_time %v: %v", i, g.GetId(), ts, ts.CheckValid())
			}
		}
		checkRemoved(d.GetRemoved(), bad)
		seen := map[string]bool{}
		for i, md := range d.GetMembers() {
			what := fmt.Sprintf("members[%d]", i)
			checkList(what, md.GetGroupId(), 0, bad)
			if seen[md.GetGroupId()] {
				bad("%s: group %s has member changes twice on the page", what, md.GetGroupId())
			}
			seen[md.GetGroupId()] = true
			for j, mem := range md.GetAdded() {
				if strings.TrimSpace(mem.GetId()) == "" {
					bad("%s.added[%d] has no id", what, j)
				}
				if _, ok := memberTypes[mem.GetType()]; !ok {
					bad("%s.added[%d] (%s) has type %v", what, j, mem.GetId(), mem.GetType())
				}
			}
			for j, id := range md.GetRemoved() {
				if strings.TrimSpace(id) == "" {
					bad("%s.removed[%d] is empty", what, j)
				}
			}
		}
	case *syncv1.SyncEvent_Unreadable:
		dataPage()
		u := b.Unreadable
		checkList("unreadable group", u.GetGroupId(), 0, bad)
		if st := u.GetStatus(); st < 400 || st > 599 {
			bad("unreadable group %s has status %d, not an HTTP error", u.GetGroupId(), st)
		}
	default:
		bad("event body %T is not known", b)
	}
	return errors.Join(errs...)
}

func checkList(what, groupID string, part int32, bad func(string, ...any)) {
	if strings.TrimSpace(groupID) == "" {
		bad("%s has no group_id", what)
	}
	if part < 0 {
		bad("%s part %d is negative", what, part)
	}
}

func checkRemoved(removed []*syncv1.Removed, bad func(string, ...any)) {
	for i, r := range removed {
		if strings.TrimSpace(r.GetId()) == "" {
			bad("removed[%d] has no id", i)
		}
	}
}

func checkStats(s *syncv1.GraphStats, bad func(string, ...any)) {
	if s.GetRequests() < 0 || s.GetThrottled() < 0 || s.GetRetries() < 0 {
		bad("graph stats %v has a negative count", s)
	}
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

var memberTypes = map[syncv1.MemberType]store.MemberType{
	syncv1.MemberType_MEMBER_TYPE_USER:              store.MemberUser,
	syncv1.MemberType_MEMBER_TYPE_GROUP:             store.MemberGroup,
	syncv1.MemberType_MEMBER_TYPE_DEVICE:            store.MemberDevice,
	syncv1.MemberType_MEMBER_TYPE_ORG_CONTACT:       store.MemberOrgContact,
	syncv1.MemberType_MEMBER_TYPE_SERVICE_PRINCIPAL: store.MemberServicePrincipal,
	syncv1.MemberType_MEMBER_TYPE_OTHER:             store.MemberOther,
}

func dirUsers(in []*syncv1.User) []store.DirUser {
	out := make([]store.DirUser, len(in))
	for i, u := range in {
		out[i] = store.DirUser{
			ID: u.GetId(), DisplayName: u.GetDisplayName(), Mail: u.GetMail(),
			UserPrincipalName: u.GetUserPrincipalName(), GivenName: u.GetGivenName(), Surname: u.GetSurname(),
			JobTitle: u.GetJobTitle(), Department: u.GetDepartment(), UserType: u.GetUserType(),
			AccountEnabled: u.GetAccountEnabled(),
		}
	}
	return out
}

func dirGroups(in []*syncv1.Group) []store.DirGroup {
	out := make([]store.DirGroup, len(in))
	for i, g := range in {
		out[i] = store.DirGroup{
			ID: g.GetId(), DisplayName: g.GetDisplayName(), Description: g.GetDescription(), Mail: g.GetMail(),
			GroupTypes: g.GetGroupTypes(), SecurityEnabled: g.GetSecurityEnabled(), MailEnabled: g.GetMailEnabled(),
			MembershipRule: g.GetMembershipRule(),
		}
		if ts := g.GetRenewedDateTime(); ts != nil {
			at := ts.AsTime()
			out[i].RenewedAt = &at
		}
	}
	return out
}

func dirMembers(in []*syncv1.Member) []store.DirMember {
	out := make([]store.DirMember, len(in))
	for i, m := range in {
		out[i] = store.DirMember{ID: m.GetId(), Type: memberTypes[m.GetType()], DisplayName: m.GetDisplayName()}
	}
	return out
}

func dirRemoved(in []*syncv1.Removed) []store.DirRemoved {
	out := make([]store.DirRemoved, len(in))
	for i, r := range in {
		out[i] = store.DirRemoved{ID: r.GetId(), Restorable: r.GetRestorable()}
	}
	return out
}

func membersDeltas(in []*syncv1.GroupMembersDelta) []store.MembersDelta {
	out := make([]store.MembersDelta, len(in))
	for i, md := range in {
		out[i] = store.MembersDelta{GroupID: md.GetGroupId(), Added: dirMembers(md.GetAdded()), Removed: md.GetRemoved()}
	}
	return out
}

func graphStats(s *syncv1.GraphStats) store.GraphStats {
	return store.GraphStats{Requests: s.GetRequests(), Throttled: s.GetThrottled(), Retries: s.GetRetries()}
}
