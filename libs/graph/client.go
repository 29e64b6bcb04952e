package graph

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	kiotaauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"github.com/rs/zerolog"
)

// Properties entrasync reads. accountEnabled and userType are not in
// Graph's default set: without $select they would silently be absent.
var (
	userSelect  = []string{"id", "displayName", "mail", "userPrincipalName", "givenName", "surname", "jobTitle", "department", "userType", "accountEnabled"}
	groupSelect = []string{"id", "displayName", "description", "mail", "groupTypes", "securityEnabled", "mailEnabled", "membershipRule", "renewedDateTime"}
	// Members come with their names (devices and groups are shown by
	// name); @odata.type always comes along.
	memberSelect = []string{"id", "displayName"}
)

// Client reads one tenant's directory through Microsoft Graph. It is safe
// for concurrent use; its Stats cover every call made through it.
type Client struct {
	cfg Config
	log zerolog.Logger
	rt  *retrier
	sdk *msgraph.GraphServiceClient
	// advancedQuery decides whether a users filter goes out as an
	// advanced query; tests replace it to check the decision against
	// Graph's answers both ways.
	advancedQuery func(filter string) bool
}

// sdkGlobals guards the SDK's process-wide serializer registry and backing
// store factory, which msgraph.NewGraphServiceClient writes without
// synchronisation each time it runs. entrasync runs it once, then builds
// per-tenant clients without touching the globals again.
var sdkGlobals sync.Once

// New builds a Client for one tenant's app registration. It does not call
// Graph or the authority: the first listing does, and reports bad
// credentials then.
func New(cfg Config, creds Credentials) (*Client, error) {
	cfg.SetDefaults()
	if err := errors.Join(cfg.Validate(), creds.validate()); err != nil {
		return nil, err
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("graph: base URL: %w", err)
	}

	newCred := func() (azcore.TokenCredential, error) {
		return azidentity.NewClientSecretCredential(creds.TenantID, creds.ClientID, creds.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{
				ClientOptions: azcore.ClientOptions{
					Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: cfg.AuthorityHost},
					Transport: &http.Client{Transport: authorityTransport{base: cfg.Transport}},
					// The tokenSource retries, with the injected sleep and
					// knowing a refusal from silence; azcore's own retries
					// would sleep for real and multiply with it.
					Retry: policy.RetryOptions{MaxRetries: -1},
				},
				// Instance discovery asks the public cloud about the authority;
				// anywhere else it would leak the call or fail.
				DisableInstanceDiscovery: !cfg.isPublicCloud(),
			})
	}
	var slot *credSlot
	if cfg.Tokens != nil {
		slot, err = cfg.Tokens.slot(newCredKey(cfg.AuthorityHost, creds), newCred)
	} else {
		var first azcore.TokenCredential
		first, err = newCred()
		slot = &credSlot{cred: first}
	}
	if err != nil {
		return nil, fmt.Errorf("graph: credential for tenant %s: %w", creds.TenantID, err)
	}
	cred := &tokenSource{
		newCred: newCred, slot: slot,
		timeout: cfg.RequestTimeout, maxAttempts: cfg.MaxAttempts, maxWait: cfg.MaxRetryAfter,
		sleep: cfg.Sleep, now: cfg.Clock, log: cfg.Logger,
	}
	// The provider attaches a token only to hosts in this list and sends
	// nothing, silently, to any other: Graph's own host must be in it.
	auth, err := kiotaauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(
		cred, []string{cfg.Scope}, []string{base.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph: authentication provider: %w", err)
	}

	rt := &retrier{
		base:        cfg.Transport,
		maxAttempts: cfg.MaxAttempts,
		timeout:     cfg.RequestTimeout,
		maxWait:     cfg.MaxRetryAfter,
		tokens:      cred,
		sleep:       cfg.Sleep,
		log:         cfg.Logger,
		now:         cfg.Clock,
		observer:    cfg.Observer,
	}
	hc := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(rt, middleware()...),
		// The SDK's redirect handler follows redirects itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	adapter, err := msgraph.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(cfg.BaseURL)
	return &Client{cfg: cfg, log: cfg.Logger, rt: rt, sdk: serviceClient(adapter, cfg.BaseURL), advancedQuery: needsAdvancedQuery}, nil
}

