package graph

import (
	"errors"
	"io"
	"net/http"
	"testing"
)

// A body over maxBody, announced or not, is a malformed answer.
func TestReadBodyRefusesAnOversizedBody(t *testing.T) {
	for _, length := range []int64{-1, maxBody + 1} {
		resp := &http.Response{ContentLength: length, Body: io.NopCloser(io.LimitReader(zeros{}, maxBody+1))}
		if _, err := readBody(resp); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Content-Length %d: %v, want ErrMalformed", length, err)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
