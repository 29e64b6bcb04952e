package main

import (
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

func TestParse(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want func(config) bool
		err  string
	}{
		{"defaults", nil, nil, func(c config) bool {
			return c.addr == "127.0.0.1:8443" && c.spec == graphsim.DemoSpec() && c.tenant == defaultTenantID &&
				c.clientSecret == defaultClientSecret && c.tokenLifetime == time.Hour
		}, ""},
		{"environment", nil, map[string]string{"GRAPHSIM_USERS": "2500", "GRAPHSIM_CLIENT_SECRET": "s", "GRAPHSIM_CYCLE": "false", "GRAPHSIM_TOKEN_LIFETIME": "5m"},
			func(c config) bool {
				return c.spec.Users == 2500 && c.clientSecret == "s" && !c.spec.Cycle && c.tokenLifetime == 5*time.Minute
			}, ""},
		{"flags win", []string{"-users", "7", "-addr", "127.0.0.1:0", "-ca-out", "/tmp/x.pem"}, map[string]string{"GRAPHSIM_USERS": "2500"},
			func(c config) bool { return c.spec.Users == 7 && c.addr == "127.0.0.1:0" && c.caOut == "/tmp/x.pem" }, ""},
		{"bad count in env", nil, map[string]string{"GRAPHSIM_GROUPS": "many"}, nil, "GRAPHSIM_GROUPS"},
		{"negative flag", []string{"-devices", "-1"}, nil, nil, "-devices"},
		{"bad lifetime", []string{"-token-lifetime", "soon"}, nil, nil, "token lifetime"},
		{"empty secret", []string{"-client-secret", ""}, nil, nil, "client secret"},
		{"unknown flag", []string{"-colour"}, nil, nil, "colour"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parse(c.args, env(c.env))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one naming %q", err, c.err)
				}
				return
			}
			if err != nil || !c.want(got) {
				t.Fatalf("parse = %+v, %v", got, err)
			}
		})
	}
}
