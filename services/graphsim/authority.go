package graphsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// graphAppID is Microsoft Graph's well-known application ID; a scope may
// name the resource by it instead of by URL.
const graphAppID = "00000003-0000-0000-c000-000000000000"

// serveAuthority answers the token authority's endpoints under /{tenant}/:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	POST /{tenant}/oauth2/v2.0/token            (client credentials)
//	GET  /{tenant}/discovery/v2.0/keys          (an empty key set)
//	GET  /common/discovery/instance             (instance discovery)
//
// Errors come in the authority's shape: error, error_description with an
// AADSTS code, error_codes, timestamp, trace_id, correlation_id.
func (s *Server) serveAuthority(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	sw := &statusWriter{ResponseWriter: w}
	rec := Request{At: start, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	defer func() {
		rec.Status = sw.status
		s.record(rec)
		s.log.Debug().Str("tenant", rec.Tenant).Str("method", r.Method).Str("path", r.URL.Path).
			Int("status", sw.status).Dur("took", time.Since(start)).Msg("authority request")
	}()

	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	rest := strings.Join(parts[1:], "/")
	tenantKey := parts[0]
	rec.Tenant = strings.ToLower(tenantKey)
	if t := s.tenant(tenantKey); t != nil && s.stallAuthority(t.id) {
		rec.Tenant = t.id
		// No answer, not even an error: the client's own timeout (or its
		// going away) ends the request, as with an authority that is slow
		// or unreachable.
		<-r.Context().Done()
		return
	}
	switch {
	case tenantKey == "common" && rest == "discovery/instance":
		s.instanceDiscovery(sw, r)
	case rest == "v2.0/.well-known/openid-configuration":
		s.openIDConfiguration(sw, r, tenantKey)
	case rest == "oauth2/v2.0/token":
		rec.Authorized = s.token(sw, r, tenantKey, &rec)
	case rest == "discovery/v2.0/keys":
		writeJSON(sw, http.StatusOK, map[string]any{"keys": []any{}})
	default:
		http.NotFound(sw, r)
	}
}

// openIDConfiguration is what MSAL reads to find the token endpoint. Its
// issuer shares scheme and host with the authority, which MSAL checks.
func (s *Server) openIDConfiguration(w http.ResponseWriter, r *http.Request, tenantKey string) {
	t := s.tenant(tenantKey)
	if t == nil && !isMultiTenantAlias(tenantKey) {
		s.authorityError(w, r, http.StatusBadRequest, "invalid_tenant", 90002, tenantNotFound(tenantKey))
		return
	}
	id := "{tenantid}"
	if t != nil {
		id = t.id
	}
	base := s.origin + "/" + tenantKey
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              s.origin + "/" + tenantKey + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                s.origin + "/" + id + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     s.origin + "/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "tid", "ver", "oid"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   strings.TrimPrefix(s.origin, "https://"),
		"cloud_graph_host_name":                 strings.TrimPrefix(s.origin, "https://"),
		"msgraph_host":                          strings.TrimPrefix(s.origin, "https://"),
		"rbac_url":                              "https://pas.windows.net",
	})
}

func isMultiTenantAlias(t string) bool {
	switch strings.ToLower(t) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

// instanceDiscovery answers MSAL's instance discovery with this host as
// its own only alias, for clients that do not turn discovery off (MSAL
// only asks a non-Microsoft host when it trusts it, so this is rare).
func (s *Server) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimPrefix(s.origin, "https://")
	tenantEndpoint := s.origin + "/common/v2.0/.well-known/openid-configuration"
	if ae, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil {
		if parts := strings.Split(strings.Trim(ae.Path, "/"), "/"); len(parts) > 0 && parts[0] != "" {
			tenantEndpoint = s.origin + "/" + parts[0] + "/v2.0/.well-known/openid-configuration"
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": tenantEndpoint,
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

// token issues an access token for the client credentials grant, checking
// what the real authority checks in the order it does. It reports whether
// the credentials were accepted.
func (s *Server) token(w http.ResponseWriter, r *http.Request, tenantKey string, rec *Request) bool {
	if r.Method != http.MethodPost {
		s.authorityError(w, r, http.StatusBadRequest, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts POST, OPTIONS requests. Received a %s request.", r.Method))
		return false
	}
	t := s.tenant(tenantKey)
	if t == nil {
		s.authorityError(w, r, http.StatusBadRequest, "invalid_request", 90002, tenantNotFound(tenantKey))
		return false
	}
	rec.Tenant = t.id
	if err := r.ParseForm(); err != nil {
		s.authorityError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
		return false
	}
	form := r.PostForm
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok { // client_secret_basic
		clientID, secret = u, p
	}
	grant := form.Get("grant_type")
	switch {
	case grant == "":
		s.authorityError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
		return false
	case grant != "client_credentials":
		s.authorityError(w, r, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant))
		return false
	case clientID == "":
		s.authorityError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'.")
		return false
	case !strings.EqualFold(clientID, t.clientID):
		s.authorityError(w, r, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clientID, tenantName(t)))
		return false
	}
	resource, errCode, errMsg := s.resourceOf(form.Get("scope"), t)
	if errCode != 0 {
		kind := "invalid_scope"
		if errCode == 500011 {
			kind = "invalid_resource"
		}
		if errCode == 900144 {
			kind = "invalid_request"
		}
		s.authorityError(w, r, http.StatusBadRequest, kind, errCode, errMsg)
		return false
	}
	switch {
	case secret == "" && form.Get("client_assertion") == "":
		s.authorityError(w, r, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return false
	case subtle.ConstantTimeCompare([]byte(secret), []byte(t.secret)) != 1:
		s.authorityError(w, r, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.",
			clientID))
		return false
	}
	now := s.now()
	lifetime := int(s.opts.TokenLifetime / time.Second)
	tok := s.mintToken(tokenClaims{
		Aud: resource, Iss: "https://sts.windows.net/" + t.id + "/", Iat: now.Unix(), Nbf: now.Unix(),
		Exp: now.Unix() + int64(lifetime), AppID: t.clientID, Tid: t.id, Sub: t.clientID, Oid: t.clientID,
		IdTyp: "app", Ver: "1.0", Roles: []string{"User.Read.All", "GroupMember.Read.All", "Device.Read.All"},
	})
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": tok,
	})
	return true
}

