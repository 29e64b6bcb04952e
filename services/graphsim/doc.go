// Package graphsim is a local Microsoft Graph v1.0 and Entra ID token
// authority for entrasync's tests, demo and benchmarks.
//
// A Directory is one tenant's users, groups, devices, contacts and
// memberships; Generate builds one from a seed. A Server serves any
// number of tenants over HTTPS with its own CA: the authority issues
// client-credentials tokens, and Graph answers users, groups, members and
// transitive members with Graph's paging, $select default sets, error
// bodies and injected faults (429 with Retry-After, 503, latency), users
// and groups delta queries computed from the Directory's change log, and
// JSON batches ($batch) whose items are answered and throttled one by
// one. Directory.Churn changes a tenant as an organisation changes.
//
// The real msgraph-sdk-go and azidentity talk to it unchanged: point
// GRAPH_BASE_URL at GraphURL, AZURE_AUTHORITY_HOST at AuthorityURL (with
// instance discovery off), and trust CAPEM. See README.md for what is
// faithful to Graph and what is not.
package graphsim
