package node

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestHTTPHeldConnections: 2,000 connections that never send a request
// and a client trickling a request body cannot lock the server: a fresh
// request is answered within a second, every held connection is closed
// within the header timeout (or evicted before), the trickle within the
// read timeout, and Shutdown with a request still hanging returns nil.
func TestHTTPHeldConnections(t *testing.T) {
	held := 2000
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 5000 {
		held = int(rl.Cur) / 3
		t.Logf("file descriptor limit %d: holding %d connections", rl.Cur, held)
	}
	lim := HTTPLimits{ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: 2 * time.Second, MaxConns: 512, ShutdownGrace: time.Second}
	srv, err := ServeHTTP("127.0.0.1:0", drainOK, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	conns := make([]net.Conn, 0, held)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	trickle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer trickle.Close()
	fmt.Fprintf(trickle, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n", addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := trickle.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()

	start := time.Now()
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("fresh request with %d connections held: %v", held, err)
	}
	resp.Body.Close()
	t.Logf("fresh request answered in %v with %d connections held (%d now open at the server, %d evicted)", time.Since(start), held, srv.Conns(), srv.evicted)

	// Every held connection is closed within the header timeout, plus a
	// margin; a read that times out instead means it was still open.
	deadline := time.Now().Add(lim.ReadHeaderTimeout + 2*time.Second)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open++
			}
		}
	}
	if open > 0 {
		t.Errorf("%d of %d idle connections still open %v after they were made", open, held, time.Since(start))
	}
	trickle.SetReadDeadline(time.Now().Add(lim.ReadTimeout + 2*time.Second))
	if _, err := io.ReadAll(trickle); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Error("the trickling client was not cut off by the read timeout")
		}
	}

	// A request whose body never comes: Shutdown waits its grace, closes
	// it and reports no error.
	hung, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	fmt.Fprintf(hung, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\nx", addr)
	time.Sleep(100 * time.Millisecond)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown with a hung client: %v", err)
	}
}

// TestHTTPEvictsOldestIdle: past MaxConns a new connection closes the
// oldest idle one, not a fresh one.
func TestHTTPEvictsOldestIdle(t *testing.T) {
	lim := DefaultHTTPLimits()
	lim.MaxConns = 2
	srv, err := ServeHTTP("127.0.0.1:0", http.NotFoundHandler(), lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	var cs []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
		time.Sleep(50 * time.Millisecond)
	}
	cs[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := cs[0].Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("the oldest connection is still open: %v", err)
	}
	fmt.Fprintf(cs[2], "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	cs[2].SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := bufio.NewReader(cs[2]).ReadString('\n'); err != nil || !strings.Contains(line, "404") {
		t.Errorf("the newest connection: %q, %v", line, err)
	}
}

