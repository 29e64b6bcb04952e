// Package proto holds entrasync's wire schemas (protobuf) and the Go code
// generated from them. Regenerate with `make proto` after editing a .proto
// file; never edit *.pb.go by hand. The one hand-written file of package
// syncv1, pages.go, holds the constants of the wire's page numbering
// (AttemptPageSpan, MaxFetchAttempts) that fetchers, the reconciler and the
// store share.
package proto
