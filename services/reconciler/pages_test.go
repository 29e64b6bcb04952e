package reconciler_test

import (
	"testing"

	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// The store keeps its own copy of the wire's page numbering, so that it
// does not import the wire format. The reconciler hands the wire's page
// numbers to the store as they are: the two must agree.
func TestStorePageNumberingIsTheWires(t *testing.T) {
	t.Parallel()
	if store.AttemptPageSpan != syncv1.AttemptPageSpan {
		t.Errorf("store.AttemptPageSpan = %d, syncv1.AttemptPageSpan = %d", store.AttemptPageSpan, syncv1.AttemptPageSpan)
	}
	if store.MaxFetchAttempts != syncv1.MaxFetchAttempts {
		t.Errorf("store.MaxFetchAttempts = %d, syncv1.MaxFetchAttempts = %d", store.MaxFetchAttempts, syncv1.MaxFetchAttempts)
	}
}
