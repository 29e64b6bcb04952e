package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
)

// usersPage is a full page of users as Graph answers entrasync's
// listing ($select of userSelect, $top=999).
func usersPage(tb testing.TB, n int) []byte {
	tb.Helper()
	type user struct {
		ID                string `json:"id"`
		DisplayName       string `json:"displayName"`
		Mail              string `json:"mail"`
		UserPrincipalName string `json:"userPrincipalName"`
		GivenName         string `json:"givenName"`
		Surname           string `json:"surname"`
		JobTitle          string `json:"jobTitle"`
		Department        string `json:"department"`
		UserType          string `json:"userType"`
		AccountEnabled    bool   `json:"accountEnabled"`
	}
	page := struct {
		Context  string `json:"@odata.context"`
		NextLink string `json:"@odata.nextLink"`
		Value    []user `json:"value"`
	}{
		Context:  "https://graph.microsoft.com/v1.0/$metadata#users(id,displayName)",
		NextLink: "https://graph.microsoft.com/v1.0/users?$skiptoken=abc",
	}
	for i := range n {
		page.Value = append(page.Value, user{
			ID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), DisplayName: fmt.Sprintf("User %d", i),
			Mail: fmt.Sprintf("user%d@contoso.com", i), UserPrincipalName: fmt.Sprintf("user%d@contoso.com", i),
			GivenName: "Given", Surname: "Surname", JobTitle: "Engineer", Department: "R&D",
			UserType: "Member", AccountEnabled: i%7 != 0,
		})
	}
	b, err := json.Marshal(page)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkDecodeUsersPage compares what a 999-user page costs to turn
// into Users: through the SDK's parse nodes and models (how entrasync
// read pages before wire.go), and decoded straight into the wire types.
func BenchmarkDecodeUsersPage(b *testing.B) {
	body := usersPage(b, 999)
	registerSDKGlobals() // the SDK's JSON parse node factory
	b.Run("sdk-models", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			node, err := absser.DefaultParseNodeFactoryInstance.GetRootParseNode("application/json", body)
			if err != nil {
				b.Fatal(err)
			}
			v, err := node.GetObjectValue(models.CreateUserCollectionResponseFromDiscriminatorValue)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, u := range v.(models.UserCollectionResponseable).GetValue() {
				if u.GetId() != nil && u.GetAccountEnabled() != nil {
					n++
				}
			}
			if n != 999 {
				b.Fatalf("%d users read", n)
			}
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			p, err := decodePage[wireUser](body, 200)
			if err != nil {
				b.Fatal(err)
			}
			for _, u := range p.Value {
				if _, err := toUser(u); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// The decoder reads Graph's JSON as Graph writes it: property names are
// case-sensitive, and a value of the wrong JSON type is malformed.
func TestDecodePageIsStrict(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		wantErr    string // "" when the page decodes
		wantID     string
	}{
		{name: "a page", body: `{"value":[{"id":"u1","accountEnabled":true}]}`, wantID: "u1"},
		{name: "ID is not id", body: `{"value":[{"ID":"u1","accountEnabled":true}]}`, wantErr: "user without id"},
		{name: "VALUE is not value", body: `{"VALUE":[]}`, wantErr: "no value array"},
		{name: "accountEnabled as a string", body: `{"value":[{"id":"u1","accountEnabled":"true"}]}`, wantErr: "body is not a list page"},
		{name: "null", body: `null`, wantErr: "body is null"},
		{name: "two values", body: `{"value":[]} {}`, wantErr: "data after the JSON value"},
		{name: "an array", body: `[]`, wantErr: "body is not a list page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodePage[wireUser]([]byte(tc.body), 200)
			var u User
			if err == nil && len(p.Value) > 0 {
				u, err = toUser(p.Value[0])
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("decoding %s: %v", tc.body, err)
			case tc.wantErr == "" && u.ID != tc.wantID:
				t.Fatalf("decoding %s: id %q, want %q", tc.body, u.ID, tc.wantID)
			case tc.wantErr != "" && (!errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("decoding %s: error %v, want ErrMalformed saying %q", tc.body, err, tc.wantErr)
			}
		})
	}
}

// A member list keeps a device's name, the only member name the sync
// stores, and drops users' and groups' names, which their own listings
// give: member pages are the largest a run holds.
func TestMemberKeepsOnlyADevicesName(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]string{
		"#microsoft.graph.user":   "",
		"#microsoft.graph.group":  "",
		"#microsoft.graph.device": "Laptop 7",
	} {
		typ, id, name := typ, "2f1c0c4e-8d5b-4a59-9d1c-3f4b1f0e9a11", "Laptop 7"
		m, err := toMember(&wireMember{ODataType: &typ, ID: &id, DisplayName: &name})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if m.ID != id || m.DisplayName != want {
			t.Errorf("%s: %+v, want id %s and name %q", typ, m, id, want)
		}
	}
}
