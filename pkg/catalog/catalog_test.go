package catalog

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func rec(spec, task, typ string, tags ...string) Record {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return Record{
		Spec: spec, Task: task, Type: typ, Tags: tags, Created: t0, Updated: t0, Current: t0,
		Versions: []Version{{Version: 1, Created: t0, Size: 10, StoredSize: 4}},
		Manifest: []byte(`{"uri":"artifact://` + spec + "/" + task + "/" + typ + `"}`),
	}
}

func TestSegmentRoundTrip(t *testing.T) {
	recs := []Record{rec("a", "t1", "diff", "x"), rec("a", "t1", "log", "retain"), rec("b", "t1", "log", "x", "y")}
	data, info, err := EncodeSegment(recs, "retain")
	if err != nil {
		t.Fatal(err)
	}
	info.Key = SegmentPrefix + "s1.jsonl.gz"
	if info.Records != 3 || info.First != "a/t1/diff" || info.Last != "b/t1/log" || info.Types["log"] != 2 || info.Tags["x"] != 2 {
		t.Fatalf("info %+v", info)
	}
	if _, ok := info.Oldest["log"]; !ok || len(info.Oldest) != 2 {
		t.Fatalf("oldest %v: the exempt record's type counts through the other log", info.Oldest)
	}
	if !info.MayHaveTags([]string{"x", "y"}) || info.MayHaveTags([]string{"z"}) {
		t.Fatal("MayHaveTags")
	}
	got, err := DecodeSegment(data, info)
	if err != nil || len(got) != 3 || got[2].Key() != "b/t1/log" || !slices.Equal(got[2].Tags, []string{"x", "y"}) {
		t.Fatalf("decode: %v, %v", got, err)
	}
	// Matching decodes only the records whose line holds every needle.
	some, err := DecodeSegmentMatching(data, info, []Needle{TagNeedle("x"), TypeNeedle("log")})
	if err != nil || len(some) != 1 || some[0].Key() != "b/t1/log" || string(some[0].Manifest) != string(recs[2].Manifest) {
		t.Fatalf("matching decode: %v, %v", some, err)
	}
	// Any change to the object is caught.
	bad := slices.Clone(data)
	bad[len(bad)/2] ^= 1
	if _, err := DecodeSegment(bad, info); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
	if _, err := DecodeSegment(data[:len(data)-1], info); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	if _, _, err := EncodeSegment([]Record{recs[1], recs[0]}, ""); err == nil {
		t.Fatal("records out of order encoded")
	}
}

func TestManyTags(t *testing.T) {
	var tags []string
	for i := range MaxSegmentTags + 1 {
		tags = append(tags, fmt.Sprintf("t%03d", i))
	}
	_, info, err := EncodeSegment([]Record{rec("a", "t", "log", tags...)}, "")
	if err != nil || !info.ManyTags || info.Tags != nil || !info.MayHaveTags([]string{"anything"}) {
		t.Fatalf("%+v, %v", info, err)
	}
}

func TestRootLocateAndDecode(t *testing.T) {
	r := &Root{Schema: Schema}
	if r.Locate("x") != -1 {
		t.Fatal("no segments")
	}
	r.Segments = []SegmentInfo{
		{Key: SegmentPrefix + "1", Records: 1, First: "b/t/log", Last: "c/t/log"},
		{Key: SegmentPrefix + "2", Records: 1, First: "m/t/log", Last: "p/t/log"},
	}
	for key, want := range map[string]int{"a/t/log": 0, "b/t/log": 0, "d/t/log": 0, "m/t/log": 1, "z/t/log": 1} {
		if got := r.Locate(key); got != want {
			t.Errorf("Locate(%q) = %d, want %d", key, got, want)
		}
	}
	data, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRoot(data); err != nil {
		t.Fatal(err)
	}
	r.Segments[1].First = "c/t/log" // overlaps the first
	data, _ = r.Encode()
	if _, err := DecodeRoot(data); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("overlapping segments: %v", err)
	}
	for _, bad := range []string{`{"schema":99}`, `{`, `[]`} {
		if _, err := DecodeRoot([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeRoot(%s) = %v", bad, err)
		}
	}
}

func TestApplyAndChunk(t *testing.T) {
	a, b, c := rec("a", "t", "log"), rec("b", "t", "log"), rec("c", "t", "log")
	b2 := rec("b", "t", "log", "new")
	got := Apply([]Record{a, b}, []Change{{Key: "a/t/log"}, {Key: "b/t/log", Record: &b2}, {Key: "c/t/log", Record: &c}})
	if len(got) != 2 || got[0].Key() != "b/t/log" || !got[0].HasTag("new") || got[1].Key() != "c/t/log" {
		t.Fatalf("Apply: %v", got)
	}
	recs := make([]Record, 10)
	chunks := Chunk(recs, 4)
	if len(chunks) != 3 || len(chunks[0])+len(chunks[1])+len(chunks[2]) != 10 || len(chunks[0]) < 3 {
		t.Fatalf("Chunk: %d chunks", len(chunks))
	}
	if Chunk(nil, 4) != nil {
		t.Fatal("Chunk(nil)")
	}
}

func TestEntryKey(t *testing.T) {
	k := EntryKey(ArtifactKey("s", "t", "log"), "01ABC")
	if a, id, ok := ParseEntryKey(k); !ok || a != "s/t/log" || id != "01ABC" {
		t.Fatalf("%q -> %q %q %v", k, a, id, ok)
	}
	for _, bad := range []string{"_catalog/log/s/t/01ABC", "_catalog/log/s/t/log/", "blobs/s/t/log/x", "_catalog/log/a/s/t/log/x"} {
		if _, _, ok := ParseEntryKey(bad); ok {
			t.Errorf("ParseEntryKey(%q) ok", bad)
		}
	}
}

func TestUsage(t *testing.T) {
	m := map[UsageKey]Totals{}
	x := rec("a", "t", "log")
	AddUsage(m, &x, 1)
	AddUsage(m, &x, 1)
	AddUsage(m, &x, -1)
	y := rec("b", "t", "log")
	AddUsage(m, &y, 1)
	AddUsage(m, &y, -1) // a row counting nothing is dropped
	data, ref, err := EncodeUsage(m)
	if err != nil {
		t.Fatal(err)
	}
	ref.Key = SegmentPrefix + "usage"
	got, err := DecodeUsage(data, ref)
	if err != nil || len(got) != 1 || got[UsageKey{"a", "log"}] != (Totals{Artifacts: 1, Versions: 1, Bytes: 10, StoredBytes: 4}) {
		t.Fatalf("%+v, %v", got, err)
	}
	data[len(data)-1] ^= 1
	if _, err := DecodeUsage(data, ref); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a flipped bit: %v", err)
	}
	if got, err := DecodeUsage(nil, UsageRef{}); err != nil || len(got) != 0 {
		t.Fatalf("no usage object: %v, %v", got, err)
	}
}
