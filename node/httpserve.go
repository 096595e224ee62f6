package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// HTTPLimits bounds what the clients of the API and /metrics may hold: a
// client that sends nothing, trickles a request or idles between requests
// is closed after the matching timeout, and past MaxConns connections the
// oldest that is idle or has not yet sent a request is closed for each new
// one, so a flood of idle connections can neither exhaust the node's file
// descriptors nor lock out a fresh request.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds the wait for a request's headers, on a new
	// connection and on a kept-alive one alike.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection idle that long.
	IdleTimeout time.Duration
	// MaxConns is the most connections held at once.
	MaxConns int
	// MaxConnsPerIP is the most one client address holds (an IPv6
	// address counts by its /64): past it, that address's oldest
	// connection is closed for its new one, so one client cannot take
	// the server's slots, nor lock out another client on its address.
	MaxConnsPerIP int
	// ShutdownGrace is how long Shutdown waits for requests in flight
	// before it closes the connections still open.
	ShutdownGrace time.Duration
}

// DefaultHTTPLimits returns the limits `poai run` serves with: 5 s for
// headers, 15 s for a request (the API's bodies are at most 4 KiB), 60 s
// to write a response, 60 s idle, 1,024 connections, 32 per client
// address, 5 s of grace.
func DefaultHTTPLimits() HTTPLimits {
	return HTTPLimits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 60 * time.Second, MaxConns: 1024, MaxConnsPerIP: 32, ShutdownGrace: 5 * time.Second}
}

// clientKey is the address a client's connections and failed logins are
// counted under: its IPv4 address, or its IPv6 address's /64 (one host
// commonly holds a whole /64).
func clientKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// HTTPServer serves one listener under HTTPLimits.
type HTTPServer struct {
	srv   *http.Server
	ln    net.Listener
	lim   HTTPLimits
	log   *slog.Logger
	mu    sync.Mutex
	conns map[net.Conn]*heldConn
	// Evicted counts connections closed to make room for newer ones.
	evicted int
}

type heldConn struct {
	state  http.ConnState
	since  time.Time
	client string
}

// ServeHTTP listens on addr (host:port) and serves h in the background
// under lim. Errors: the listener's (a port in use, a bad address).
func ServeHTTP(addr string, h http.Handler, lim HTTPLimits, log *slog.Logger) (*HTTPServer, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &HTTPServer{ln: ln, lim: lim, log: log, conns: map[net.Conn]*heldConn{}}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         s.track,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is the address the server listens on.
func (s *HTTPServer) Addr() net.Addr { return s.ln.Addr() }

// Conns returns the number of connections held now.
func (s *HTTPServer) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// track follows every connection's state. A new connection past
// MaxConnsPerIP closes its address's oldest other connection (idle or new
// first); past MaxConns, the oldest idle or new connection of all, else
// the oldest of the address holding the most. A connection in the middle
// of a request is closed only for its own address or as the biggest
// holder's: a client trickling requests cannot lock out a fresh one.
func (s *HTTPServer) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		key := clientKey(c.RemoteAddr().String())
		s.conns[c] = &heldConn{state: st, since: time.Now(), client: key}
		counts := map[string]int{}
		for _, h := range s.conns {
			counts[h.client]++
		}
		perIP := counts[key]
		switch {
		case s.lim.MaxConnsPerIP > 0 && perIP > s.lim.MaxConnsPerIP:
			s.evict(c, func(h *heldConn) bool { return h.client == key })
		case s.lim.MaxConns > 0 && len(s.conns) > s.lim.MaxConns:
			if !s.evictIdle(c, func(*heldConn) bool { return true }) {
				heaviest, most := "", 0
				for k, n := range counts {
					if n > most {
						heaviest, most = k, n
					}
				}
				s.evict(c, func(h *heldConn) bool { return h.client == heaviest })
			}
		}
	case http.StateActive, http.StateIdle:
		if h, ok := s.conns[c]; ok {
			h.state, h.since = st, time.Now()
		}
	case http.StateHijacked, http.StateClosed:
		delete(s.conns, c)
	}
}

// evict closes the oldest idle or new connection other than keep that
// match accepts, else the oldest such connection in any state, else keep.
func (s *HTTPServer) evict(keep net.Conn, match func(*heldConn) bool) {
	if s.evictIdle(keep, match) {
		return
	}
	if !s.evictOldest(keep, func(h *heldConn) bool { return match(h) }) {
		delete(s.conns, keep)
		s.evicted++
		keep.Close()
	}
}

func (s *HTTPServer) evictIdle(keep net.Conn, match func(*heldConn) bool) bool {
	return s.evictOldest(keep, func(h *heldConn) bool {
		return (h.state == http.StateIdle || h.state == http.StateNew) && match(h)
	})
}

func (s *HTTPServer) evictOldest(keep net.Conn, match func(*heldConn) bool) bool {
	var victim net.Conn
	var oldest time.Time
	for o, h := range s.conns {
		if o != keep && match(h) && (victim == nil || h.since.Before(oldest)) {
			victim, oldest = o, h.since
		}
	}
	if victim == nil {
		return false
	}
	delete(s.conns, victim)
	s.evicted++
	victim.Close()
	return true
}

