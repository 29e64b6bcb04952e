package httpbody

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
)

// shortReads hands out its data a few bytes at a time, as a connection
// does, then fails with err (io.EOF for a clean end).
type shortReads struct {
	data []byte
	err  error
	rng  *rand.Rand
}

func (r *shortReads) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := min(len(p), len(r.data), 1+r.rng.IntN(5000))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3*chunk+77)
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	cut := errors.New("connection reset by peer")
	for _, tc := range []struct {
		name    string
		size    int   // bytes the body has
		length  int64 // Content-Length; -1 unknown
		err     error // what the body ends with
		wantErr bool
	}{
		{"unknown length, several chunks", len(data), -1, io.EOF, false},
		{"unknown length, exactly one chunk", chunk, -1, io.EOF, false},
		{"unknown length, empty", 0, -1, io.EOF, false},
		{"announced length", len(data), int64(len(data)), io.EOF, false},
		{"unknown length, cut mid-body", 2*chunk + 5, -1, cut, true},
		{"announced length, cut short", 1000, int64(len(data)), io.ErrUnexpectedEOF, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{ContentLength: tc.length,
				Body: io.NopCloser(&shortReads{data: data[:tc.size], err: tc.err, rng: rng})}
			got, err := Read(resp.Body, resp.ContentLength, 1<<20)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("read %d bytes without an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[:tc.size]) {
				t.Fatalf("read %d bytes, not the body's %d", len(got), tc.size)
			}
		})
	}
	// Pooled chunks are reused: a second body must not show the first.
	resp := &http.Response{ContentLength: -1, Body: io.NopCloser(bytes.NewReader([]byte("short")))}
	if got, err := Read(resp.Body, resp.ContentLength, 1<<20); err != nil || string(got) != "short" {
		t.Fatalf("read %q, %v after a longer body", got, err)
	}
}

func TestReadRefusesMoreThanMax(t *testing.T) {
	for _, length := range []int64{-1, 101} {
		_, err := Read(bytes.NewReader(make([]byte, 101)), length, 100)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("length %d: %v, want ErrTooLarge", length, err)
		}
	}
	if b, err := Read(bytes.NewReader(make([]byte, 100)), -1, 100); err != nil || len(b) != 100 {
		t.Fatalf("a body of exactly max: %d bytes, %v", len(b), err)
	}
}

// A body a layer below read whole (Body) is handed on as it is, not
// copied again; one already partly read gives the rest, and the limit
// holds for it too.
func TestReadTakesABodyInMemoryAsItIs(t *testing.T) {
	b := []byte("a batch answer read by the layer below")
	got, err := Read(Body(b), int64(len(b)), 1<<20)
	if err != nil || len(got) != len(b) || &got[0] != &b[0] {
		t.Fatalf("read %q, %v; want the same slice back", got, err)
	}

	partly := Body(b)
	if _, err := partly.Read(make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(partly, -1, 1<<20); err != nil || !bytes.Equal(got, b[2:]) {
		t.Fatalf("after two bytes read: %q, %v; want %q", got, err, b[2:])
	}

	if _, err := Read(Body(b), int64(len(b)), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a body over the limit: %v, want ErrTooLarge", err)
	}
}
