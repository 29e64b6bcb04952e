package plan

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"
)

// Notification kinds.
const (
	NoticeSeatsExhausted = "seats_exhausted"
	NoticeSyncFailed     = "sync_failed"
	NoticeRunHeld        = "run_held"
	NoticeSyncCompleted  = "sync_completed"
)

// Notify is the tenant's notification setting: where its notification
// tasks are delivered, and whether every applied run is told too.
type Notify struct {
	// WebhookURL receives every notification task as a signed CloudEvent
	// (services/notifier). Empty: tasks are kept, and listed by the API,
	// but not sent.
	WebhookURL string `json:"webhookUrl"`
	// OnCompletion writes a sync_completed task for every run whose plan
	// is applied.
	OnCompletion bool `json:"onCompletion"`
	// CompletionRecipients are who sync_completed tasks are addressed to.
	CompletionRecipients []string `json:"completionRecipients"`
}

// Limits of the notify setting.
const (
	MaxWebhookURL           = 2048
	MaxCompletionRecipients = 50
	MaxEmail                = 254
)

func (n *Notify) normalize() {
	n.WebhookURL = strings.TrimSpace(n.WebhookURL)
	for i, r := range n.CompletionRecipients {
		n.CompletionRecipients[i] = strings.TrimSpace(r)
	}
	n.CompletionRecipients = dedupe(n.CompletionRecipients, strings.ToLower)
}

func (n Notify) validate() error {
	if n.WebhookURL != "" {
		if err := CheckWebhookURL(n.WebhookURL); err != nil {
			return fieldErr("notify.webhookUrl", "notify.webhookUrl %v", err)
		}
	}
	if len(n.CompletionRecipients) > MaxCompletionRecipients {
		return fieldErr("notify.completionRecipients", "notify.completionRecipients may list at most %d addresses", MaxCompletionRecipients)
	}
	for _, r := range n.CompletionRecipients {
		a, err := mail.ParseAddress(r)
		if err != nil || a.Address != r || a.Name != "" || len(r) > MaxEmail {
			return fieldErr("notify.completionRecipients", "notify.completionRecipients: %q is not an email address like name@contoso.com", r)
		}
	}
	return nil
}

// CheckWebhookURL says why u cannot receive notifications, or nil: it must
// be an absolute https URL without credentials. Plain http is taken only
// for a loopback host (localhost, 127.0.0.0/8, ::1), where nothing on the
// way can read or change an event: tests and a receiver on the same host.
func CheckWebhookURL(u string) error {
	if len(u) > MaxWebhookURL {
		return fmt.Errorf("must be at most %d characters", MaxWebhookURL)
	}
	p, err := url.Parse(u)
	if err != nil || !p.IsAbs() || p.Host == "" || p.Opaque != "" {
		return fmt.Errorf("must be an absolute https URL such as https://hooks.contoso.com/entrasync")
	}
	if p.User != nil {
		return fmt.Errorf("must not carry a user name or password; the events are signed instead")
	}
	if p.Fragment != "" {
		return fmt.Errorf("must not have a fragment (#...)")
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(p.Hostname()) {
			return nil
		}
		return fmt.Errorf("must use https (plain http only for localhost)")
	}
	return fmt.Errorf("must be an absolute https URL such as https://hooks.contoso.com/entrasync")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

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

// SyncCompleted tells the completion recipients a run's plan was applied,
// with its counts per action (zero counts left out).
func SyncCompleted(tenant string, runSeq int64, s Summary) Notice {
	var parts []string
	for _, a := range Actions {
		if s[a] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", a, s[a]))
		}
	}
	what := "nothing needed to change"
	if len(parts) > 0 {
		what = "applied " + strings.Join(parts, ", ")
	}
	return Notice{Kind: NoticeSyncCompleted,
		Subject: fmt.Sprintf("%s: sync %d completed", tenant, runSeq),
		Text:    fmt.Sprintf("Sync %d of %s completed: %s.", runSeq, tenant, what),
	}
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
