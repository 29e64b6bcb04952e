package graph

import (
	"context"
	"errors"
	"fmt"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/segmentio/encoding/json"
)

// Reading Graph's answers.
//
// The SDK builds every request (URL templates, query options, headers),
// authenticates it, sends it through its middleware and maps an error
// answer to its typed ODataError. A successful list page, though, is not
// parsed by the SDK's models: the SDK turns each object into a model
// through a map of every property the type has (about 150 closures for a
// user, built afresh per object), over a tree of parse nodes for the
// whole body. On a 100k-user sync that was most of the fetcher's CPU.
// entrasync asks the adapter for the body's bytes instead
// (SendPrimitive with "[]byte", after the same error mapping) and decodes
// the properties it selects straight into the wire types below.
//
// The decoder is github.com/segmentio/encoding/json, the standard
// library's API with one option it lacks: property names match exactly.
// Graph's JSON is case-sensitive ("ID" is not "id"); encoding/json would
// take either. A value of the wrong JSON type, a null item or a body that
// is not one JSON object is ErrMalformed, never a panic.

// sendRaw returns a function that sends a request the SDK built (taking
// a request builder's ToGetRequestInformation results as they are) and
// returns Graph's answer body: nil for an empty one (a 204, or nothing),
// the SDK's typed error for an error status.
func (c *Client) sendRaw(ctx context.Context) func(*abs.RequestInformation, error) ([]byte, error) {
	return func(ri *abs.RequestInformation, err error) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		return c.sendForBody(ctx, ri)
	}
}

// sendForBody sends ri through the SDK and returns the answer's body.
// Under an exchange (withExchange) the transport hands a successful
// body over in the exchange, and the SDK, finding the response empty,
// keeps no copy of it.
func (c *Client) sendForBody(ctx context.Context, ri *abs.RequestInformation) ([]byte, error) {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	if x != nil {
		x.takeBody, x.body = true, nil
		defer func() { x.takeBody, x.body = false, nil }()
	}
	v, err := c.sdk.RequestAdapter.SendPrimitive(ctx, ri, "[]byte", abs.ErrorMappings{
		"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue,
	})
	if err != nil {
		return nil, err
	}
	if x != nil && len(x.body) > 0 {
		return x.body, nil
	}
	if v == nil {
		return nil, nil
	}
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("the SDK returned %T for a body", v)
	}
	return b, nil
}

// decodeJSON decodes one JSON value, the whole of b, into v, property
// names matching exactly.
func decodeJSON(b []byte, v any) error {
	return decodeJSONFlags(b, v, 0)
}

// decodeJSONFlags is decodeJSON with more of the decoder's flags.
func decodeJSONFlags(b []byte, v any, flags json.ParseFlags) error {
	rest, err := json.Parse(b, v, json.DontMatchCaseInsensitiveStructFields|flags)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("data after the JSON value")
	}
	return nil
}

// wirePage is a page of a Graph collection, plain or delta. Value is nil
// when the page has no value array (absent or null); a null item is a
// nil pointer, which decodePage refuses.
type wirePage[T any] struct {
	Value     []*T    `json:"value"`
	NextLink  *string `json:"@odata.nextLink"`
	DeltaLink *string `json:"@odata.deltaLink"`
}

