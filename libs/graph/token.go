package graph

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
)

// tokenSource is the one way a Client gets Graph tokens. It exists for
// two things azidentity does not do:
//
//   - classify a failed token request where it is born: the authority
//     answered and refused the credentials (final, ErrAuth), or it did not
//     answer in time, the connection broke, or it answered 5xx/429/408
//     (transient, retried here with backoff like a Graph 503);
//   - renew: after Graph refused a token (401, e.g. it expired while a
//     run waited out a long Retry-After), get a new one from the
//     authority, which azidentity's cache would not do while it believes
//     the old one valid.
type tokenSource struct {
	newCred     func() (azcore.TokenCredential, error)
	timeout     time.Duration // bounds one token request
	maxAttempts int
	maxWait     time.Duration
	sleep       func(context.Context, time.Duration) error
	now         func() time.Time
	log         zerolog.Logger

	slot *credSlot // the credential asked, the Client's own or shared (TokenCache)

	mu   sync.Mutex
	opts policy.TokenRequestOptions // the SDK's last request, reused to renew
}

// GetToken implements azcore.TokenCredential for the SDK's auth provider.
func (s *tokenSource) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.mu.Lock()
	s.opts = opts
	s.mu.Unlock()
	return s.get(ctx, s.slot.get(), opts)
}

// renew returns a token other than stale, which Graph refused. When the
// credential still hands out stale, it is replaced by a fresh one (an
// empty cache), so the token comes from the authority. Requests that
// see the same 401 at once renew once between them, and so do the
// Clients sharing the credential.
func (s *tokenSource) renew(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	opts := s.opts
	s.mu.Unlock()
	cred := s.slot.get()
	tok, err := s.get(ctx, cred, opts)
	if err != nil || tok.Token != stale {
		return tok.Token, err
	}
	s.slot.mu.Lock()
	if s.slot.cred == cred {
		fresh, err := s.newCred()
		if err != nil {
			s.slot.mu.Unlock()
			return "", fmt.Errorf("graph: renew credential: %w", err)
		}
		s.slot.cred = fresh
	}
	cred = s.slot.cred
	s.slot.mu.Unlock()
	s.log.Info().Msg("graph: Graph refused the token; asked the authority for a new one")
	tok, err = s.get(ctx, cred, opts)
	return tok.Token, err
}

// get asks cred for a token, retrying while the authority is unavailable.
func (s *tokenSource) get(ctx context.Context, cred azcore.TokenCredential, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	bo := newBackoff()
	for attempt := 1; ; attempt++ {
		tok, err := s.attempt(ctx, cred, opts)
		if err == nil {
			return tok, nil
		}
		if ctx.Err() != nil {
			return azcore.AccessToken{}, ctx.Err()
		}
		var ue *authorityUnavailable
		if !errors.As(err, &ue) || attempt >= s.maxAttempts {
			return azcore.AccessToken{}, err
		}
		wait := ue.retryAfter
		if wait > s.maxWait {
			return azcore.AccessToken{}, err
		}
		if wait == 0 {
			wait = bo.NextBackOff()
		}
		s.log.Warn().Err(err).Int("attempt", attempt).Dur("wait", wait).Msg("graph: token authority unavailable; retrying")
		if err := s.sleep(ctx, wait); err != nil {
			return azcore.AccessToken{}, err
		}
	}
}

// attempt is one token request under the request timeout, classified.
func (s *tokenSource) attempt(ctx context.Context, cred azcore.TokenCredential, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	o := &authorityObservation{}
	tok, err := cred.GetToken(context.WithValue(actx, authorityObservationKey{}, o), opts)
	if err == nil {
		return tok, nil
	}
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		return tok, err
	}
	transportErr := o.failure()
	if transportErr == nil && afe.RawResponse == nil && actx.Err() != nil && ctx.Err() == nil {
		// The attempt's own deadline passed with no answer, wherever the
		// credential was then (azidentity's endpoint discovery reads its
		// answer outside the transport): the authority did not answer in
		// time.
		transportErr = actx.Err()
	}
	return tok, s.classify(afe, transportErr)
}

