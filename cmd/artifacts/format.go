package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/necrocode/artifactstore/pkg/store"
)

// humanSize formats a byte count with binary units: "512 B", "1.5 KiB".
func humanSize(n int64) string {
	if n < 0 {
		return "-" + humanSize(-n)
	}
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	const units = "KMGTPE"
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// formatTime prints t in UTC to the second, "-" when zero.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago says how long before now t is: "3m ago", "in 20s".
func ago(t, now time.Time) string {
	if d := now.Sub(t); d >= 0 {
		return roundDuration(d) + " ago"
	}
	return "in " + roundDuration(t.Sub(now))
}

// roundDuration keeps two significant units: "3d4h", "5m12s", "800ms".
func roundDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// formatPeriod prints a retention period, "forever" for store.RetainForever.
func formatPeriod(d time.Duration) string {
	if d == store.RetainForever {
		return "forever"
	}
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// joinOr joins items with sep, or returns "-" when there are none.
func joinOr(items []string, sep string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, sep)
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatMeta prints user metadata as sorted k=v pairs.
func formatMeta(m map[string]any) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, ok := m[k].(string)
		if !ok {
			b, _ := json.Marshal(m[k])
			v = string(b)
		}
		parts[i] = k + "=" + v
	}
	return joinOr(parts, ", ")
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// artifactURI is the URI of md's artifact, without its version.
func artifactURI(md store.Metadata) string {
	u, _, _ := strings.Cut(md.URI, "?")
	return u
}

// shortSum abbreviates a SHA-256 for tables.
func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