// decodePage decodes a page's body, refusing one without a value array
// or with a null item; status is the answer's, for the error.
func decodePage[T any](body []byte, status int) (*wirePage[T], error) {
	var p *wirePage[T]
	if err := decodeJSON(body, &p); err != nil {
		return nil, fmt.Errorf("%w: HTTP %d: body is not a list page: %v", ErrMalformed, status, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%w: HTTP %d: body is null", ErrMalformed, status)
	}
	if p.Value == nil {
		return nil, fmt.Errorf("%w: no value array", ErrMalformed)
	}
	for i, it := range p.Value {
		if it == nil {
			return nil, fmt.Errorf("%w: item %d is null", ErrMalformed, i)
		}
	}
	return p, nil
}

// wireRemoved is an object's "@removed" annotation in a delta round.
type wireRemoved struct {
	Reason *string `json:"reason"`
}

// wireUser is a user with the properties entrasync selects. Removed is
// set in a delta round for a user no longer in the collection.
type wireUser struct {
	ID                *string      `json:"id"`
	DisplayName       *string      `json:"displayName"`
	Mail              *string      `json:"mail"`
	UserPrincipalName *string      `json:"userPrincipalName"`
	GivenName         *string      `json:"givenName"`
	Surname           *string      `json:"surname"`
	JobTitle          *string      `json:"jobTitle"`
	Department        *string      `json:"department"`
	UserType          *string      `json:"userType"`
	AccountEnabled    *bool        `json:"accountEnabled"`
	Removed           *wireRemoved `json:"@removed"`
}

// wireGroup is a group with the properties entrasync selects, and in a
// delta round its "@removed" and "members@delta".
type wireGroup struct {
	ID              *string       `json:"id"`
	DisplayName     *string       `json:"displayName"`
	Description     *string       `json:"description"`
	Mail            *string       `json:"mail"`
	GroupTypes      []string      `json:"groupTypes"`
	SecurityEnabled *bool         `json:"securityEnabled"`
	MailEnabled     *bool         `json:"mailEnabled"`
	MembershipRule  *string       `json:"membershipRule"`
	RenewedDateTime *string       `json:"renewedDateTime"`
	Removed         *wireRemoved  `json:"@removed"`
	MembersDelta    []*wireMember `json:"members@delta"`
}

// wireMember is an entry of a member list (any directory object, named
// by its @odata.type) or of a group's members@delta.
type wireMember struct {
	ODataType   *string      `json:"@odata.type"`
	ID          *string      `json:"id"`
	DisplayName *string      `json:"displayName"`
	Removed     *wireRemoved `json:"@removed"`
}

func toUser(u *wireUser) (User, error) {
	id := deref(u.ID)
	if id == "" {
		return User{}, fmt.Errorf("%w: user without id", ErrMalformed)
	}
	if u.AccountEnabled == nil {
		// A missing accountEnabled must not read as "disabled": that would
		// take every user's seat away.
		return User{}, fmt.Errorf("%w: user %s without accountEnabled", ErrMalformed, id)
	}
	return User{
		ID:                id,
		DisplayName:       deref(u.DisplayName),
		Mail:              deref(u.Mail),
		UserPrincipalName: deref(u.UserPrincipalName),
		GivenName:         deref(u.GivenName),
		Surname:           deref(u.Surname),
		JobTitle:          deref(u.JobTitle),
		Department:        deref(u.Department),
		UserType:          deref(u.UserType),
		AccountEnabled:    *u.AccountEnabled,
	}, nil
}

func toGroup(g *wireGroup) (Group, error) {
	id := deref(g.ID)
	if id == "" {
		return Group{}, fmt.Errorf("%w: group without id", ErrMalformed)
	}
	var renewed *time.Time
	if g.RenewedDateTime != nil {
		t, err := time.Parse(time.RFC3339, *g.RenewedDateTime)
		if err != nil {
			return Group{}, fmt.Errorf("%w: group %s: renewedDateTime %q is not an RFC 3339 date-time", ErrMalformed, id, *g.RenewedDateTime)
		}
		renewed = &t
	}
	return Group{
		ID:              id,
		DisplayName:     deref(g.DisplayName),
		Description:     deref(g.Description),
		Mail:            deref(g.Mail),
		GroupTypes:      g.GroupTypes,
		SecurityEnabled: deref(g.SecurityEnabled),
		MailEnabled:     deref(g.MailEnabled),
		MembershipRule:  deref(g.MembershipRule),
		RenewedDateTime: renewed,
	}, nil
}

func toMember(o *wireMember) (Member, error) {
	id := deref(o.ID)
	if id == "" {
		return Member{}, fmt.Errorf("%w: member without id", ErrMalformed)
	}
	m := Member{ID: id, Type: memberTypeOf(deref(o.ODataType))}
	if m.Type == MemberDevice {
		m.DisplayName = deref(o.DisplayName)
	}
	return m, nil
}

// removal reads an "@removed" annotation; a null one is absent.
func (r *wireRemoved) removal(id string) Removal {
	return Removal{ID: id, Reason: RemovalReason(deref(r.Reason))}
}
