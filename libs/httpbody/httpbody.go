// Package httpbody reads HTTP bodies whole with as little garbage as it
// can: the fetcher's Graph answers are up to a few MB each ($batch of
// twenty full member pages), read by more than one layer, and
// io.ReadAll's growing chunks and final copy cost about three times a
// body each time.
package httpbody

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrTooLarge is a body longer than Read's limit.
var ErrTooLarge = errors.New("httpbody: body too large")

// Read reads all of r, a body of length bytes (-1: unknown, as
// http.Response.ContentLength says), into one slice of its size:
// allocated once when the length is known, else copied once from pooled
// chunks. A body longer than max is ErrTooLarge; a body that ends early
// or fails is the reader's error.
func Read(r io.Reader, length int64, max int) ([]byte, error) {
	if m, ok := r.(*memory); ok && m.Len() == len(m.b) && len(m.b) <= max {
		// Read whole by a layer below, and not read since: its bytes.
		_, _ = m.Seek(0, io.SeekEnd)
		return m.b, nil
	}
	if length > int64(max) {
		return nil, fmt.Errorf("%w: %d bytes announced, at most %d read", ErrTooLarge, length, max)
	}
	if length >= 0 {
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	var chunks []*[]byte
	defer func() {
		for _, c := range chunks {
			*c = (*c)[:0]
			pool.Put(c)
		}
	}()
	size := 0
	for {
		if len(chunks) == 0 || len(*chunks[len(chunks)-1]) == chunk {
			chunks = append(chunks, pool.Get().(*[]byte))
		}
		c := chunks[len(chunks)-1]
		n, err := r.Read((*c)[len(*c):chunk])
		*c = (*c)[:len(*c)+n]
		if size += n; size > max {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	body := make([]byte, 0, size)
	for _, c := range chunks {
		body = append(body, *c...)
	}
	return body, nil
}

// Body is b as a response body. Read returns b itself for it, not a
// copy: a layer that read a body to look at it hands it on this way.
func Body(b []byte) io.ReadCloser {
	return &memory{Reader: bytes.NewReader(b), b: b}
}

type memory struct {
	*bytes.Reader
	b []byte
}

func (*memory) Close() error { return nil }

// pool holds the chunks Read reads a body of unknown length into before
// it knows the size.
var pool = sync.Pool{New: func() any {
	b := make([]byte, 0, chunk)
	return &b
}}

const chunk = 32 << 10
