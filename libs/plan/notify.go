package plan

import "fmt"

// Notification kinds.
const (
	NoticeSeatsExhausted = "seats_exhausted"
	NoticeSyncFailed     = "sync_failed"
	NoticeRunHeld        = "run_held"
)

// Notice is a notification task: who is told what. Recipients are the
// emails of the app's Administrators and License managers.
type Notice struct {
	Kind    string
	Subject string
	Text    string
}

// SeatShortage decides whether a run that left unlicensed users without a
// seat tells the admins: once per shortage, not once per run. wasShort is
// whether the shortage was already known before this run; the returned
// short is what to remember for the next one.
func SeatShortage(wasShort bool, unlicensed int64, seats int, tenant string) (n *Notice, short bool) {
	if unlicensed == 0 {
		return nil, false
	}
	if wasShort {
		return nil, true
	}
	return &Notice{Kind: NoticeSeatsExhausted,
		Subject: fmt.Sprintf("%s: all %d seats are in use", tenant, seats),
		Text: fmt.Sprintf("All %d seats of %s are in use; %d enabled users in scope have no seat. "+
			"Add seats, or disable licenses of people who no longer need one.", seats, tenant, unlicensed),
	}, true
}

// RunHeld tells the admins a run waits for them.
func RunHeld(tenant string, runSeq int64, v Verdict) Notice {
	why := "the deletion guard held it"
	if v.Reason == HeldReview {
		why = "the tenant reviews every sync"
	}
	return Notice{Kind: NoticeRunHeld,
		Subject: fmt.Sprintf("%s: sync %d waits for your approval", tenant, runSeq),
		Text:    fmt.Sprintf("Sync %d of %s was not applied: %s. %s. Review its plan, then approve or reject it.", runSeq, tenant, why, upperFirst(v.Message)),
	}
}

// SyncFailed tells the admins a run failed.
func SyncFailed(tenant string, runSeq int64, reason string) Notice {
	return Notice{Kind: NoticeSyncFailed,
		Subject: fmt.Sprintf("%s: sync %d failed", tenant, runSeq),
		Text:    fmt.Sprintf("Sync %d of %s failed: %s. Nothing of it was applied; the next sync tries again.", runSeq, tenant, reason),
	}
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
