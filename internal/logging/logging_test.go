package logging

import (
	"bytes"
	stdlog "log"
	"log/slog"
	"strings"
	"testing"
)

// TestStdlogThroughSlog: a library's log.Printf line reaches slog at the
// level its prefix names, the prefix gone.
func TestStdlogThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	w := stdlogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l := stdlog.New(w, "", 0)
	l.Printf("[WARN] mdns: Failed to set multicast interface: %v", "no route")
	l.Printf("[INFO] mdns: ready")
	l.Printf("bare line")
	out := buf.String()
	for _, want := range []string{`level=WARN msg="mdns: Failed to set multicast interface: no route"`, `level=INFO msg="mdns: ready"`, `level=WARN msg="bare line"`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
}

// TestNewRejectsBadInput: an unknown level or format is an error naming it.
func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New("loud", "text"); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("level: %v", err)
	}
	if _, err := New("info", "xml"); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("format: %v", err)
	}
}
