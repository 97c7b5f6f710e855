package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testManifest() *manifest {
	u := URI{Spec: "s", Task: "t", Type: "diff"}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &manifest{
		manifestHeader: manifestHeader{
			Schema: schemaBlobs, URI: u.String(), Spec: "s", Task: "t", Type: "diff",
			Tags: []string{"a", "b"}, Created: created, Updated: created.Add(time.Hour), NextVersion: 4,
			Fence: 9, Writer: "host:1", Commit: "01J00000000000000000000000",
		},
		Versions: []version{
			{Version: 1, Blob: blobPrefix(u) + "A", SHA256: strings.Repeat("ab", 32), Size: 10, StoredSize: 10,
				ContentType: "text/plain", Created: created, Fence: 3, Writer: "host:1"},
			{Version: 3, Blob: blobPrefix(u) + "B", SHA256: strings.Repeat("cd", 32), Size: 100, StoredSize: 40,
				Compression: "gzip", ContentType: "text/plain", Created: created.Add(time.Hour),
				Metadata: map[string]json.RawMessage{"k": json.RawMessage(`"v \"quoted\" \u003chtml\u003e"`), "n": json.RawMessage(`{"count":42,"ok":[true,null]}`)}, Fence: 9, Writer: "host:1"},
		},
	}
}

func TestManifestEncoding(t *testing.T) {
	m := testManifest()
	data, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	// Plain JSON, with the documented field names.
	var generic map[string]any
	if err := json.Unmarshal(data, &generic); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	for _, k := range []string{"schema", "uri", "spec", "task", "type", "tags", "created", "updated", "next_version", "fence", "writer", "commit", "versions"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("manifest JSON lacks %q", k)
		}
	}
	v := generic["versions"].([]any)[1].(map[string]any)
	for _, k := range []string{"version", "blob", "sha256", "size", "stored_size", "compression", "content_type", "created", "metadata", "fence", "writer"} {
		if _, ok := v[k]; !ok {
			t.Errorf("version JSON lacks %q", k)
		}
	}
	back, err := decodeManifest(URI{Spec: "s", Task: "t", Type: "diff"}, data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range back.Versions {
		back.Versions[i].raw, back.Versions[i].checked = nil, false
		m.Versions[i].raw, m.Versions[i].checked = nil, false
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", back, m)
	}
	// The cached encodings give the same bytes.
	again, err := encodeManifest(back)
	if err != nil {
		t.Fatal(err)
	}
	twice, _ := encodeManifest(back)
	if string(again) != string(data) || string(twice) != string(data) {
		t.Fatalf("re-encoding differs:\n%s\n%s", again, data)
	}
}

func TestManifestValidation(t *testing.T) {
	u := URI{Spec: "s", Task: "t", Type: "diff"}
	bad := map[string]func(m *manifest){
		"schema":              func(m *manifest) { m.Schema = 3 },
		"no blob, schema 1":   func(m *manifest) { m.Versions[0].Blob = "" },
		"blob and inline":     func(m *manifest) { m.Schema, m.Versions[0].Inline = schemaInline, []byte("x") },
		"compressed inline":   func(m *manifest) { m.Schema, m.Versions[1].Blob = schemaInline, "" },
		"other artifact":      func(m *manifest) { m.Task = "x" },
		"other uri":           func(m *manifest) { m.URI = "artifact://s/t/log" },
		"no versions":         func(m *manifest) { m.Versions = nil },
		"unsorted tags":       func(m *manifest) { m.Tags = []string{"b", "a"} },
		"duplicate tags":      func(m *manifest) { m.Tags = []string{"a", "a"} },
		"version order":       func(m *manifest) { m.Versions[0].Version = 3 },
		"next version":        func(m *manifest) { m.NextVersion = 3 },
		"foreign blob":        func(m *manifest) { m.Versions[0].Blob = "blobs/s/t/log/A" },
		"escaping blob":       func(m *manifest) { m.Versions[0].Blob = "blobs/s/t/diff/../../x" },
		"bad sha":             func(m *manifest) { m.Versions[0].SHA256 = strings.Repeat("AB", 32) },
		"short sha":           func(m *manifest) { m.Versions[0].SHA256 = "abcd" },
		"negative size":       func(m *manifest) { m.Versions[0].Size = -1 },
		"unknown compression": func(m *manifest) { m.Versions[0].Compression = "zstd" },
	}
	for name, breakIt := range bad {
		m := testManifest()
		breakIt(m)
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeManifest(u, data); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: decode = %v, want ErrIntegrity", name, err)
		}
	}
	for _, junk := range []string{"", "{", "null", "[]", `{"schema":1}`} {
		if _, err := decodeManifest(u, []byte(junk)); !errors.Is(err, ErrIntegrity) {
			t.Errorf("decode(%q) = %v", junk, err)
		}
	}
}
