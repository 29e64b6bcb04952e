package api_test

import (
	"bytes"
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/plan"
)

// TestNotifySettingIsPatchedAndValidated: the notify setting merges like
// the others; each bad value is a 400 naming its field and changes
// nothing.
func TestNotifySettingIsPatchedAndValidated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	if got := e.tenant(ten.ID).Notify; !reflect.DeepEqual(got, plan.Notify{CompletionRecipients: []string{}}) {
		t.Fatalf("default notify %+v", got)
	}
	r := e.patch(ten.ID, `{"notify": {"webhookUrl": "https://hooks.contoso.com/entrasync", "onCompletion": true,
		"completionRecipients": ["it@contoso.com", "IT@contoso.com"]}}`)
	if r.status != http.StatusOK {
		t.Fatalf("patch notify: %d %s", r.status, r.body)
	}
	want := plan.Notify{WebhookURL: "https://hooks.contoso.com/entrasync", OnCompletion: true,
		CompletionRecipients: []string{"it@contoso.com"}}
	if got := e.tenant(ten.ID).Notify; !reflect.DeepEqual(got, want) {
		t.Fatalf("notify %+v, want %+v", got, want)
	}
	// Members left out keep their value.
	if r := e.patch(ten.ID, `{"notify": {"onCompletion": false}}`); r.status != http.StatusOK {
		t.Fatalf("patch onCompletion: %d %s", r.status, r.body)
	}
	want.OnCompletion = false
	before := e.tenant(ten.ID)
	if !reflect.DeepEqual(before.Notify, want) {
		t.Fatalf("notify %+v, want %+v", before.Notify, want)
	}
	for _, c := range []struct{ name, value, field, message string }{
		{"plain http", `{"webhookUrl": "http://hooks.contoso.com/x"}`, "notify.webhookUrl", "must use https"},
		{"relative", `{"webhookUrl": "/hook"}`, "notify.webhookUrl", "absolute https URL"},
		{"credentials", `{"webhookUrl": "https://a:b@hooks.contoso.com/"}`, "notify.webhookUrl", "user name or password"},
		{"too long", `{"webhookUrl": "https://h.com/` + strings.Repeat("a", 2048) + `"}`, "notify.webhookUrl", ""},
		{"not an email", `{"completionRecipients": ["it"]}`, "notify.completionRecipients", ""},
		{"named address", `{"completionRecipients": ["IT <it@contoso.com>"]}`, "notify.completionRecipients", ""},
		{"onCompletion a string", `{"onCompletion": "yes"}`, "notify.onCompletion", ""},
		{"unknown member", `{"email": "x@y.z"}`, "notify.email", "not a known field"},
		{"secretSet is read-only", `{"secretSet": true}`, "notify.secretSet", "not a known field"},
		{"null", `null`, "notify", ""},
	} {
		checkRefused(t, c.name, e.patch(ten.ID, `{"notify": `+c.value+`}`), c.field, c.message)
	}
	if after := e.tenant(ten.ID); !reflect.DeepEqual(after.Settings, before.Settings) {
		t.Fatalf("refused patches changed the settings: %+v, was %+v", after.Settings, before.Settings)
	}
	// Loopback receivers may use plain http (tests, a receiver on the host).
	if r := e.patch(ten.ID, `{"notify": {"webhookUrl": "http://127.0.0.1:8099/hook"}}`); r.status != http.StatusOK {
		t.Fatalf("loopback http: %d %s", r.status, r.body)
	}
	// A tenant can be created with it.
	body := goodTenant()
	body["notify"] = map[string]any{"onCompletion": true, "completionRecipients": []string{"it@contoso.com"}}
	r = e.do("POST", "/v1/tenants", body)
	var created settingsAnswer
	r.decode(t, &created)
	if r.status != http.StatusCreated || !created.Notify.OnCompletion || created.Notify.WebhookURL != "" {
		t.Fatalf("create with notify: %d %s", r.status, r.body)
	}
}

// TestNotifySecretIsShownOnce: the secret is returned by the POST that
// makes it, stored sealed, and never shown again; the tenant says only
// that one exists.
func TestNotifySecretIsShownOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	secretSet := func() bool {
		var out struct {
			Notify struct {
				SecretSet *bool `json:"secretSet"`
			} `json:"notify"`
		}
		r := e.do("GET", "/v1/tenants/"+ten.ID, nil)
		r.decode(t, &out)
		if out.Notify.SecretSet == nil {
			t.Fatalf("no notify.secretSet: %s", r.body)
		}
		return *out.Notify.SecretSet
	}
	if secretSet() {
		t.Fatal("a new tenant has a signing secret")
	}
	r := e.do("POST", "/v1/tenants/"+ten.ID+"/notify/secret", nil)
	var out struct {
		Secret string `json:"secret"`
	}
	r.decode(t, &out)
	if r.status != http.StatusOK || len(out.Secret) < 32 {
		t.Fatalf("new secret: %d %s", r.status, r.body)
	}
	if !secretSet() {
		t.Fatal("notify.secretSet is false after a secret was made")
	}
	for _, path := range []string{"/v1/tenants/" + ten.ID, "/v1/tenants/" + ten.ID + "/notifications"} {
		if g := e.do("GET", path, nil); bytes.Contains(g.body, []byte(out.Secret)) {
			t.Fatalf("GET %s shows the secret: %s", path, g.body)
		}
	}
	var sealed []byte
	if err := e.db.QueryRow(context.Background(), `SELECT notify_secret_sealed FROM tenants WHERE id = $1`, ten.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(out.Secret)) {
		t.Fatal("the signing secret is not stored sealed")
	}
	again := e.do("POST", "/v1/tenants/"+ten.ID+"/notify/secret", nil)
	if again.status != http.StatusOK || bytes.Contains(again.body, []byte(out.Secret)) {
		t.Fatalf("a second secret: %d %s", again.status, again.body)
	}
	for _, c := range []struct {
		path   string
		status int
	}{{"/v1/tenants/" + uuid.NewString() + "/notify/secret", 404}, {"/v1/tenants/nope/notify/secret", 400}} {
		if r := e.do("POST", c.path, nil); r.status != c.status {
			t.Errorf("POST %s: %d %s; want %d", c.path, r.status, r.body, c.status)
		}
	}
}
