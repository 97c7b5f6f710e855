package s3backend

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// TestPutDeniedByDirectoryRace plays MinIO's answer to a Put that races
// the removal of its parent directory: 403 AccessDenied, nothing written
// (seen about once in 800 Puts while the catalog's log entries come and
// go). The Put is sent once more and lands, conditional or not; a denial
// that persists is ErrPermissionDenied after that one more request, and
// other denials (an unknown access key) are not sent again.
func TestPutDeniedByDirectoryRace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     string
		denials  int64 // PUTs refused before one is accepted
		opts     backend.PutOptions
		wantPuts int64
		wantErr  error
	}{
		{"once", "AccessDenied", 1, backend.PutOptions{}, 2, nil},
		{"once, conditional", "AccessDenied", 1, backend.PutOptions{IfAbsent: true}, 2, nil},
		{"always", "AccessDenied", 100, backend.PutOptions{}, 2, backend.ErrPermissionDenied},
		{"unknown key", "InvalidAccessKeyId", 1, backend.PutOptions{}, 1, backend.ErrPermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var puts atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if r.Method == http.MethodPut && puts.Add(1) <= tc.denials {
					w.Header().Set("Content-Type", "application/xml")
					w.WriteHeader(http.StatusForbidden)
					_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+tc.code+`</Code><Message>Access Denied.</Message></Error>`)
					return
				}
				w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
				w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
				w.WriteHeader(http.StatusOK)
			}))
			t.Cleanup(srv.Close)
			b := newPlayedBackend(t, srv)
			_, err := b.Put(t.Context(), "_catalog/log/s/t/log/id", strings.NewReader("x"), 1, tc.opts)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put = %v, want %v", err, tc.wantErr)
			}
			if got := puts.Load(); got != tc.wantPuts {
				t.Fatalf("%d PUTs sent, want %d", got, tc.wantPuts)
			}
		})
	}
}
