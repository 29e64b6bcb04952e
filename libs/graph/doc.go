// Package graph is entrasync's adapter to Microsoft Graph: the only package
// that speaks to Graph and to the Entra ID token authority, through
// msgraph-sdk-go and azidentity. Its API is free of SDK types, so callers
// never import them.
//
// Reads are paged: every listing is an iterator that yields one slice per
// Graph page, in Graph's order, and holds at most one page in memory.
//
// MemberLists reads many groups' member lists through one stream of JSON
// batches ($batch, up to 20 requests each): first pages of lists not
// started and the nextLinks of lists being read share batches, each list
// handed to the caller in a goroutine of its own (lists.go). A request
// Graph throttles inside a batch is sent again, in a later batch, once
// its own Retry-After has passed (batch.go). TransitiveUserLists does the
// same for groups' transitive user lists (TransitiveUsers:
// transitiveMembers cast to users, as an advanced query whose header each
// batch item carries).
//
// Retries live in one place, an http.RoundTripper under the SDK's middleware
// pipeline (from which the SDK's own retry handler is removed, so retries
// never multiply): 429, 503 and 504 wait exactly the Retry-After Graph asked
// for (fractional seconds and HTTP dates included) up to MaxRetryAfter
// (a longer one ends the attempt with ErrWaitTooLong, retryable), other
// transient failures back off exponentially with jitter, and a cancelled
// context stops the wait. A 401 from Graph gets one new token from the
// authority and one more try.
//
// Tokens (token.go) name Graph's resource, never the URL Graph is reached
// by. The token authority is retried the same way when it does not answer
// or answers 5xx/429/408; only its refusal of the credentials is final.
//
// Delta queries (delta.go): UsersDelta and GroupsDelta read one round of
// changes, a page at a time, from "" (every object) or from the deltaLink
// the last page of the previous round carried; LatestDeltaLink gives a
// link at "now" without reading objects. Pages hold changed objects in
// their whole current state, removed ones with Graph's reason (restorable
// or gone), and for groups the direct membership changes of
// members@delta, which a big group spreads over several pages.
//
// Errors are classified where they are born: *Error for Graph's error
// bodies, ErrAuth when the authority rejects the credentials, ErrMalformed
// for responses that cannot be read, ErrFilterRefused when Graph refuses
// a users filter, ErrResync (*ResyncError) when a delta round's state is
// gone and only a full sync helps; IsPermanent and IsThrottled tell the
// caller what to do with them.
//
// A users filter goes out as an advanced query (ConsistencyLevel:
// eventual, $count=true) unless every condition in it is one Graph's
// docs say works without (filter.go); in doubt it is advanced, which
// Graph serves for any filter it serves at all.
package graph