// resourceOf checks a client-credentials scope: it must name one resource
// with "/.default", Graph by URL or by its app ID. The URL a client uses
// to reach Graph (this server's origin, a gateway's) is not a resource
// Entra ID knows, so it is refused with AADSTS500011 as Entra ID refuses
// it: accepting it would hide a client that derives its scope from its
// base URL. OpenID scopes MSAL adds on its own are ignored, as the
// authority does.
func (s *Server) resourceOf(scope string, t *tenant) (resource string, code int, msg string) {
	if strings.TrimSpace(scope) == "" {
		return "", 900144, "The request body must contain the following parameter: 'scope'."
	}
	for _, sc := range strings.Fields(scope) {
		switch strings.ToLower(sc) {
		case "openid", "profile", "offline_access", "email":
			continue
		}
		if !strings.HasSuffix(sc, "/.default") {
			return "", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", sc)
		}
		res := strings.TrimSuffix(sc, "/.default")
		switch strings.ToLower(strings.TrimRight(res, "/")) {
		case "https://graph.microsoft.com", graphAppID:
			return "https://graph.microsoft.com", 0, ""
		}
		return "", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", res, tenantName(t))
	}
	return "", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
}

func tenantName(t *tenant) string {
	if t.dir != nil {
		return strings.TrimSuffix(t.dir.Domain(), ".onmicrosoft.com")
	}
	return t.id
}

func tenantNotFound(key string) string {
	return fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", key)
}

// authorityError writes the authority's error body. The description ends
// with the trace and correlation IDs and a timestamp, as the real one's
// does; clients (azidentity) put the whole body in their error.
func (s *Server) authorityError(w http.ResponseWriter, r *http.Request, status int, kind string, code int, msg string) {
	now := s.now().UTC()
	trace := randomGUID()
	corr := clientRequestID(r, randomGUID())
	ts := now.Format("2006-01-02 15:04:05Z")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("x-ms-request-id", trace)
	writeJSON(w, status, map[string]any{
		"error":             kind,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code, msg, trace, corr, ts),
		"error_codes":       []int{code},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", s.origin, code),
	})
}

// tokenClaims are the claims of an issued access token. The token is a
// JWT (HS256 with the server's key), so clients that peek at claims see
// the usual tid, appid and roles.
type tokenClaims struct {
	Aud   string   `json:"aud"`
	Iss   string   `json:"iss"`
	Iat   int64    `json:"iat"`
	Nbf   int64    `json:"nbf"`
	Exp   int64    `json:"exp"`
	AppID string   `json:"appid"`
	IdTyp string   `json:"idtyp"`
	Oid   string   `json:"oid"`
	Roles []string `json:"roles"`
	Sub   string   `json:"sub"`
	Tid   string   `json:"tid"`
	Ver   string   `json:"ver"`
	Nonce string   `json:"uti"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256","kid":"graphsim"}`))

func (s *Server) mintToken(c tokenClaims) string {
	c.Nonce = randomGUID()
	payload, _ := json.Marshal(c)
	signing := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signing + "." + base64.RawURLEncoding.EncodeToString(s.mac([]byte(signing)))
}

func (s *Server) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(b)
	return m.Sum(nil)
}

// authenticate checks a Graph request's bearer token and returns its
// tenant, or the 401 Graph would send.
func (s *Server) authenticate(r *http.Request) (*tenant, *graphError) {
	fail := func(msg string) (*tenant, *graphError) {
		return nil, &graphError{status: http.StatusUnauthorized, code: "InvalidAuthenticationToken", message: msg}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return fail("Access token is empty.")
	}
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return fail("Access token is empty.")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fail("IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.mac([]byte(parts[0]+"."+parts[1]))) {
		return fail("Access token validation failure. Invalid signature.")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c tokenClaims
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return fail("Access token validation failure.")
	}
	if c.Aud != "https://graph.microsoft.com" {
		return fail("Access token validation failure. Invalid audience.")
	}
	now := s.now().Unix()
	if now >= c.Exp {
		return fail("Lifetime validation failed, the token is expired.")
	}
	if now < c.Nbf-300 {
		return fail("Lifetime validation failed, the token is not yet valid.")
	}
	t := s.tenant(c.Tid)
	if t == nil || t.dir == nil {
		return fail("Access token validation failure. The tenant is unknown.")
	}
	return t, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
