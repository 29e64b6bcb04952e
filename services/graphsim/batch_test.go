package graphsim_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

// batchResp is a $batch answer: the outer status and each item by id.
type batchResp struct {
	status int
	raw    string
	err    string // outer error code
	order  []string
	items  map[string]batchItemResp
}

type batchItemResp struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// batch posts a $batch body, gzipped when zip is set, as the Go SDK does.
func (s *sim) batch(token string, body any, zip bool) batchResp {
	s.t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			s.t.Fatal(err)
		}
	}
	var rd io.Reader = bytes.NewReader(raw)
	if zip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		rd = &buf
	}
	req, _ := http.NewRequest(http.MethodPost, s.srv.GraphURL()+"/$batch", rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if zip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	br := batchResp{status: resp.StatusCode, raw: string(out), items: map[string]batchItemResp{}}
	var payload struct {
		Responses []struct {
			ID string `json:"id"`
			batchItemResp
		} `json:"responses"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out, &payload); err != nil {
		s.t.Fatalf("batch answer is not JSON: %s", out)
	}
	br.err = payload.Error.Code
	for _, r := range payload.Responses {
		br.order = append(br.order, r.ID)
		br.items[r.ID] = r.batchItemResp
	}
	return br
}

type req = map[string]any

func getItem(id, url string) req { return req{"id": id, "method": "GET", "url": url} }

func TestBatchAnswersEachItemOnItsOwn(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	d := graphsim.Generate(graphsim.Spec{Seed: 31, Users: 30, Groups: 4})
	tc := s.addTenant(d)
	u := d.Users()[2]
	for _, zip := range []bool{false, true} {
		b := s.batch(tc.token, req{"requests": []req{
			getItem("1", "/users?$select=id,displayName&$top=5"),
			getItem("2", "users/"+u.ID), // no leading slash, as in the docs' example
			getItem("3", "/groups/not-a-guid"),
			getItem("4", "/users/delta()?$select=displayName"),
			{"id": "5", "method": "GET", "url": "/users/$count", "headers": req{"ConsistencyLevel": "eventual"}},
			{"id": "6", "method": "POST", "url": "/users", "body": req{"displayName": "x"}, "headers": req{"Content-Type": "application/json"}},
		}}, zip)
		if b.status != 200 || len(b.items) != 6 {
			t.Fatalf("zip=%v: %d %s", zip, b.status, b.raw)
		}
		want := map[string]int{"1": 200, "2": 200, "3": 400, "4": 200, "5": 200, "6": 405}
		for id, st := range want {
			if b.items[id].Status != st {
				t.Errorf("zip=%v item %s: %d, want %d (%s)", zip, id, b.items[id].Status, st, b.items[id].Body)
			}
		}
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(b.items["1"].Body, &page); err != nil || len(page.Value) != 5 || page.NextLink == "" {
			t.Errorf("item 1 body is not the JSON page: %s", b.items["1"].Body)
		}
		if !strings.HasPrefix(page.NextLink, s.srv.GraphURL()+"/users?") {
			t.Errorf("item 1 nextLink %s", page.NextLink)
		}
		var user map[string]any
		if json.Unmarshal(b.items["2"].Body, &user); user["id"] != u.ID {
			t.Errorf("item 2: %s", b.items["2"].Body)
		}
		if got := b.items["1"].Headers["x-ms-resource-unit"]; got != "1" {
			t.Errorf("item 1 x-ms-resource-unit %q, want 1 (users 2, $select -1)", got)
		}
		if b.items["1"].Headers["request-id"] == "" || b.items["1"].Headers["request-id"] == b.items["2"].Headers["request-id"] {
			t.Errorf("items' request-ids %q and %q: want two", b.items["1"].Headers["request-id"], b.items["2"].Headers["request-id"])
		}
		// JSON keys keep their case: Graph's spellings (json-batching.md).
		if got := b.items["1"].Headers["OData-Version"]; got != "4.0" {
			t.Errorf("item 1 OData-Version %q (headers %v)", got, b.items["1"].Headers)
		}
		var count string
		if json.Unmarshal(b.items["5"].Body, &count); count != "30" {
			t.Errorf("item 5 ($count): %s", b.items["5"].Body)
		}
		var delta map[string]any
		if json.Unmarshal(b.items["4"].Body, &delta); delta["@odata.deltaLink"] == nil {
			t.Errorf("item 4 (delta): %s", b.items["4"].Body)
		} else if dl := delta["@odata.deltaLink"].(string); !strings.HasPrefix(dl, s.srv.GraphURL()+"/users/delta()?$deltatoken=") {
			t.Errorf("item 4 deltaLink %s", dl)
		} else if r := s.get(tc.token, dl); r.status != 200 {
			t.Errorf("following a batch item's deltaLink: %d", r.status)
		}
	}
	inBatch := 0
	for _, r := range s.srv.Requests() {
		if r.InBatch {
			inBatch++
		}
	}
	if inBatch != 12 {
		t.Errorf("request log: %d batch items, want 12", inBatch)
	}
}

func TestBatchRefusesMalformedBatches(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 32, Users: 5}))
	var twentyOne, twenty []req
	for i := range 21 {
		twentyOne = append(twentyOne, getItem(fmt.Sprint(i), "/users"))
	}
	twenty = twentyOne[:20]
	cases := []struct {
		name   string
		body   any
		status int
	}{
		{"21 requests", req{"requests": twentyOne}, 400},
		{"20 requests", req{"requests": twenty}, 200},
		{"not JSON", []byte("requests: 1"), 400},
		{"no requests", req{"calls": twenty}, 400},
		{"ids differ only in case", req{"requests": []req{getItem("a", "/users"), getItem("A", "/users")}}, 400},
		{"no url", req{"requests": []req{{"id": "1", "method": "GET"}}}, 400},
		{"absolute url", req{"requests": []req{getItem("1", "https://graph.microsoft.com/v1.0/users")}}, 400},
		{"body without Content-Type", req{"requests": []req{{"id": "1", "method": "POST", "url": "/users", "body": req{}}}}, 400},
		{"unknown dependency", req{"requests": []req{{"id": "1", "method": "GET", "url": "/users", "dependsOn": []string{"9"}}}}, 400},
		{"dependency cycle", req{"requests": []req{
			{"id": "1", "method": "GET", "url": "/users", "dependsOn": []string{"2"}},
			{"id": "2", "method": "GET", "url": "/users", "dependsOn": []string{"1"}}}}, 400},
	}
	for _, c := range cases {
		b := s.batch(tc.token, c.body, false)
		if b.status != c.status {
			t.Errorf("%s: %d, want %d (%s)", c.name, b.status, c.status, b.raw)
		}
		if c.status == 400 && b.err != "BadRequest" {
			t.Errorf("%s: error code %q", c.name, b.err)
		}
	}
	if r := s.get(tc.token, "/$batch"); r.status != 405 {
		t.Errorf("GET $batch: %d", r.status)
	}
}

func TestBatchItemsAreThrottledOnTheirOwn(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 33, Users: 8}))
	items := []req{getItem("a", "/users"), getItem("b", "/users"), getItem("c", "/users")}

	s.srv.SetFaults(tc.id, graphsim.Faults{FailNext: []int{429}, RetryAfter: "2.5"})
	b := s.batch(tc.token, req{"requests": items}, false)
	statuses := map[int]int{}
	for _, it := range b.items {
		statuses[it.Status]++
		if it.Status == 429 && it.Headers["Retry-After"] != "2.5" {
			t.Errorf("429 item without its Retry-After: %v", it.Headers)
		}
	}
	if b.status != 200 || statuses[429] != 1 || statuses[200] != 2 {
		t.Errorf("one injected 429: outer %d, items %v", b.status, statuses)
	}

	// The budget: each /users costs 2 of 3 resource units.
	s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: 3})
	b = s.batch(tc.token, req{"requests": items}, false)
	statuses = map[int]int{}
	for _, it := range b.items {
		statuses[it.Status]++
		if it.Status == 429 {
			if it.Headers["Retry-After"] == "" || it.Headers["x-ms-throttle-information"] != "ResourceUnitLimitExceeded" ||
				it.Headers["x-ms-throttle-scope"] != "Tenant_Application/ReadWrite/"+tc.clientID+"/"+tc.id {
				t.Errorf("budget 429 item headers: %v", it.Headers)
			}
		}
	}
	if b.status != 200 || statuses[429] != 2 || statuses[200] != 1 {
		t.Errorf("budget of 3 for three 2-unit items: outer %d, items %v", b.status, statuses)
	}
}

func TestBatchDependsOn(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 34, Users: 4}))
	b := s.batch(tc.token, req{"requests": []req{
		{"id": "3", "method": "GET", "url": "/users", "dependsOn": []string{"2"}},
		getItem("1", "/users/00000000-0000-4000-8000-000000000000"),
		{"id": "2", "method": "GET", "url": "/users?$top=1", "dependsOn": []string{"1"}},
		getItem("4", "/groups"),
		{"id": "5", "method": "GET", "url": "/users", "dependsOn": []string{"4"}},
	}}, false)
	want := map[string]int{"1": 404, "2": 424, "3": 424, "4": 200, "5": 200}
	for id, st := range want {
		if b.items[id].Status != st {
			t.Errorf("item %s: %d, want %d", id, b.items[id].Status, st)
		}
	}
}

func TestBatchResponsesComeOutOfOrder(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{BatchSeed: 7})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 35, Users: 4}))
	var items []req
	var sent []string
	for i := range 12 {
		items = append(items, getItem(fmt.Sprint(i), "/users?$top=1"))
		sent = append(sent, fmt.Sprint(i))
	}
	first := s.batch(tc.token, req{"requests": items}, false)
	again := s.batch(tc.token, req{"requests": items}, false)
	if slices.Equal(first.order, sent) {
		t.Error("responses in request order")
	}
	if !slices.Equal(first.order, again.order) {
		t.Errorf("the same batch and seed give different orders: %v, %v", first.order, again.order)
	}
	got, want := slices.Clone(first.order), slices.Clone(sent)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("responses %v, want one for each of %v", first.order, sent)
	}
}

func TestServiceUnavailableWithAndWithoutRetryAfter(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 36, Users: 4}))
	cases := []struct {
		faults graphsim.Faults
		want   string
	}{
		{graphsim.Faults{FailNext: []int{503}}, ""},
		{graphsim.Faults{FailNext: []int{503}, ServiceUnavailableRetryAfter: "3"}, "3"},
		{graphsim.Faults{ServiceUnavailableEvery: 1, ServiceUnavailableRetryAfter: "0.5"}, "0.5"},
	}
	for _, c := range cases {
		s.srv.SetFaults(tc.id, c.faults)
		r := s.get(tc.token, "/users")
		if r.status != 503 || r.header.Get("Retry-After") != c.want {
			t.Errorf("%+v: %d Retry-After %q, want 503 %q", c.faults, r.status, r.header.Get("Retry-After"), c.want)
		}
	}
	s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: 1})
	if r := s.get(tc.token, "/users"); r.status != 429 || r.header.Get("x-ms-throttle-scope") != "Tenant_Application/ReadWrite/"+tc.clientID+"/"+tc.id ||
		r.header.Get("x-ms-throttle-information") != "ResourceUnitLimitExceeded" {
		t.Errorf("budget 429: %d %v", r.status, r.header)
	}
}
