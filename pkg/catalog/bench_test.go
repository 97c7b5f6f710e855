package catalog

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkDecodeSegment decodes a segment of 2048 records with manifests
// of about 700 bytes (one version), the default segment size.
func BenchmarkDecodeSegment(b *testing.B) {
	recs := make([]Record, 2048)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("spec-%06d", i), "task-01", "log")
		recs[i].Manifest = []byte(`{"schema":1,"uri":"artifact://spec/task-01/log","versions":[{"blob":"` + strings.Repeat("b", 80) +
			`","sha256":"` + strings.Repeat("f", 64) + `","size":3000,"stored_size":3000,"content_type":"text/plain","metadata":{"k":"` + strings.Repeat("v", 300) + `"}}]}`)
	}
	data, info, err := EncodeSegment(recs, "retain")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportMetric(float64(len(data)), "object-bytes")
	for b.Loop() {
		if _, err := DecodeSegment(data, info); err != nil {
			b.Fatal(err)
		}
	}
}