// serviceClient is msgraph.NewGraphServiceClient without its writes to
// package globals after the first call.
func serviceClient(adapter abs.RequestAdapter, baseURL string) *msgraph.GraphServiceClient {
	registerSDKGlobals()
	return &msgraph.GraphServiceClient{GraphBaseServiceClient: msgraph.GraphBaseServiceClient{
		BaseRequestBuilder: *abs.NewBaseRequestBuilder(adapter, "{+baseurl}", map[string]string{"baseurl": baseURL}),
	}}
}

// registerSDKGlobals registers the SDK's JSON/text/form (de)serializers
// and wraps them in the backing store, process-wide, once.
func registerSDKGlobals() {
	sdkGlobals.Do(func() {
		// The adapter msgraph.NewGraphServiceClient is given is thrown away.
		throwaway, err := msgraph.NewGraphRequestAdapter(&absauth.AnonymousAuthenticationProvider{})
		if err == nil {
			msgraph.NewGraphServiceClient(throwaway)
		}
	})
}

// middleware is the SDK's default pipeline minus two handlers:
//   - kiota's RetryHandler: it truncates fractional Retry-After to whole
//     seconds and would multiply with entrasync's retrier, which sits
//     under this pipeline instead;
//   - its CompressionHandler, which gzips request bodies. The only ones
//     are $batch payloads of a few kilobytes (twenty relative URLs), and
//     each gzip writer it made allocated about a megabyte: over a 1M-user
//     tenant's member lists, a ninth of all the fetcher allocated, to
//     save a few kilobytes a request. Graph takes plain bodies.
func middleware() []khttp.Middleware {
	opts := msgraph.GetDefaultClientOptions()
	return []khttp.Middleware{
		core.NewGraphTelemetryHandler(&opts),
		khttp.NewUrlReplaceHandler(true, core.ReplacementPairs),
		khttp.NewRedirectHandler(),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewHeadersInspectionHandler(),
	}
}

// Stats returns what this client has cost at Graph so far.
func (c *Client) Stats() Stats { return c.rt.stats() }

// Users lists the tenant's users that match filter, a Graph $filter
// expression ("" lists every user), one slice per Graph page.
//
// A filter that Graph serves only as an advanced query (ne, not,
// endsWith, null values and more, per concepts/aad-advanced-queries.md)
// is sent with ConsistencyLevel: eventual and $count=true; others are
// sent plainly, since advanced queries are only eventually consistent.
// Query options go on the first request only: later pages follow
// Graph's nextLink as it is, with the header again, which Graph wants on
// every page of an advanced query.
//
// Graph's 400 for a filter it refuses is an error wrapping
// ErrFilterRefused and the *Error with Graph's code and message; it is
// permanent.
func (c *Client) Users(ctx context.Context, filter string) iter.Seq2[[]User, error] {
	top := int32(c.cfg.PageSize)
	rb := c.sdk.Users()
	params := &users.UsersRequestBuilderGetQueryParameters{Select: userSelect, Top: &top}
	var headers *abs.RequestHeaders
	if filter != "" {
		params.Filter = &filter
		if c.advancedQuery(filter) {
			count := true
			params.Count = &count
			headers = abs.NewRequestHeaders()
			headers.Add("ConsistencyLevel", "eventual")
		}
		c.log.Debug().Str("filter", filter).Bool("advanced", headers != nil).Msg("graph: listing users with a filter")
	}
	seq := pages(ctx, c, "users",
		func(ctx context.Context, next string) ([]byte, error) {
			if next != "" {
				return c.sendRaw(ctx)(rb.WithUrl(next).ToGetRequestInformation(ctx, &users.UsersRequestBuilderGetRequestConfiguration{Headers: headers}))
			}
			return c.sendRaw(ctx)(rb.ToGetRequestInformation(ctx, &users.UsersRequestBuilderGetRequestConfiguration{Headers: headers, QueryParameters: params}))
		}, toUser)
	if filter == "" {
		return seq
	}
	return func(yield func([]User, error) bool) {
		first := true
		for page, err := range seq {
			if err != nil && first {
				err = filterRefused(filter, err)
			}
			first = false
			if !yield(page, err) {
				return
			}
		}
	}
}

// filterRefused marks Graph's 400 to the first page of a filtered
// listing: the filter is what Graph refused (Request_UnsupportedQuery,
// or BadRequest "Invalid filter clause").
func filterRefused(filter string, err error) error {
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != http.StatusBadRequest {
		return err
	}
	return fmt.Errorf("%w %q: %w", ErrFilterRefused, filter, err)
}