// drainOK reads a request's whole body, then answers "ok".
var drainOK = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	fmt.Fprint(w, "ok")
})

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHostGuard: a request naming a foreign Host (a page that rebound its
// name to 127.0.0.1) gets 403 and reaches nothing, a POST from a foreign
// Origin too; IP addresses, localhost, the listen host and configured
// names pass.
func TestHostGuard(t *testing.T) {
	var reached atomic.Int32
	h := HostGuard("127.0.0.1:5280", []string{"node.example.org"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
	}))
	srv, err := ServeHTTP("127.0.0.1:0", h, DefaultHTTPLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	do := func(method, host, origin string) int {
		req, _ := http.NewRequest(method, "http://"+srv.Addr().String()+APIVersion+"/challenges", strings.NewReader(`{"peer":"x"}`))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	everywhere := HostGuard("0.0.0.0:5280", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for host, want := range map[string]int{"10.0.0.7:5280": http.StatusOK, "[2001:db8::7]:5280": http.StatusOK, "attacker.example": http.StatusForbidden} {
		req, _ := http.NewRequest("GET", "http://x/", nil)
		req.Host = host
		w := &statusRecorder{header: http.Header{}}
		everywhere.ServeHTTP(w, req)
		if got := cmp.Or(w.code, http.StatusOK); got != want {
			t.Errorf("listening on all addresses, Host %q: %d, want %d", host, got, want)
		}
	}
	for _, c := range []struct {
		method, host, origin string
		want                 int
	}{
		{"POST", "attacker.example:5280", "", http.StatusForbidden},
		{"GET", "attacker.example:5280", "", http.StatusForbidden},
		{"GET", "attacker.example", "", http.StatusForbidden},
		{"POST", "127.0.0.1:5280", "http://attacker.example", http.StatusForbidden},
		{"POST", "localhost:5280", "null", http.StatusForbidden},
		{"POST", "127.0.0.1:5280", "http://203.0.113.5", http.StatusForbidden},
		{"POST", "localhost:5280", "http://localhost:3000", http.StatusForbidden},
		{"POST", "localhost:5280", "http://evil.localhost:5280", http.StatusForbidden},
		{"POST", "127.0.0.1:5280", "http://127.0.0.1:5280", http.StatusOK},
		{"GET", "127.0.0.1:5280", "", http.StatusOK},
		{"GET", "localhost:5280", "", http.StatusOK},
		{"GET", "[::1]:5280", "", http.StatusOK},
		{"GET", "10.0.0.7:5280", "", http.StatusForbidden},
		{"GET", "node.example.org:5280", "", http.StatusOK},
		{"POST", "localhost:5280", "http://localhost:5280", http.StatusOK},
	} {
		before := reached.Load()
		if got := do(c.method, c.host, c.origin); got != c.want {
			t.Errorf("%s Host %q Origin %q: %d, want %d", c.method, c.host, c.origin, got, c.want)
		}
		if c.want == http.StatusForbidden && reached.Load() != before {
			t.Errorf("%s Host %q Origin %q reached the API", c.method, c.host, c.origin)
		}
	}
}

// TestRequireTokenRateLimited: after LoginBurst wrong tokens from one
// address (an IPv6 /64 counting as one) every request from it that sends
// a token gets 429, the right one included; requests without a token —
// all a web page can make a browser send — cost nothing, however many;
// the page stays exempt.
func TestRequireTokenRateLimited(t *testing.T) {
	token := strings.Repeat("t", MinTokenBytes)
	h := RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), "/")
	code := func(from, auth, path string) int {
		req, _ := http.NewRequest("GET", "http://127.0.0.1"+path, nil)
		req.RemoteAddr = from
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		w := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code == 0 {
			return http.StatusOK // nothing written: net/http sends 200
		}
		return w.code
	}
	const v4, v6a, v6b = "192.0.2.7:40000", "[2001:db8::1]:40000", "[2001:db8::2]:40001"
	for range 100 {
		if got := code(v4, "", "/api/v1/status"); got != http.StatusUnauthorized {
			t.Fatalf("no token: %d, want 401", got)
		}
	}
	if got := code(v4, token, "/api/v1/status"); got != http.StatusOK {
		t.Fatalf("right token after 100 requests without one: %d", got)
	}
	for i := range LoginBurst {
		from := v6a
		if i%2 == 1 {
			from = v6b
		}
		if got := code(from, "guess", "/api/v1/status"); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i, got)
		}
		if got := code(v4, "guess", "/api/v1/status"); got != http.StatusUnauthorized {
			t.Fatalf("failure %d from %s: %d, want 401", i, v4, got)
		}
	}
	if got := code(v6a, token, "/api/v1/status"); got != http.StatusTooManyRequests {
		t.Errorf("after %d failures from its /64 the right token got %d, want 429", LoginBurst, got)
	}
	if got := code(v4, "another guess", "/api/v1/status"); got != http.StatusTooManyRequests {
		t.Errorf("a guess over the budget: %d, want 429", got)
	}
	if got := code("198.51.100.1:1", token, "/api/v1/status"); got != http.StatusOK {
		t.Errorf("another address: %d", got)
	}
	if got := code(v4, "", "/"); got != http.StatusOK {
		t.Errorf("the page: %d", got)
	}
}

// TestHTTPClientCannotHoldTheServer: one address's requests in flight
// (a body trickled) cannot lock out a fresh request, from another address
// or its own: past MaxConnsPerIP, or MaxConns, the hog's oldest goes.
func TestHTTPClientCannotHoldTheServer(t *testing.T) {
	lim := DefaultHTTPLimits()
	lim.MaxConns, lim.MaxConnsPerIP = 8, 6
	srv, err := ServeHTTP("127.0.0.1:0", drainOK, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addr().String()
	for range 12 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\nx", addr)
	}
	time.Sleep(200 * time.Millisecond)
	if n := srv.Conns(); n > lim.MaxConnsPerIP {
		t.Errorf("one address holds %d connections, cap %d", n, lim.MaxConnsPerIP)
	}
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a fresh request beside %d trickling ones: %v", lim.MaxConnsPerIP, err)
	}
	resp.Body.Close()
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}

// TestPageCSP: the API's policy admits the live page's inline script by
// its hash and nothing else, and every response carries the headers.
func TestPageCSP(t *testing.T) {
	page, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	m := inlineBlock.FindSubmatch(page[strings.Index(string(page), "<script>"):])
	sum := sha256.Sum256(m[2])
	if want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';"; !strings.Contains(apiCSP, want) {
		t.Errorf("policy %q lacks %q", apiCSP, want)
	}
	if strings.Contains(apiCSP, "unsafe-eval") || strings.Contains(apiCSP, "script-src 'unsafe-inline'") {
		t.Errorf("policy %q admits any script", apiCSP)
	}
	w := &statusRecorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
	SecurityHeaders(apiCSP, http.NotFoundHandler()).ServeHTTP(w, req)
	for _, k := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if w.header.Get(k) == "" {
			t.Errorf("no %s", k)
		}
	}
}
