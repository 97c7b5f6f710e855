package testenv

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// LogRecorder is a slog.Handler that keeps every record, for tests that
// check what a component logged. It is safe for concurrent use.
type LogRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

// Enabled accepts every level.
func (h *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps a clone of r.
func (h *LogRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// WithAttrs returns h: attributes added to a logger are not recorded.
func (h *LogRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup returns h.
func (h *LogRecorder) WithGroup(string) slog.Handler { return h }

// Records returns the records kept so far, oldest first.
func (h *LogRecorder) Records() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records)
}

// Attrs returns the attributes of r by key.
func Attrs(r slog.Record) map[string]slog.Value {
	attrs := make(map[string]slog.Value)
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value
		return true
	})
	return attrs
}

// ContainsCredential reports whether out holds cred anywhere but inside the
// benign strings: text the test knows may contain it by chance, such as a
// bucket name or a program's banner when the access key is a common word
// ("artifactstore" with the docker-compose credentials is a substring of
// every test bucket's name). An empty cred is never found.
func ContainsCredential(out, cred string, benign ...string) bool {
	if cred == "" {
		return false
	}
	for _, b := range benign {
		if b != "" && strings.Contains(b, cred) {
			out = strings.ReplaceAll(out, b, "\x00")
		}
	}
	return strings.Contains(out, cred)
}
