package graphsim_test

import (
	"net/http"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

var largeSpec = graphsim.Spec{Seed: 1, Users: 100_000, Groups: 5_000, NestingDepth: 5, Devices: 200, Contacts: 50, Guests: 500, Disabled: 500, NoMail: 500, Cycle: true}

// BenchmarkGenerate100k measures generating a 100k-user, 5k-group tenant.
func BenchmarkGenerate100k(b *testing.B) {
	for b.Loop() {
		graphsim.Generate(largeSpec)
	}
}

// BenchmarkListUsers100k pages through every user of a 100k-user tenant
// at $top=999 over HTTPS, as a full sync does.
func BenchmarkListUsers100k(b *testing.B) {
	srv, err := graphsim.New(graphsim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	d := graphsim.Generate(largeSpec)
	srv.AddTenant("0b5e0b5e-0000-4000-8000-000000000001", "0b5e0b5e-0000-4000-8000-000000000002", "s", d)
	client := srv.HTTPClient()
	token := benchToken(b, srv, client)
	b.ResetTimer()
	pages := 0
	for b.Loop() {
		next := srv.GraphURL() + "/users?$top=999&$select=id,displayName,mail,userPrincipalName,accountEnabled,userType"
		for next != "" {
			next = benchGet(b, client, token, next)
			pages++
		}
	}
	b.ReportMetric(float64(pages)/float64(b.N), "pages/op")
}

func benchToken(b *testing.B, srv *graphsim.Server, client *http.Client) string {
	resp, err := client.PostForm(srv.AuthorityURL()+"0b5e0b5e-0000-4000-8000-000000000001/oauth2/v2.0/token", map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {"0b5e0b5e-0000-4000-8000-000000000002"},
		"client_secret": {"s"}, "scope": {"https://graph.microsoft.com/.default"},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := jsonDecode(resp.Body, &out); err != nil || out.AccessToken == "" {
		b.Fatalf("token: %v", err)
	}
	return out.AccessToken
}

func benchGet(b *testing.B, client *http.Client, token, u string) string {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Next string `json:"@odata.nextLink"`
	}
	if resp.StatusCode != http.StatusOK || jsonDecode(resp.Body, &page) != nil {
		b.Fatalf("GET %s: %s", u, resp.Status)
	}
	return page.Next
}
