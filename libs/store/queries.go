package store

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

// The store's SQL lives in queries/*.sql, one statement per block that
// starts with a "-- name: <Name>" line, so it reads (and diffs) as SQL
// rather than as Go strings.
//
//go:embed queries/*.sql
var queryFiles embed.FS

var queries = loadQueries(queryFiles)

// query returns the named statement. Every name is looked up in a
// package-level variable, so a missing one fails at start-up (and in every
// test), never halfway through a request.
func query(name string) string {
	q, ok := queries[name]
	if !ok {
		panic("store: no query named " + name)
	}
	return q
}

func loadQueries(fsys fs.FS) map[string]string {
	out := map[string]string{}
	files, err := fs.Glob(fsys, "queries/*.sql")
	if err != nil {
		panic(err)
	}
	for _, f := range files {
		raw, err := fs.ReadFile(fsys, f)
		if err != nil {
			panic(err)
		}
		name := ""
		var body strings.Builder
		flush := func() {
			if name == "" {
				return
			}
			if _, dup := out[name]; dup {
				panic(fmt.Sprintf("store: query %s defined twice (%s)", name, f))
			}
			// No trailing semicolon: some statements get a locking
			// clause appended.
			out[name] = strings.TrimSuffix(strings.TrimSpace(body.String()), ";")
			body.Reset()
		}
		for line := range strings.Lines(string(raw)) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
				flush()
				name = strings.TrimSpace(n)
				continue
			}
			if name != "" {
				body.WriteString(line)
			}
		}
		flush()
	}
	return out
}