// Groups lists every group of the tenant, one slice per Graph page.
func (c *Client) Groups(ctx context.Context) iter.Seq2[[]Group, error] {
	top := int32(c.cfg.PageSize)
	rb := c.sdk.Groups()
	return pages(ctx, c, "groups",
		func(ctx context.Context, next string) ([]byte, error) {
			if next != "" {
				return c.sendRaw(ctx)(rb.WithUrl(next).ToGetRequestInformation(ctx, nil))
			}
			return c.sendRaw(ctx)(rb.ToGetRequestInformation(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{
				QueryParameters: &groups.GroupsRequestBuilderGetQueryParameters{Select: groupSelect, Top: &top},
			}))
		}, toGroup)
}

// Members lists a group's direct members of every type, one slice per
// Graph page.
func (c *Client) Members(ctx context.Context, groupID string) iter.Seq2[[]Member, error] {
	if groupID == "" {
		return failed[[]Member](errors.New("graph: list members: group id is empty"))
	}
	return pages(ctx, c, membersWhat(groupID), c.membersGet(groupID), toMember)
}

// membersWhat names a group's member list in errors and logs.
func membersWhat(groupID string) string { return "members of group " + groupID }

// membersGet reads one page of a group's direct members: the first, with
// entrasync's query options, or the one a nextLink names.
func (c *Client) membersGet(groupID string) func(ctx context.Context, next string) ([]byte, error) {
	return func(ctx context.Context, next string) ([]byte, error) {
		return c.sendRaw(ctx)(c.membersRequest(ctx, groupID, next))
	}
}

// membersRequest is the request for one page of a group's direct members,
// sent on its own or as an item of a JSON batch.
func (c *Client) membersRequest(ctx context.Context, groupID, next string) (*abs.RequestInformation, error) {
	rb := c.sdk.Groups().ByGroupId(groupID).Members()
	if next != "" {
		return rb.WithUrl(next).ToGetRequestInformation(ctx, nil)
	}
	return rb.ToGetRequestInformation(ctx, c.membersConfig())
}

// membersConfig is the query of a member list's first page.
func (c *Client) membersConfig() *groups.ItemMembersRequestBuilderGetRequestConfiguration {
	top := int32(c.cfg.PageSize)
	return &groups.ItemMembersRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.ItemMembersRequestBuilderGetQueryParameters{Select: memberSelect, Top: &top},
	}
}

// TransitiveUsers lists the users in a group's flattened, nested
// membership as Graph computes it (transitiveMembers cast to
// microsoft.graph.user), with the properties Users gives, one slice per
// Graph page. A user in several nested groups comes once. The cast is
// sent as an advanced query (ConsistencyLevel: eventual, $count=true),
// which the transitiveMembers reference lists as required for OData
// casts; the header goes with every page, since the SDK does not carry
// it to a nextLink.
func (c *Client) TransitiveUsers(ctx context.Context, groupID string) iter.Seq2[[]User, error] {
	if groupID == "" {
		return failed[[]User](errors.New("graph: list transitive members: group id is empty"))
	}
	return pages(ctx, c, transitiveWhat(groupID), c.transitiveGet(groupID), toUser)
}

// transitiveWhat names a group's transitive user list in errors and logs.
func transitiveWhat(groupID string) string { return "transitive users of group " + groupID }

// transitiveGet reads one page of a group's transitive users: the first,
// with entrasync's query options, or the one a nextLink names.
func (c *Client) transitiveGet(groupID string) func(ctx context.Context, next string) ([]byte, error) {
	return func(ctx context.Context, next string) ([]byte, error) {
		return c.sendRaw(ctx)(c.transitiveRequest(ctx, groupID, next))
	}
}

// transitiveRequest is the request for one page of a group's transitive
// users, sent on its own or as an item of a JSON batch. A later page
// carries the advanced query's header too: the SDK does not carry it to a
// nextLink.
func (c *Client) transitiveRequest(ctx context.Context, groupID, next string) (*abs.RequestInformation, error) {
	rb := c.sdk.Groups().ByGroupId(groupID).TransitiveMembers().GraphUser()
	if next != "" {
		return rb.WithUrl(next).ToGetRequestInformation(ctx,
			&groups.ItemTransitiveMembersGraphUserRequestBuilderGetRequestConfiguration{Headers: advancedQueryHeaders()})
	}
	return rb.ToGetRequestInformation(ctx, c.transitiveConfig())
}

