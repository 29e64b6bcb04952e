package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of Config.
const (
	DefaultBaseURL        = "https://graph.microsoft.com/v1.0"
	DefaultAuthorityHost  = "https://login.microsoftonline.com/"
	DefaultPageSize       = 999
	DefaultMaxAttempts    = 6
	DefaultRequestTimeout = 100 * time.Second
	DefaultMaxRetryAfter  = 5 * time.Minute

	// DefaultScope is the token scope of Graph in the global service.
	DefaultScope = "https://graph.microsoft.com/.default"

	// MaxPageSize is the largest $top Graph accepts on directory listings.
	MaxPageSize = 999
)

// Config says where Graph and its token authority are and how hard to try.
// The zero value plus SetDefaults talks to the public cloud.
type Config struct {
	// BaseURL is Graph's v1.0 root (GRAPH_BASE_URL).
	BaseURL string
	// AuthorityHost is the Entra ID token authority (AZURE_AUTHORITY_HOST).
	// It must use https. Instance discovery is turned off for any authority
	// other than the public cloud's, since it would call the public cloud.
	AuthorityHost string
	// Scope is the OAuth scope of Graph tokens (GRAPH_SCOPE). It names
	// Graph's resource, never the URL Graph is reached by: Entra ID knows
	// no resource by a gateway's, proxy's or simulator's host and refuses
	// such a scope (AADSTS500011). Default: ScopeFor(BaseURL).
	Scope string
	// PageSize is the $top of every listing, 1..999.
	PageSize int
	// MaxAttempts bounds how often one request is sent, the first time
	// included, before the last failure is returned.
	MaxAttempts int
	// RequestTimeout bounds one attempt (sending it and reading its body);
	// waits between attempts do not count.
	RequestTimeout time.Duration
	// MaxRetryAfter is the longest Retry-After this client waits out
	// (GRAPH_MAX_RETRY_AFTER). A run waits while holding its tenant's
	// lease, so a longer wait fails the request with a retryable error
	// that says so, and the job comes back later instead.
	MaxRetryAfter time.Duration
	// Transport is the base transport for Graph and the authority. Tests
	// pass one that trusts the simulator's CA; nil means
	// http.DefaultTransport (system roots, or SSL_CERT_FILE).
	Transport http.RoundTripper
	// Logger receives retry and paging diagnostics. Never tokens or secrets.
	Logger zerolog.Logger
	// Sleep waits d or until ctx is done, whichever comes first, and returns
	// ctx.Err() in the latter case. Injected so tests can watch the waits;
	// nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Observer hears of every exchange with Graph, for metrics; nil hears
	// nothing.
	Observer Observer
	// Clock tells the time Retry-After dates are read against; nil means
	// time.Now.
	Clock func() time.Time
	// Tokens, when set, shares credentials and their tokens between the
	// Clients built with it (see TokenCache); nil: each Client asks the
	// authority for its first token.
	Tokens *TokenCache
}

// graphResources maps the hosts of Graph's documented service roots
// (microsoft-graph-docs concepts/deployments.md: the global service and
// the national clouds) to the resource their tokens name.
var graphResources = map[string]string{
	"graph.microsoft.com":             "https://graph.microsoft.com",
	"graph.microsoft.us":              "https://graph.microsoft.us",     // US Government L4
	"dod-graph.microsoft.us":          "https://dod-graph.microsoft.us", // US Government L5 (DoD)
	"microsoftgraph.chinacloudapi.cn": "https://microsoftgraph.chinacloudapi.cn",
}

// ScopeFor is the token scope for Graph reached at baseURL: the resource
// of the Graph deployment whose service root it is, or the global
// service's for any other host (a gateway, a proxy, a simulator), which
// cannot tell which Graph it fronts. A gateway to a national cloud needs
// Config.Scope set.
func ScopeFor(baseURL string) string {
	if u, err := url.Parse(baseURL); err == nil {
		if res, ok := graphResources[strings.ToLower(u.Hostname())]; ok {
			return res + "/.default"
		}
	}
	return DefaultScope
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Scope == "" {
		c.Scope = ScopeFor(c.BaseURL)
	}
	if c.AuthorityHost == "" {
		c.AuthorityHost = DefaultAuthorityHost
	}
	if !strings.HasSuffix(c.AuthorityHost, "/") {
		c.AuthorityHost += "/"
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports every bad field in one error.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || u.Host == "" || u.Opaque != "" {
		errs = append(errs, fmt.Errorf("graph: base URL %q: want an absolute URL such as %s", c.BaseURL, DefaultBaseURL))
	} else if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		// The SDK refuses to attach a token to plain http except on loopback.
		errs = append(errs, fmt.Errorf("graph: base URL %q: want https (plain http only on localhost)", c.BaseURL))
	} else if u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("graph: base URL %q: must not carry a query or fragment", c.BaseURL))
	}
	if u, err := url.Parse(c.AuthorityHost); err != nil || u.Host == "" || u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("graph: authority host %q: want an https URL such as %s", c.AuthorityHost, DefaultAuthorityHost))
	}
	if !strings.HasSuffix(c.Scope, "/.default") {
		errs = append(errs, fmt.Errorf("graph: scope %q: want a resource followed by /.default", c.Scope))
	}
	if c.PageSize < 1 || c.PageSize > MaxPageSize {
		errs = append(errs, fmt.Errorf("graph: page size %d: want 1..%d", c.PageSize, MaxPageSize))
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("graph: max attempts %d: want 1..100", c.MaxAttempts))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("graph: request timeout %s: want > 0", c.RequestTimeout))
	}
	if c.MaxRetryAfter <= 0 {
		errs = append(errs, fmt.Errorf("graph: max Retry-After %s: want > 0", c.MaxRetryAfter))
	}
	if c.Transport == nil {
		errs = append(errs, errors.New("graph: transport is nil (call SetDefaults)"))
	}
	if c.Sleep == nil {
		errs = append(errs, errors.New("graph: sleep is nil (call SetDefaults)"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("graph: clock is nil (call SetDefaults)"))
	}
	return errors.Join(errs...)
}

// isPublicCloud reports whether the authority is Entra ID's public cloud,
// the only one where MSAL's instance discovery may run.
func (c Config) isPublicCloud() bool {
	u, err := url.Parse(c.AuthorityHost)
	return err == nil && strings.EqualFold(u.Host, "login.microsoftonline.com")
}

// Credentials are one tenant's app registration: the Entra tenant the app
// reads and the app's client id and secret.
type Credentials struct {
	TenantID     string
	ClientID     string
	ClientSecret string
}

// validate checks the credentials without echoing the secret.
func (c Credentials) validate() error {
	var errs []error
	if c.TenantID == "" {
		errs = append(errs, errors.New("graph: credentials: tenant id is empty"))
	} else if strings.ContainsAny(c.TenantID, "/?#% \t\r\n") {
		// It becomes a path segment of the authority's URL.
		errs = append(errs, fmt.Errorf("graph: credentials: tenant id %q: want a GUID or a domain name", c.TenantID))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("graph: credentials: client id is empty"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("graph: credentials: client secret is empty"))
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// sleep is the real Config.Sleep.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Observer hears of every exchange with Graph: a *metrics.Metrics is one.
type Observer interface {
	// GraphRequest is told each attempt's HTTP status (0: no answer).
	GraphRequest(code int)
	// GraphThrottled is told of each wait Graph asked for (Retry-After).
	GraphThrottled(wait time.Duration)
	// GraphRetryWait is told of each backoff nobody asked for.
	GraphRetryWait(wait time.Duration)
}
