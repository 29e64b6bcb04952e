package devenv

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// PGProxy stands between a process and Postgres, so a test can take the
// database away (every connection cut, new ones refused) and give it
// back, as an outage or a failover would.
type PGProxy struct {
	ln      net.Listener
	target  string
	refused atomic.Int64

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

// NewPGProxy proxies the server of dbURL; it returns the proxy and the
// URL to connect through it. The proxy stops when the test ends.
func NewPGProxy(t testing.TB, dbURL string) (*PGProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &PGProxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.SetDown(true) })
	go p.serve()
	u.Host = ln.Addr().String()
	return p, u.String()
}

// Refused counts the connections refused while the database was away.
func (p *PGProxy) Refused() int64 { return p.refused.Load() }

func (p *PGProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			p.refused.Add(1)
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, s); s.Close(); c.Close() }()
	}
}

// SetDown cuts every connection and refuses new ones, or lets them in.
func (p *PGProxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}