// transitiveConfig is the query of a transitive user list's first page.
func (c *Client) transitiveConfig() *groups.ItemTransitiveMembersGraphUserRequestBuilderGetRequestConfiguration {
	top := int32(c.cfg.PageSize)
	count := true
	return &groups.ItemTransitiveMembersGraphUserRequestBuilderGetRequestConfiguration{
		Headers: advancedQueryHeaders(),
		QueryParameters: &groups.ItemTransitiveMembersGraphUserRequestBuilderGetQueryParameters{
			Select: userSelect, Top: &top, Count: &count},
	}
}

// advancedQueryHeaders are the headers of an advanced query
// (concepts/aad-advanced-queries.md).
func advancedQueryHeaders() *abs.RequestHeaders {
	h := abs.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	return h
}

// pages follows @odata.nextLink page by page, converting each page as it
// comes, so memory holds one page. The SDK's PageIterator is not used: it
// yields items, not pages, and maps errors on later pages only through a
// global registry; every page here goes through the generated request
// builder and the adapter's error mapping alike.
func pages[T, O any](ctx context.Context, c *Client, what string,
	get func(ctx context.Context, next string) ([]byte, error), convert func(*T) (O, error),
) iter.Seq2[[]O, error] {
	return pagesFrom(ctx, c, what, "", 0, get, convert)
}

// pagesFrom is pages starting at page number page, read from the nextLink
// next ("" for the first page): a listing whose first page came another
// way (a $batch) goes on from its nextLink.
func pagesFrom[T, O any](ctx context.Context, c *Client, what, next string, page int,
	get func(ctx context.Context, next string) ([]byte, error), convert func(*T) (O, error),
) iter.Seq2[[]O, error] {
	return func(yield func([]O, error) bool) {
		for ; ; page++ {
			if err := ctx.Err(); err != nil {
				yield(nil, fmt.Errorf("graph: list %s, page %d: %w", what, page, err))
				return
			}
			body, x, err := exchangeOnce(ctx, next, get)
			if err != nil {
				if ctx.Err() != nil {
					// Whatever the SDK made of it, the caller gave up.
					yield(nil, fmt.Errorf("graph: list %s, page %d: %w", what, page, ctx.Err()))
					return
				}
				yield(nil, fmt.Errorf("graph: list %s, page %d: %w", what, page, translate(err, x)))
				return
			}
			if body == nil {
				yield(nil, fmt.Errorf("graph: list %s, page %d: %w: empty body (HTTP %d)", what, page, ErrMalformed, x.status))
				return
			}
			out, nl, err := pageOf(c, what, page, body, x.status, convert)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(out, nil) {
				return
			}
			if nl == "" {
				return
			}
			if err := checkNextLink(what, page, nl); err != nil {
				yield(nil, err)
				return
			}
			if nl == next {
				yield(nil, fmt.Errorf("graph: list %s, page %d: %w: nextLink points to the same page", what, page, ErrMalformed))
				return
			}
			next = nl
		}
	}
}

// pageOf decodes and converts one page of a listing (an answer of HTTP
// status) and returns its nextLink ("" on the last page).
func pageOf[T, O any](c *Client, what string, page int, body []byte, status int, convert func(*T) (O, error)) ([]O, string, error) {
	p, err := decodePage[T](body, status)
	if err != nil {
		return nil, "", fmt.Errorf("graph: list %s, page %d: %w", what, page, err)
	}
	out := make([]O, 0, len(p.Value))
	for i, it := range p.Value {
		o, err := convert(it)
		if err != nil {
			return nil, "", fmt.Errorf("graph: list %s, page %d, item %d: %w", what, page, i, err)
		}
		out = append(out, o)
	}
	nl := deref(p.NextLink)
	c.log.Debug().Str("list", what).Int("page", page).Int("items", len(out)).Bool("more", nl != "").Msg("graph: page read")
	return out, nl, nil
}

// checkNextLink refuses a nextLink that is not an absolute URL: Graph's
// is, and it is followed as given.
func checkNextLink(what string, page int, nl string) error {
	if u, err := url.Parse(nl); err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("graph: list %s, page %d: %w: nextLink %q is not an absolute URL", what, page, ErrMalformed, nl)
	}
	return nil
}

func failed[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}
