// Package logging sets up the slog logger of poai's commands: text or
// JSON on stderr, with go-libp2p's logs and the standard library's log
// routed through it.
package logging

import (
	"context"
	"fmt"
	stdlog "log"
	"log/slog"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/gologshim"
)

// New returns a slog logger writing to stderr, and routes
// go-libp2p's own logs (gologshim) to the same handler, at warn and above
// unless the level is debug.
func New(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	handler := func(l slog.Level) (slog.Handler, error) {
		opts := &slog.HandlerOptions{Level: l}
		switch format {
		case "json":
			return slog.NewJSONHandler(os.Stderr, opts), nil
		case "text", "":
			return slog.NewTextHandler(os.Stderr, opts), nil
		}
		return nil, fmt.Errorf("log format %q is not text or json", format)
	}
	h, err := handler(l)
	if err != nil {
		return nil, err
	}
	libp2pLevel := max(l, slog.LevelWarn)
	if l <= slog.LevelDebug {
		libp2pLevel = l
	}
	lh, _ := handler(libp2pLevel)
	gologshim.SetDefaultHandler(lh)
	// Libraries that write to the standard library's log (zeroconf, the
	// mDNS responder) go through slog too.
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdlogWriter{slog.New(lh).With("logger", "stdlib")})
	return slog.New(h), nil
}

// stdlogWriter hands each line the standard library's log writes to a
// slog logger, at the level its "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]"
// prefix names (zeroconf's style; warn without one), the prefix removed.
type stdlogWriter struct{ l *slog.Logger }

func (w stdlogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	level := slog.LevelWarn
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			msg, level = strings.TrimSpace(rest), l
			break
		}
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}
