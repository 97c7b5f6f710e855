package store

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestUserMetadataJSONValues(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	ctx := context.Background()
	const uri = "artifact://s/t/test"
	in := map[string]any{
		"count":  42,
		"big":    int64(1) << 60, // more digits than a float64 keeps
		"ratio":  0.5,
		"ok":     true,
		"none":   nil,
		"list":   []any{1, "two", false},
		"nested": map[string]any{"a": map[string]any{"b": []string{"c"}}},
		"raw":    json.RawMessage(`{"z": 1, "y": [ ]}`),
	}
	want := map[string]any{
		"count":  json.Number("42"),
		"big":    json.Number("1152921504606846976"),
		"ratio":  json.Number("0.5"),
		"ok":     true,
		"none":   nil,
		"list":   []any{json.Number("1"), "two", false},
		"nested": map[string]any{"a": map[string]any{"b": []any{"c"}}},
		"raw":    map[string]any{"z": json.Number("1"), "y": []any{}},
		"legacy": "string",
	}
	md, err := f.s.UploadBytes(ctx, uri, []byte("ok"), UploadOptions{UserMetadata: in, Metadata: map[string]string{"legacy": "string"}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(where string, got Metadata) {
		t.Helper()
		if !reflect.DeepEqual(got.UserMetadata, want) {
			t.Errorf("%s: UserMetadata = %#v\nwant %#v", where, got.UserMetadata, want)
		}
		if got.Metadata["legacy"] != "string" || got.Metadata["count"] != "42" || got.Metadata["list"] != `[1,"two",false]` {
			t.Errorf("%s: deprecated Metadata view = %#v", where, got.Metadata)
		}
	}
	check("Upload", md)
	st, err := f.s.Stat(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	check("Stat", st)
	_, dmd, err := f.s.Download(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	check("Download", dmd)
	found, err := f.s.Search(ctx, Filter{Task: "t"})
	if err != nil || len(found) != 1 {
		t.Fatalf("Search = %v, %v", found, err)
	}
	check("Search", found[0])
	b, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	var back Metadata
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	check("JSON round trip", back)
	if !bytes.Contains(b, []byte(`"big":1152921504606846976`)) || !bytes.Contains(b, []byte(`"count":42`)) {
		t.Errorf("JSON = %s, want the numbers as numbers", b)
	}

	// Export's metadata file holds the same values.
	var zbuf bytes.Buffer
	if _, err := f.s.Export(ctx, &zbuf, ExportOptions{Spec: "s"}); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zbuf.Bytes()), int64(zbuf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var exported []Metadata
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, "@metadata.json") {
			rc, _ := zf.Open()
			data, _ := io.ReadAll(rc)
			_ = rc.Close()
			if err := json.Unmarshal(data, &exported); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(exported) != 1 {
		t.Fatalf("exported metadata: %v", exported)
	}
	check("Export", exported[0])

	// The same values again: an idempotent no-op.
	again, err := f.s.UploadBytes(ctx, uri, []byte("ok"), UploadOptions{UserMetadata: in, Metadata: map[string]string{"legacy": "string"}})
	if err != nil || again.Version != md.Version {
		t.Errorf("same upload again: version %d, %v; want version %d", again.Version, err, md.Version)
	}
}

func TestEmptyUserMetadataIsAnObject(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	ctx := context.Background()
	md := mustUpload(t, f.s, "artifact://s/t/log", []byte("x"), UploadOptions{})
	if md.UserMetadata == nil || len(md.UserMetadata) != 0 {
		t.Errorf("UserMetadata = %#v, want an empty map", md.UserMetadata)
	}
	for _, m := range []Metadata{md, {}} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"metadata":{}`)) || !bytes.Contains(b, []byte(`"tags":[]`)) {
			t.Errorf("JSON = %s, want \"metadata\":{} and \"tags\":[]", b)
		}
	}
	var zbuf bytes.Buffer
	if _, err := f.s.Export(ctx, &zbuf, ExportOptions{Spec: "s"}); err != nil {
		t.Fatal(err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(zbuf.Bytes()), int64(zbuf.Len()))
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, "@metadata.json") {
			rc, _ := zf.Open()
			data, _ := io.ReadAll(rc)
			_ = rc.Close()
			if !bytes.Contains(data, []byte(`"metadata": {}`)) {
				t.Errorf("export %s = %s, want \"metadata\":{}", zf.Name, data)
			}
		}
	}
}

func TestUserMetadataValidation(t *testing.T) {
	f := newFixture(t, memEnv(), Config{MaxMetadataBytes: 1024}, nil)
	deep := any("leaf")
	for range MaxMetadataDepth {
		deep = []any{deep}
	}
	tooDeep := any([]any{deep})
	for _, tc := range []struct {
		name string
		opts UploadOptions
		ok   bool
	}{
		{"depth at the bound", UploadOptions{UserMetadata: map[string]any{"d": deep}}, true},
		{"too deep", UploadOptions{UserMetadata: map[string]any{"d": tooDeep}}, false},
		{"too deep raw", UploadOptions{UserMetadata: map[string]any{"d": json.RawMessage(strings.Repeat("[", 17) + strings.Repeat("]", 17))}}, false},
		{"brackets in strings do not nest", UploadOptions{UserMetadata: map[string]any{"d": strings.Repeat("[{", 40)}}, true},
		{"too large", UploadOptions{UserMetadata: map[string]any{"d": strings.Repeat("x", 1100)}}, false},
		{"not JSON", UploadOptions{UserMetadata: map[string]any{"f": func() {}}}, false},
		{"NaN", UploadOptions{UserMetadata: map[string]any{"n": nanValue()}}, false},
		{"invalid raw", UploadOptions{UserMetadata: map[string]any{"r": json.RawMessage(`{`)}}, false},
		{"invalid UTF-8 value", UploadOptions{UserMetadata: map[string]any{"s": []any{"\xff"}}}, false},
		{"invalid UTF-8 nested key", UploadOptions{UserMetadata: map[string]any{"s": map[string]any{"\xff": 1}}}, false},
		{"empty key", UploadOptions{UserMetadata: map[string]any{"": 1}}, false},
		{"control key", UploadOptions{UserMetadata: map[string]any{"a\nb": 1}}, false},
		{"key in both maps", UploadOptions{UserMetadata: map[string]any{"k": 1}, Metadata: map[string]string{"k": "1"}}, false},
		{"legacy invalid UTF-8", UploadOptions{Metadata: map[string]string{"k": "\xff"}}, false},
	} {
		_, err := f.s.UploadBytes(context.Background(), "artifact://s/t/log", []byte(tc.name), tc.opts)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v (want ok %v)", tc.name, err, tc.ok)
		}
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// A manifest written when user metadata held only strings reads as JSON
// strings, and the same strings again are a no-op.
func TestUserMetadataOldManifest(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	ctx := context.Background()
	const uri = "artifact://s/t/log"
	md := mustUpload(t, f.s, uri, []byte("x"), UploadOptions{Metadata: map[string]string{"k": "v <&>"}})
	raw := rawManifest(t, f.b, uri)
	if got := string(raw.Versions[0].Metadata["k"]); got != `"v \u003c\u0026\u003e"` {
		t.Fatalf("stored value %s, want the JSON string an old manifest holds", got)
	}
	// Old writers encoded with encoding/json's map[string]string: the same
	// bytes. A manifest written by another encoder (unescaped, spaced)
	// still compares equal.
	if !jsonEqual(json.RawMessage(`"v <&>"`), raw.Versions[0].Metadata["k"]) {
		t.Error("jsonEqual: same string, other escaping")
	}
	st, err := f.s.Stat(ctx, uri)
	if err != nil || st.UserMetadata["k"] != "v <&>" || st.Metadata["k"] != "v <&>" {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	again := mustUpload(t, f.s, uri, []byte("x"), UploadOptions{UserMetadata: map[string]any{"k": "v <&>"}})
	if again.Version != md.Version {
		t.Errorf("same string through UserMetadata: version %d, want %d (no-op)", again.Version, md.Version)
	}
}
