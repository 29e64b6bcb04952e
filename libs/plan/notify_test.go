package plan

import (
	"errors"
	"strings"
	"testing"
)

func TestNotifyValidate(t *testing.T) {
	t.Parallel()
	many := make([]string, MaxCompletionRecipients+1)
	for i := range many {
		many[i] = strings.Repeat("a", i+1) + "@contoso.com"
	}
	cases := []struct {
		name  string
		n     Notify
		field string // empty: valid
	}{
		{"defaults", Notify{CompletionRecipients: []string{}}, ""},
		{"https", Notify{WebhookURL: "https://hooks.contoso.com/entrasync?k=1"}, ""},
		{"http on localhost", Notify{WebhookURL: "http://localhost:8080/hook"}, ""},
		{"http on 127.0.0.1", Notify{WebhookURL: "http://127.0.0.1:39211/"}, ""},
		{"http on ::1", Notify{WebhookURL: "http://[::1]:39211/"}, ""},
		{"http elsewhere", Notify{WebhookURL: "http://hooks.contoso.com/"}, "notify.webhookUrl"},
		{"relative", Notify{WebhookURL: "/hook"}, "notify.webhookUrl"},
		{"no host", Notify{WebhookURL: "https:///hook"}, "notify.webhookUrl"},
		{"ftp", Notify{WebhookURL: "ftp://hooks.contoso.com/"}, "notify.webhookUrl"},
		{"credentials", Notify{WebhookURL: "https://u:p@hooks.contoso.com/"}, "notify.webhookUrl"},
		{"too long", Notify{WebhookURL: "https://h.com/" + strings.Repeat("a", MaxWebhookURL)}, "notify.webhookUrl"},
		{"recipients", Notify{OnCompletion: true, CompletionRecipients: []string{"ada@contoso.com", "grace@contoso.com"}}, ""},
		{"not an email", Notify{CompletionRecipients: []string{"ada"}}, "notify.completionRecipients"},
		{"display name", Notify{CompletionRecipients: []string{"Ada <ada@contoso.com>"}}, "notify.completionRecipients"},
		{"too many", Notify{CompletionRecipients: many}, "notify.completionRecipients"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := DefaultSettings()
			s.Notify = c.n
			s.Normalize()
			err := s.Validate()
			var fe *FieldError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case c.field != "" && !errors.As(err, &fe):
				t.Fatalf("Validate: %v, want a FieldError on %s", err, c.field)
			case c.field != "" && fe.Field != c.field:
				t.Fatalf("Validate names %q (%v), want %q", fe.Field, err, c.field)
			}
		})
	}
}

func TestNotifyNormalize(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Notify = Notify{WebhookURL: " https://h.example/x ", CompletionRecipients: []string{" Ada@contoso.com", "ada@contoso.com"}}
	s.Normalize()
	if s.Notify.WebhookURL != "https://h.example/x" || len(s.Notify.CompletionRecipients) != 1 || s.Notify.CompletionRecipients[0] != "Ada@contoso.com" {
		t.Fatalf("normalized: %+v", s.Notify)
	}
	var nilList Settings = DefaultSettings()
	nilList.Notify.CompletionRecipients = nil
	nilList.Normalize()
	if nilList.Notify.CompletionRecipients == nil {
		t.Fatal("a nil recipient list stays nil; want []")
	}
}

func TestSyncCompleted(t *testing.T) {
	t.Parallel()
	n := SyncCompleted("Contoso", 7, Summary{CreateUser: 2, AssignLicense: 2})
	if n.Kind != NoticeSyncCompleted || n.Subject != "Contoso: sync 7 completed" ||
		!strings.Contains(n.Text, "createUser 2") || !strings.Contains(n.Text, "assignLicense 2") {
		t.Fatalf("notice: %+v", n)
	}
	if n := SyncCompleted("Contoso", 8, Summary{}); !strings.Contains(n.Text, "nothing needed to change") {
		t.Fatalf("empty plan: %+v", n)
	}
}
