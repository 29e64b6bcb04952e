package api

import (
	"context"
	"slices"
	"testing"

	"github.com/entrasync/entrasync/libs/plan"
)

// TestOpenAPIScheduleIsThePlans: the schedule's limits and kinds in
// openapi.yaml are the ones plan.Schedule.Validate holds every writer to.
func TestOpenAPIScheduleIsThePlans(t *testing.T) {
	t.Parallel()
	c, err := loadContract(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := c.doc.Components.Schemas["Schedule"].Value
	every := s.Properties["everyMinutes"].Value
	if *every.Max != plan.MaxEveryMinutes || *every.Min != plan.MinEveryMinutes {
		t.Errorf("openapi.yaml's everyMinutes is %v..%v, plan's %d..%d", *every.Min, *every.Max, plan.MinEveryMinutes, plan.MaxEveryMinutes)
	}
	var kinds []string
	for _, k := range s.Properties["kind"].Value.Enum {
		kinds = append(kinds, k.(string))
	}
	if want := []string{string(plan.ScheduleManual), string(plan.ScheduleInterval), string(plan.ScheduleDaily)}; !slices.Equal(kinds, want) {
		t.Errorf("openapi.yaml's schedule kinds %v, plan's %v", kinds, want)
	}
}
