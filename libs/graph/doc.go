// Package graph is entrasync's adapter to Microsoft Graph: the only package
// that speaks to Graph and to the Entra ID token authority, through
// msgraph-sdk-go and azidentity. Its API is free of SDK types, so callers
// never import them.
//
// Reads are paged: every listing is an iterator that yields one slice per
// Graph page, in Graph's order, and holds at most one page in memory.
//
// Retries live in one place, an http.RoundTripper under the SDK's middleware
// pipeline (from which the SDK's own retry handler is removed, so retries
// never multiply): 429, 503 and 504 wait exactly the Retry-After Graph asked
// for (fractional seconds and HTTP dates included), other transient failures
// back off exponentially with jitter, and a cancelled context stops the wait.
//
// Errors are classified where they are born: *Error for Graph's error
// bodies, ErrAuth when the authority rejects the credentials, ErrMalformed
// for responses that cannot be read; IsPermanent and IsThrottled tell the
// caller what to do with them.
package graph