// classify tells a refusal from an authority that did not answer.
// transportErr is how the last request to the authority failed before
// any answer, if it did.
func (s *tokenSource) classify(afe *azidentity.AuthenticationFailedError, transportErr error) error {
	res := afe.RawResponse
	if res == nil {
		if transportErr != nil && transientNetErr(transportErr) {
			// No answer at all (timeout, refused or cut connection): the
			// credentials were never judged.
			return &authorityUnavailable{msg: transportErr.Error(), cause: afe}
		}
		// Nothing was said over HTTP and nothing transient happened on the
		// wire (a certificate the authority cannot prove, an unreadable
		// success): nothing a retry changes.
		return &authError{cause: afe, msg: afe.Error()}
	}
	msg := afe.Error()
	// The authority answers {"error": "...", "error_description": "AADSTS...: ..."}.
	if body, err := runtime.Payload(res); err == nil {
		var b struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &b) == nil && (b.Error != "" || b.Description != "") {
			msg = strings.TrimSpace(strings.Join(nonEmpty(b.Error, b.Description), ": "))
		}
	}
	if res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout {
		// The authority is unwell; the credentials may be fine.
		ra, _ := parseRetryAfter(res.Header.Get("Retry-After"), s.now())
		return &authorityUnavailable{status: res.StatusCode, msg: msg, retryAfter: ra, cause: afe}
	}
	return &authError{status: res.StatusCode, msg: msg, cause: afe}
}

// TokenCache lets the Clients built with it (Config.Tokens) share their
// credentials, and so the tokens azidentity keeps in them until shortly
// before they expire (about an hour): a tenant's runs, one Client each,
// ask the authority once per token lifetime instead of once per run. The
// Clients of one authority, tenant, app and secret share a credential; a
// new secret makes a new one. A token Graph refuses is renewed for all
// of them (tokenSource.renew). A shared credential reaches the authority
// through the transport of the Client that made it. Safe for concurrent
// use; make it with NewTokenCache.
type TokenCache struct {
	mu    sync.Mutex
	slots map[credKey]*credSlot
}

// maxSharedCredentials bounds a TokenCache: past it, the cache starts
// over (tenants come and go; each Client then asks for its first token
// again).
const maxSharedCredentials = 10_000

// NewTokenCache returns an empty TokenCache.
func NewTokenCache() *TokenCache {
	return &TokenCache{slots: map[credKey]*credSlot{}}
}

// credKey names a shared credential; the secret is known by its hash.
type credKey struct {
	authority, tenant, client string
	secret                    [sha256.Size]byte
}

func newCredKey(authority string, creds Credentials) credKey {
	return credKey{authority: authority, tenant: creds.TenantID, client: creds.ClientID,
		secret: sha256.Sum256([]byte(creds.ClientSecret))}
}

// slot returns the credential slot of k, made with newCred if the cache
// has none.
func (c *TokenCache) slot(k credKey, newCred func() (azcore.TokenCredential, error)) (*credSlot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.slots[k]; ok {
		return s, nil
	}
	cred, err := newCred()
	if err != nil {
		return nil, err
	}
	if len(c.slots) >= maxSharedCredentials {
		clear(c.slots)
	}
	s := &credSlot{cred: cred}
	c.slots[k] = s
	return s, nil
}

// credSlot holds the credential a tokenSource asks; renew replaces it.
type credSlot struct {
	mu   sync.Mutex
	cred azcore.TokenCredential
}

func (s *credSlot) get() azcore.TokenCredential {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cred
}

// authorityUnavailable is a token request the authority did not answer,
// or answered with a transient status. It is not ErrAuth and not
// permanent: the credentials were not judged.
type authorityUnavailable struct {
	status     int // 0: no answer
	msg        string
	retryAfter time.Duration
	cause      error
}

func (e *authorityUnavailable) Error() string {
	if e.status == 0 {
		return "token authority did not answer: " + e.msg
	}
	return fmt.Sprintf("token authority unavailable (HTTP %d): %s", e.status, e.msg)
}

func (e *authorityUnavailable) Unwrap() error { return e.cause }

// authorityObservation is what the authority transport saw of the token
// request it carries in its context: azidentity keeps only the message of
// a transport failure, not the error, so it is noted on the way.
type authorityObservation struct {
	mu  sync.Mutex
	err error // the last transport failure, nil once an answer came
}

func (o *authorityObservation) failure() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

type authorityObservationKey struct{}

// authorityTransport notes, in the request's observation, whether the
// authority answered.
type authorityTransport struct{ base http.RoundTripper }

func (t authorityTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if o, ok := req.Context().Value(authorityObservationKey{}).(*authorityObservation); ok {
		o.mu.Lock()
		o.err = err
		o.mu.Unlock()
	}
	return resp, err
}

// newBackoff is the backoff between attempts when the server named no
// wait: exponential from 500 ms to 30 s with jitter, bounded by attempts
// rather than time.
func newBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = 0
	bo.Reset()
	return bo
}
