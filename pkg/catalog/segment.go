package catalog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ErrCorrupt marks a catalog object that is not what the root says it is
// (another size or checksum, not valid JSON, records out of order): it is
// never trusted; the catalog is rebuilt from the manifests.
var ErrCorrupt = errors.New("catalog object is corrupt")

// MaxSegmentTags bounds the tags a SegmentInfo lists; a segment with more
// distinct tags lists none and sets ManyTags (a search by tag reads it).
const MaxSegmentTags = 64

// SegmentInfo describes one segment in the root: where it is, how to check
// it, the range of keys it covers and what its records hold, so that a
// query reads only the segments that may hold an answer.
type SegmentInfo struct {
	// Key is the segment's object key.
	Key string `json:"key"`
	// Records is how many records it holds; Bytes its object's length and
	// SHA256 the hex digest of the object (gzip stream).
	Records int    `json:"records"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
	// First and Last are the keys of its first and last record.
	First string `json:"first"`
	Last  string `json:"last"`
	// Types counts its records by type; Tags by tag (nil with ManyTags).
	Types    map[string]int `json:"types"`
	Tags     map[string]int `json:"tags,omitempty"`
	ManyTags bool           `json:"many_tags,omitempty"`
	// The ranges of the records' current version creation, artifact
	// update and artifact creation times.
	CurrentMin time.Time `json:"current_min"`
	CurrentMax time.Time `json:"current_max"`
	UpdatedMin time.Time `json:"updated_min"`
	UpdatedMax time.Time `json:"updated_max"`
	// Oldest is, by type, the creation time of the oldest version among
	// the records that do not carry the root's ExemptTag: no version of
	// that type in this segment can expire before its retention period
	// has passed since then.
	Oldest map[string]time.Time `json:"oldest,omitempty"`
}

// MayHaveTags reports whether the segment may hold a record carrying
// every tag of tags.
func (si *SegmentInfo) MayHaveTags(tags []string) bool {
	if si.ManyTags {
		return true
	}
	for _, t := range tags {
		if si.Tags[t] == 0 {
			return false
		}
	}
	return true
}

// EncodeSegment encodes recs (sorted by key, without duplicates) as a
// segment object, gzip-compressed JSON lines: for each record, a line with
// the record and a line with its manifest. It returns
// the object and its SegmentInfo, Key left empty for the caller.
func EncodeSegment(recs []Record, exemptTag string) ([]byte, SegmentInfo, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	enc := json.NewEncoder(zw)
	info := SegmentInfo{Records: len(recs), Types: map[string]int{}, Tags: map[string]int{}}
	for i := range recs {
		r := &recs[i]
		if i > 0 && recs[i-1].Key() >= r.Key() {
			return nil, SegmentInfo{}, fmt.Errorf("catalog: records out of order: %q after %q", r.Key(), recs[i-1].Key())
		}
		if err := enc.Encode(r); err != nil {
			return nil, SegmentInfo{}, fmt.Errorf("catalog: encode record %q: %w", r.Key(), err)
		}
		if len(r.Manifest) == 0 || bytes.IndexByte(r.Manifest, '\n') >= 0 || !json.Valid(r.Manifest) {
			return nil, SegmentInfo{}, fmt.Errorf("catalog: record %q: the manifest is not one line of JSON", r.Key())
		}
		if _, err := zw.Write(append(r.Manifest, '\n')); err != nil {
			return nil, SegmentInfo{}, err
		}
		info.add(r, exemptTag)
	}
	if err := zw.Close(); err != nil {
		return nil, SegmentInfo{}, err
	}
	if len(info.Tags) > MaxSegmentTags {
		info.Tags, info.ManyTags = nil, true
	}
	if len(recs) > 0 {
		info.First, info.Last = recs[0].Key(), recs[len(recs)-1].Key()
	}
	sum := sha256.Sum256(buf.Bytes())
	info.Bytes, info.SHA256 = int64(buf.Len()), hex.EncodeToString(sum[:])
	return buf.Bytes(), info, nil
}

// add folds r into the segment's statistics.
func (si *SegmentInfo) add(r *Record, exemptTag string) {
	si.Types[r.Type]++
	for _, t := range r.Tags {
		si.Tags[t]++
	}
	widen(&si.CurrentMin, &si.CurrentMax, r.Current)
	widen(&si.UpdatedMin, &si.UpdatedMax, r.Updated)
	if exemptTag != "" && r.HasTag(exemptTag) {
		return
	}
	for _, v := range r.Versions {
		if old, ok := si.Oldest[r.Type]; !ok || v.Created.Before(old) {
			if si.Oldest == nil {
				si.Oldest = map[string]time.Time{}
			}
			si.Oldest[r.Type] = v.Created
		}
	}
}

// widen extends [lo, hi] to t.
func widen(lo, hi *time.Time, t time.Time) {
	if lo.IsZero() || t.Before(*lo) {
		*lo = t
	}
	if hi.IsZero() || t.After(*hi) {
		*hi = t
	}
}

// checkObject checks that data has the length and SHA-256 the root gives
// for key.
func checkObject(data []byte, key string, size int64, sha string) error {
	sum := sha256.Sum256(data)
	if int64(len(data)) != size || hex.EncodeToString(sum[:]) != sha {
		return fmt.Errorf("%w: %s: %d bytes with SHA-256 %x, the root says %d bytes with %s", ErrCorrupt, key, len(data), sum, size, sha)
	}
	return nil
}

// readLine returns the next line of br without its newline (a copy); a
// last line without one ends with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadBytes('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	if errors.Is(err, io.EOF) && len(line) > 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return line, err
}

// DecodeSegment checks data against info (length and SHA-256) and decodes
// its records. Anything unexpected matches ErrCorrupt.
func DecodeSegment(data []byte, info SegmentInfo) ([]Record, error) {
	return DecodeSegmentMatching(data, info, nil)
}

// Needle is what a record's JSON line must contain to possibly match a
// filter: a tag (TagNeedle) or a type (TypeNeedle).
type Needle []byte

// TagNeedle is the needle of a record carrying tag.
func TagNeedle(tag string) Needle {
	b, _ := json.Marshal(tag) // a string always encodes
	return b
}

// TypeNeedle is the needle of a record of type typ.
func TypeNeedle(typ string) Needle {
	b, _ := json.Marshal(typ)
	return append([]byte(`"type":`), b...)
}

// DecodeSegmentMatching is DecodeSegment that decodes only the records
// whose line contains every needle (a cheap test that may keep records a
// filter rejects, never the reverse), with their manifests; the others
// are counted and skipped.
func DecodeSegmentMatching(data []byte, info SegmentInfo, needles []Needle) ([]Record, error) {
	if err := checkObject(data, info.Key, info.Bytes, info.SHA256); err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: segment %s: %v", ErrCorrupt, info.Key, err)
	}
	var recs []Record
	br := bufio.NewReaderSize(zr, 64<<10)
	n := 0
	for ; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break
		}
		keep := err == nil && slices.IndexFunc(needles, func(nd Needle) bool { return !bytes.Contains(line, nd) }) < 0
		var r Record
		if keep {
			err = json.Unmarshal(line, &r)
		}
		manifest, merr := readLine(br)
		if err == nil {
			err = merr
		}
		if err != nil {
			return nil, fmt.Errorf("%w: segment %s: record %d: %v", ErrCorrupt, info.Key, n+1, err)
		}
		if !keep {
			continue
		}
		if k := len(recs); k > 0 && recs[k-1].Key() >= r.Key() {
			return nil, fmt.Errorf("%w: segment %s: records out of order at %q", ErrCorrupt, info.Key, r.Key())
		}
		r.Manifest = manifest
		recs = append(recs, r)
	}
	if n != info.Records {
		return nil, fmt.Errorf("%w: segment %s: %d records, the root says %d", ErrCorrupt, info.Key, n, info.Records)
	}
	return recs, nil
}