// Shutdown stops accepting, lets requests in flight finish within
// ShutdownGrace (or ctx), then closes every connection still open. Hung
// clients do not make it fail: it returns an error only when closing the
// listener does.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.lim.ShutdownGrace)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.log.Warn("http: closing connections still open after the shutdown grace", "addr", s.Addr().String(), "conns", s.Conns())
		return s.srv.Close()
	}
	return err
}

// HostGuard answers 403 to a request whose Host is not one this node
// serves — a loopback address, the address of listen (any address when it
// listens on all of them), localhost (or a name under .localhost), the
// host of listen, or one of names — and to a state-changing request (not GET,
// HEAD or OPTIONS) whose Origin is not the request's own (scheme http or
// https, host and port equal to Host). A web page that
// rebinds its own name to 127.0.0.1 (DNS rebinding) sends its name as
// Host, so it can neither read the API nor issue a challenge.
func HostGuard(listen string, names []string, next http.Handler) http.Handler {
	var listenIP net.IP
	listenHost, _, err := net.SplitHostPort(listen)
	if err == nil {
		listenIP = net.ParseIP(strings.Trim(listenHost, "[]"))
		if listenHost == "" {
			listenIP = net.IPv6unspecified
		}
	}
	allowed := func(hostport string) bool {
		host := hostport
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if host == "" {
			return false
		}
		if ip := net.ParseIP(host); ip != nil {
			// An address is no rebinding vector (a page cannot make a
			// browser send another address than the one it connects to),
			// but only those this server answers on are served.
			return ip.IsLoopback() || listenIP == nil || listenIP.IsUnspecified() || ip.Equal(listenIP)
		}
		if host == "localhost" || strings.HasSuffix(host, ".localhost") {
			return true
		}
		if listenHost != "" && strings.EqualFold(listenHost, host) {
			return true
		}
		return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, host) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(r.Host) {
			w.Header().Set("Connection", "close")
			http.Error(w, fmt.Sprintf("forbidden: Host %q is not served here (add it to [api] hosts)", r.Host), http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			// A state-changing request from a browser must come from a page
			// of this very origin (the live page); other clients send none.
			if o := r.Header.Get("Origin"); o != "" {
				u, err := url.Parse(o)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
					w.Header().Set("Connection", "close")
					http.Error(w, fmt.Sprintf("forbidden: Origin %q is not this API's", o), http.StatusForbidden)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// MinTokenBytes is the least length of an API token: 32 characters
// (`poai init --api-token` writes 43: 32 random bytes, base64url).
const MinTokenBytes = 32

// Login failures: each client address may send LoginBurst wrong tokens,
// then one per LoginEvery; past that every request of it that carries a
// token, right or wrong, gets 429 until the budget refills
// (RequireToken).
const (
	LoginBurst = 10
	LoginEvery = 6 * time.Second
)

// RequireToken answers 401 to a request without "Authorization: Bearer
// token" (compared in constant time). A request that sends a wrong
// Authorization counts as a failed login of its client address
// (clientKey): past LoginBurst failures, one per LoginEvery, the address
// gets 429 for every request that carries an Authorization, right or
// wrong, until its budget refills, so guessing from one address is slow.
// A request without the header costs nothing: a web page can make a
// browser send requests to the API, but not with an Authorization header,
// so it cannot lock the operator out. At most 4,096 addresses are tracked.
// Requests for exempt paths pass without a token.
func RequireToken(token string, next http.Handler, exempt ...string) http.Handler {
	want := []byte("Bearer " + token)
	failures, _ := lru.New[string, *rate.Limiter](4096)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(exempt, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		refuse := func(code int, msg string) {
			w.Header().Set("Connection", "close")
			http.Error(w, msg, code)
		}
		auth := r.Header.Get("Authorization")
		if auth == "" {
			refuse(http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <api token>")
			return
		}
		client := clientKey(r.RemoteAddr)
		l, ok := failures.Get(client)
		if ok && l.Tokens() < 1 {
			w.Header().Set("Retry-After", fmt.Sprint(int(LoginEvery.Seconds())))
			refuse(http.StatusTooManyRequests, "too many failed logins from this address: retry later")
			return
		}
		if subtle.ConstantTimeCompare([]byte(auth), want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		if !ok {
			l = rate.NewLimiter(rate.Every(LoginEvery), LoginBurst)
			failures.Add(client, l)
		}
		l.Allow()
		refuse(http.StatusUnauthorized, "unauthorized: wrong api token")
	})
}

// inlineBlock matches the live page's inline <script> and <style> blocks.
var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

// pageCSP returns the live page's Content-Security-Policy: nothing but
// its own inline script (by hash) and styles, fetches to its own origin,
// no framing, no forms, no base URI.
func pageCSP(page []byte) string {
	var scripts []string
	for _, m := range inlineBlock.FindAllSubmatch(page, -1) {
		if string(m[1]) == "script" {
			h := sha256.Sum256(m[2])
			scripts = append(scripts, "'sha256-"+base64.StdEncoding.EncodeToString(h[:])+"'")
		}
	}
	return "default-src 'none'; script-src " + strings.Join(scripts, " ") +
		"; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

// SecurityHeaders sets, on every response, X-Content-Type-Options nosniff,
// X-Frame-Options DENY, Referrer-Policy no-referrer and csp as the
// Content-Security-Policy.
func SecurityHeaders(csp string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		next.ServeHTTP(w, r)
	})
}
