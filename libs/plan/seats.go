package plan

import "fmt"

// SeatUser is a user taking part in the seat hand-out.
type SeatUser struct {
	EntraID     string
	DisplayName string
}

// Seats hands out a tenant's seats in one run, after the user rules have
// said who keeps a seat and who wants one:
//
//  1. seats freed by leavers and disabled accounts are already back (the
//     user rules revoked them), so they go to joiners in this same run;
//  2. holders keep their seats, oldest grant first; when the pool shrank
//     below the holders, the most recent grants go back;
//  3. free seats go to candidates in Entra id order, so who gets a seat is
//     the same whichever replica plans, and a holder is never bumped for
//     a newcomer.
//
// Feed every holder (oldest grant first) to Holder, then every candidate
// (Entra id order) to Candidate. A plan that need not name every user
// may count instead: KeepHolders for the holders the pool has room for,
// Free for how many candidates Candidate would seat, Waiting for the
// candidates after them; the outcome is the same.
type Seats struct {
	pool int
	used int
	// Unlicensed counts enabled users in scope left without a seat:
	// candidates who got none, and holders whose seat went back.
	Unlicensed int64
}

// NewSeats starts a hand-out of a pool of n seats.
func NewSeats(n int) *Seats { return &Seats{pool: n} }

// Holder keeps a holder's seat while the pool has room; past that, it
// returns the revocation.
func (s *Seats) Holder(u SeatUser) (Item, bool) {
	if s.used < s.pool {
		s.used++
		return Item{}, false
	}
	s.Unlicensed++ // still enabled and in scope: now waiting for a seat
	return Item{Action: RevokeLicense, EntraID: u.EntraID, DisplayName: u.DisplayName,
		Before: Fields{"license": LicenseAssigned}, After: Fields{"license": LicenseNone},
		Reason: fmt.Sprintf("the seat pool shrank to %d; the most recent grants go back first", s.pool)}, true
}

// KeepHolders keeps the seats of the first of n holders (oldest grant
// first), as many as the pool has room for, as Holder would one by one,
// and returns how many. The holders after them are to go to Holder: each
// gives its seat back.
func (s *Seats) KeepHolders(n int64) int64 {
	k := min(n, max(int64(s.pool-s.used), 0))
	s.used += int(k)
	return k
}

// Free is how many seats no one holds: how many candidates in a row
// Candidate would give a seat.
func (s *Seats) Free() int64 { return int64(max(s.pool-s.used, 0)) }

// Waiting counts n candidates who get no seat, the pool being full, as
// Candidate would one by one.
func (s *Seats) Waiting(n int64) { s.Unlicensed += n }

// Candidate gives a candidate a seat if one is free.
func (s *Seats) Candidate(u SeatUser) (Item, bool) {
	if s.used >= s.pool {
		s.Unlicensed++
		return Item{}, false
	}
	s.used++
	return Item{Action: AssignLicense, EntraID: u.EntraID, DisplayName: u.DisplayName,
		Before: Fields{"license": LicenseNone}, After: Fields{"license": LicenseAssigned},
		Reason: fmt.Sprintf("account enabled in Entra ID and a seat was free (%d of %d used)", s.used, s.pool)}, true
}

// Used is the number of seats held after the hand-out.
func (s *Seats) Used() int { return s.used }

// NoSeatReason is what an admin is told when giving a license back finds
// the pool full.
func NoSeatReason(used, pool int) string {
	return fmt.Sprintf("no free seat (%d of %d used)", used, pool)
}

// CanAssign says whether an admin may give a license back now: the
// account must be enabled in Entra ID and a seat free.
func CanAssign(enabled bool, used, pool int) error {
	if !enabled {
		return fmt.Errorf("the account is disabled in Entra ID; it cannot hold a seat")
	}
	if used >= pool {
		return fmt.Errorf("%s", NoSeatReason(used, pool))
	}
	return nil
}
