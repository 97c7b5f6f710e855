package backendtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Run runs the conformance suite against the backends newBackend makes. It
// calls newBackend once per subtest, with the subtest's t, and expects an
// empty backend each time; newBackend registers with t.Cleanup whatever
// must be released (the "Close" subtest closes its backend itself, so a
// cleanup that closes it again must ignore the error). It is RunWith with
// the zero Options.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	t.Helper()
	RunWith(t, Options{}, newBackend)
}

// Options adapt the suite to what a backend promises. The zero value is
// what Run uses.
type Options struct {
	// ProbeConditionalDelete gates the conditional-delete subtests on
	// backend.ProbeConditionalDelete: a backend that implements
	// backend.ConditionalDeleter whose server does not enforce it (an S3
	// server that accepts If-Match on DELETE and deletes anyway) passes
	// them, with a log line saying they did not run, instead of failing.
	// For backends whose guarantees depend on a server, like s3backend.
	// Default false: a backend that implements backend.ConditionalDeleter
	// must enforce it, and the subtests fail when it does not.
	ProbeConditionalDelete bool

	// KeyBelowObjectUnsupported: the backend does not promise to store and
	// list both of a key and a key below it ("p" and "p/q"), which the
	// backend contract says callers never store (see backend.Backend). The
	// KeyBelowObject subtest then only checks that the attempt damages
	// neither object it already had. For backends whose behaviour depends
	// on a server, like s3backend (MinIO hides "p/q" from listings,
	// POSIX-backed servers refuse it). Default false: the backend stores
	// and lists both, or refuses the second Put and changes nothing.
	KeyBelowObjectUnsupported bool
}

// RunWith is Run with options.
func RunWith(t *testing.T, opts Options, newBackend func(t *testing.T) backend.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"DefaultContentType", testDefaultContentType},
		{"ZeroByte", testZeroByte},
		{"Large", testLarge},
		{"UnknownSize", testUnknownSize},
		{"SizeMismatch", testSizeMismatch},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"Overwrite", testOverwrite},
		{"ListOrder", testListOrder},
		{"ListPrefix", testListPrefix},
		{"ListEmpty", testListEmpty},
		{"ListEarlyBreak", testListEarlyBreak},
		{"ListInvalidPrefix", testListInvalidPrefix},
		{"KeyBelowObject", func(t *testing.T, b backend.Backend) { testKeyBelowObject(t, b, opts) }},
		{"OddKeys", testOddKeys},
		{"LongKeys", testLongKeys},
		{"InvalidKeys", testInvalidKeys},
		{"InvalidArguments", testInvalidArguments},
		{"IfAbsent", testIfAbsent},
		{"IfMatch", testIfMatch},
		{"IfMatchAfterDelete", testIfMatchAfterDelete},
		{"FailingReader", testFailingReader},
		{"CancelledContext", testCancelledContext},
		{"CancelDuringPut", testCancelDuringPut},
		{"ConcurrentWritersAndReaders", testConcurrentWritersAndReaders},
		{"ConcurrentIfAbsent", testConcurrentIfAbsent},
		{"ConcurrentIfMatch", testConcurrentIfMatch},
		{"ConcurrentIncrement", testConcurrentIncrement},
		{"ConditionalPutRaces", testConditionalPutRaces},
		{"ProbeConditionalPut", testProbeConditionalPut},
		{"ProbeConditionalDelete", func(t *testing.T, b backend.Backend) { testProbeConditionalDelete(t, b, opts) }},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, makeBackend(t, newBackend))
		})
	}

	// The optional backend.ConditionalDeleter, for the backends that
	// implement it (and enforce it, with opts.ProbeConditionalDelete).
	cdTests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend, cd backend.ConditionalDeleter)
	}{
		{"DeleteIfMatch", testDeleteIfMatch},
		{"DeleteIfMatchStale", testDeleteIfMatchStale},
		{"DeleteIfMatchMissing", testDeleteIfMatchMissing},
		{"DeleteIfMatchInvalid", testDeleteIfMatchInvalid},
		{"DeleteIfMatchRacesPut", testDeleteIfMatchRacesPut},
		{"ConcurrentDeleteIfMatch", testConcurrentDeleteIfMatch},
	}
	for _, tc := range cdTests {
		t.Run(tc.name, func(t *testing.T) {
			b := makeBackend(t, newBackend)
			cd, ok := b.(backend.ConditionalDeleter)
			if !ok {
				t.Logf("%T is not a backend.ConditionalDeleter: nothing to test", b)
				return
			}
			if opts.ProbeConditionalDelete {
				enforced, err := backend.ProbeConditionalDelete(testContext(t), b, "probe/conditional")
				if err != nil {
					t.Fatalf("ProbeConditionalDelete: %v", err)
				}
				if !enforced {
					t.Logf("%T does not enforce DeleteIfMatch here (ProbeConditionalDelete is false): not tested", b)
					return
				}
			}
			tc.fn(t, b, cd)
		})
	}
}

func makeBackend(t *testing.T, newBackend func(t *testing.T) backend.Backend) backend.Backend {
	t.Helper()
	b := newBackend(t)
	if b == nil {
		t.Fatal("newBackend returned nil")
	}
	return b
}

// testTimeout bounds every subtest, so a backend that hangs fails with a
// clear error instead of the test binary's timeout.
const testTimeout = 2 * time.Minute

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// ---------------------------------------------------------------------------
// helpers

// content returns n deterministic pseudo-random bytes.
func content(seed uint64, n int) []byte {
	var s [32]byte
	copy(s[:], strconv.FormatUint(seed, 10))
	buf := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(buf)
	return buf
}

// onlyReader hides every method of its reader but Read (no Seek, no
// WriterTo), like a network stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, b backend.Backend, key string, data []byte, opts backend.PutOptions) backend.ObjectInfo {
	t.Helper()
	info, err := b.Put(testContext(t), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put(%q, %d bytes, %+v): %v", key, len(data), opts, err)
	}
	checkInfo(t, "Put", info, key, int64(len(data)))
	return info
}

// checkInfo checks the fields every ObjectInfo has.
func checkInfo(t *testing.T, op string, info backend.ObjectInfo, key string, size int64) {
	t.Helper()
	if info.Key != key {
		t.Errorf("%s(%q): Key = %q", op, key, info.Key)
	}
	if info.Size != size {
		t.Errorf("%s(%q): Size = %d, want %d", op, key, info.Size, size)
	}
	if info.ETag == "" {
		t.Errorf("%s(%q): empty ETag", op, key)
	}
}

// checkModified checks that a stored object's time is plausible: set, and
// within a minute of the test's clock (backends may round to seconds).
func checkModified(t *testing.T, op string, info backend.ObjectInfo, start, end time.Time) {
	t.Helper()
	if info.Modified.IsZero() {
		t.Errorf("%s(%q): zero Modified", op, info.Key)
		return
	}
	if info.Modified.Before(start.Add(-time.Minute)) || info.Modified.After(end.Add(time.Minute)) {
		t.Errorf("%s(%q): Modified = %v, not within a minute of [%v, %v]", op, info.Key, info.Modified, start, end)
	}
}

func get(t *testing.T, b backend.Backend, key string) ([]byte, backend.ObjectInfo) {
	t.Helper()
	rc, info, err := b.Get(testContext(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Get(%q): close: %v", key, err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Get(%q): info.Size = %d, read %d bytes", key, info.Size, len(data))
	}
	return data, info
}

// wantContent checks that key holds data (and etag, when not empty) through
// Get and Stat.
func wantContent(t *testing.T, b backend.Backend, key string, data []byte, etag string) {
	t.Helper()
	got, info := get(t, b, key)
	if !bytes.Equal(got, data) {
		t.Errorf("Get(%q) = %s, want %s", key, describe(got), describe(data))
	}
	checkInfo(t, "Get", info, key, int64(len(data)))
	if etag != "" && info.ETag != etag {
		t.Errorf("Get(%q): ETag = %q, want %q", key, info.ETag, etag)
	}
	st, err := b.Stat(testContext(t), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	checkInfo(t, "Stat", st, key, int64(len(data)))
	if st.ETag != info.ETag {
		t.Errorf("Stat(%q): ETag = %q, Get said %q", key, st.ETag, info.ETag)
	}
}

func describe(data []byte) string {
	if len(data) <= 64 {
		return strconv.Quote(string(data))
	}
	return fmt.Sprintf("%d bytes (sha256 %x)", len(data), sha256.Sum256(data))
}

func wantNotFound(t *testing.T, b backend.Backend, key string) {
	t.Helper()
	rc, _, err := b.Get(testContext(t), key)
	if rc != nil {
		rc.Close()
	}
	if !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get(%q): err = %v, want ErrNotFound", key, err)
	}
	if rc != nil {
		t.Errorf("Get(%q): non-nil reader with err %v", key, err)
	}
	if _, err := b.Stat(testContext(t), key); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat(%q): err = %v, want ErrNotFound", key, err)
	}
}

func list(t *testing.T, b backend.Backend, prefix string) []backend.ObjectInfo {
	t.Helper()
	var out []backend.ObjectInfo
	for info, err := range b.List(testContext(t), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v (after %d objects)", prefix, err, len(out))
		}
		out = append(out, info)
	}
	return out
}

func keysOf(infos []backend.ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

func wantKeys(t *testing.T, b backend.Backend, prefix string, want []string) []backend.ObjectInfo {
	t.Helper()
	infos := list(t, b, prefix)
	if got := keysOf(infos); !slices.Equal(got, want) {
		t.Errorf("List(%q) = %q, want %q", prefix, got, want)
	}
	return infos
}

// isConflict tells the errors a losing conditional Put may return: the
// precondition failed, or (S3's 409 ConditionalRequestConflict) a
// concurrent conditional write made the server refuse it, which the
// contract classes as transient.
func isConflict(err error) bool {
	return errors.Is(err, backend.ErrPreconditionFailed) || errors.Is(err, backend.ErrTransient)
}

// ---------------------------------------------------------------------------
// basic objects

func testRoundTrip(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	data := []byte("hello, artifact store\n")
	start := time.Now()
	info, err := b.Put(ctx, "roundtrip/hello.txt", bytes.NewReader(data), int64(len(data)), backend.PutOptions{ContentType: "text/plain; charset=utf-8"})
	end := time.Now()
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkInfo(t, "Put", info, "roundtrip/hello.txt", int64(len(data)))
	if info.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("Put: ContentType = %q", info.ContentType)
	}

	rc, ginfo, err := b.Get(ctx, "roundtrip/hello.txt")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get: read: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Get: close: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("Get = %q, want %q", got, data)
	}
	checkInfo(t, "Get", ginfo, "roundtrip/hello.txt", int64(len(data)))
	if ginfo.ETag != info.ETag {
		t.Errorf("Get: ETag = %q, Put returned %q", ginfo.ETag, info.ETag)
	}
	if ginfo.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("Get: ContentType = %q", ginfo.ContentType)
	}
	checkModified(t, "Get", ginfo, start, end)

	st, err := b.Stat(ctx, "roundtrip/hello.txt")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	checkInfo(t, "Stat", st, "roundtrip/hello.txt", int64(len(data)))
	if st.ETag != info.ETag {
		t.Errorf("Stat: ETag = %q, Put returned %q", st.ETag, info.ETag)
	}
	if st.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("Stat: ContentType = %q", st.ContentType)
	}
	checkModified(t, "Stat", st, start, end)

	infos := wantKeys(t, b, "", []string{"roundtrip/hello.txt"})
	if len(infos) == 1 {
		checkInfo(t, "List", infos[0], "roundtrip/hello.txt", int64(len(data)))
		if infos[0].ETag != info.ETag {
			t.Errorf("List: ETag = %q, Put returned %q", infos[0].ETag, info.ETag)
		}
		checkModified(t, "List", infos[0], start, end)
	}
}

func testDefaultContentType(t *testing.T, b backend.Backend) {
	info := put(t, b, "default/type", []byte("bytes"), backend.PutOptions{})
	if info.ContentType != backend.DefaultContentType {
		t.Errorf("Put: ContentType = %q, want %q", info.ContentType, backend.DefaultContentType)
	}
	st, err := b.Stat(testContext(t), "default/type")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.ContentType != backend.DefaultContentType {
		t.Errorf("Stat: ContentType = %q, want %q", st.ContentType, backend.DefaultContentType)
	}
}

func testZeroByte(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	put(t, b, "zero/known", nil, backend.PutOptions{})
	wantContent(t, b, "zero/known", []byte{}, "")

	info, err := b.Put(ctx, "zero/unknown", onlyReader{strings.NewReader("")}, backend.SizeUnknown, backend.PutOptions{})
	if err != nil {
		t.Fatalf("Put(size unknown, empty): %v", err)
	}
	checkInfo(t, "Put", info, "zero/unknown", 0)
	wantContent(t, b, "zero/unknown", []byte{}, info.ETag)

	for _, info := range wantKeys(t, b, "zero/", []string{"zero/known", "zero/unknown"}) {
		if info.Size != 0 {
			t.Errorf("List: %q has Size %d", info.Key, info.Size)
		}
	}
}

func testLarge(t *testing.T, b backend.Backend) {
	data := content(1, 8<<20)
	info := put(t, b, "large/8MiB", data, backend.PutOptions{})
	wantContent(t, b, "large/8MiB", data, info.ETag)
}

func testUnknownSize(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	data := content(2, 3<<20+123)
	info, err := b.Put(ctx, "unknown/3MiB", onlyReader{bytes.NewReader(data)}, backend.SizeUnknown, backend.PutOptions{ContentType: "application/x-test"})
	if err != nil {
		t.Fatalf("Put(size unknown): %v", err)
	}
	checkInfo(t, "Put", info, "unknown/3MiB", int64(len(data)))
	wantContent(t, b, "unknown/3MiB", data, info.ETag)

	small := []byte("small stream")
	info, err = b.Put(ctx, "unknown/small", onlyReader{bytes.NewReader(small)}, backend.SizeUnknown, backend.PutOptions{})
	if err != nil {
		t.Fatalf("Put(size unknown, small): %v", err)
	}
	wantContent(t, b, "unknown/small", small, info.ETag)
}

func testSizeMismatch(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	data := content(3, 64<<10)
	old := put(t, b, "mismatch/existing", []byte("previous"), backend.PutOptions{})
	cases := []struct {
		name string
		size int64
	}{
		{"shorter reader", int64(len(data)) + 1},
		{"longer reader", int64(len(data)) - 1},
		{"much longer reader", 10},
		{"content where none was announced", 0},
	}
	for _, tc := range cases {
		for _, key := range []string{"mismatch/new", "mismatch/existing"} {
			_, err := b.Put(ctx, key, onlyReader{bytes.NewReader(data)}, tc.size, backend.PutOptions{})
			if !errors.Is(err, backend.ErrSizeMismatch) {
				t.Errorf("%s: Put(%q, size %d, %d bytes): err = %v, want ErrSizeMismatch", tc.name, key, tc.size, len(data), err)
			}
		}
		wantNotFound(t, b, "mismatch/new")
		wantContent(t, b, "mismatch/existing", []byte("previous"), old.ETag)
	}
	// An empty reader with a positive size.
	_, err := b.Put(ctx, "mismatch/new", onlyReader{strings.NewReader("")}, 5, backend.PutOptions{})
	if !errors.Is(err, backend.ErrSizeMismatch) {
		t.Errorf("Put(size 5, empty reader): err = %v, want ErrSizeMismatch", err)
	}
	wantNotFound(t, b, "mismatch/new")
	wantKeys(t, b, "", []string{"mismatch/existing"})
}

func testNotFound(t *testing.T, b backend.Backend) {
	wantNotFound(t, b, "missing/object")
	put(t, b, "missing/sibling", []byte("x"), backend.PutOptions{})
	wantNotFound(t, b, "missing/object")
	wantNotFound(t, b, "missing")          // a prefix of a key is not an object
	wantNotFound(t, b, "missing/sibling2") // nor is a longer key
}

func testDelete(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	put(t, b, "delete/a", []byte("a"), backend.PutOptions{})
	put(t, b, "delete/b", []byte("b"), backend.PutOptions{})
	if err := b.Delete(ctx, "delete/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, b, "delete/a")
	if err := b.Delete(ctx, "delete/a"); err != nil {
		t.Errorf("Delete of a deleted key: %v, want nil", err)
	}
	if err := b.Delete(ctx, "delete/never-existed"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	if err := b.Delete(ctx, "never/existed/deep"); err != nil {
		t.Errorf("Delete of a missing deep key: %v, want nil", err)
	}
	wantContent(t, b, "delete/b", []byte("b"), "")
	wantKeys(t, b, "", []string{"delete/b"})
	// The key can be written again.
	put(t, b, "delete/a", []byte("again"), backend.PutOptions{})
	wantContent(t, b, "delete/a", []byte("again"), "")
}

func testOverwrite(t *testing.T, b backend.Backend) {
	first := put(t, b, "overwrite/key", []byte("version one"), backend.PutOptions{ContentType: "text/plain"})
	second := put(t, b, "overwrite/key", []byte("version two, longer"), backend.PutOptions{ContentType: "application/json"})
	if second.ETag == first.ETag {
		t.Errorf("ETag %q did not change when the content did", first.ETag)
	}
	wantContent(t, b, "overwrite/key", []byte("version two, longer"), second.ETag)
	st, err := b.Stat(testContext(t), "overwrite/key")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.ContentType != "application/json" {
		t.Errorf("Stat: ContentType = %q, want application/json", st.ContentType)
	}
	infos := wantKeys(t, b, "", []string{"overwrite/key"})
	if len(infos) == 1 && (infos[0].ETag != second.ETag || infos[0].Size != second.Size) {
		t.Errorf("List: %+v, want ETag %q and Size %d", infos[0], second.ETag, second.Size)
	}
	third := put(t, b, "overwrite/key", nil, backend.PutOptions{})
	wantContent(t, b, "overwrite/key", []byte{}, third.ETag)
}

// ---------------------------------------------------------------------------
// List

// listKeys is sorted by bytes: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0'
// (0x30), so "a/b" sorts between "a.b" and "a0", not before "a-b". No key
// is a prefix-directory of another (S3 servers on a POSIX filesystem refuse
// "a" next to "a/b"; KeyBelowObject covers that case).
var listKeys = []string{
	"A",
	"a-b",
	"a.b",
	"a/b",
	"a/c/d",
	"a/c/e",
	"a0",
	"ab",
	"a~",
	"b",
	"c/a",
	"z",
}

func putListKeys(t *testing.T, b backend.Backend) map[string]backend.ObjectInfo {
	t.Helper()
	shuffled := slices.Clone(listKeys)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	infos := make(map[string]backend.ObjectInfo)
	for i, k := range shuffled {
		infos[k] = put(t, b, k, bytes.Repeat([]byte{'x'}, i+1), backend.PutOptions{})
	}
	return infos
}

func testListOrder(t *testing.T, b backend.Backend) {
	put := putListKeys(t, b)
	got := wantKeys(t, b, "", listKeys)
	for _, info := range got {
		want := put[info.Key]
		if info.Size != want.Size || info.ETag != want.ETag {
			t.Errorf("List: %q has Size %d ETag %q, Put returned Size %d ETag %q", info.Key, info.Size, info.ETag, want.Size, want.ETag)
		}
		if info.Modified.IsZero() {
			t.Errorf("List: %q has a zero Modified", info.Key)
		}
	}
}

func testListPrefix(t *testing.T, b backend.Backend) {
	putListKeys(t, b)
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", listKeys},
		{"a", []string{"a-b", "a.b", "a/b", "a/c/d", "a/c/e", "a0", "ab", "a~"}},
		{"a/", []string{"a/b", "a/c/d", "a/c/e"}},
		{"a/c", []string{"a/c/d", "a/c/e"}},
		{"a/c/", []string{"a/c/d", "a/c/e"}},
		{"a/c/d", []string{"a/c/d"}},
		{"a.", []string{"a.b"}},
		{"a-", []string{"a-b"}},
		{"A", []string{"A"}},
		{"b", []string{"b"}},
		{"b/", nil},
		{"c", []string{"c/a"}},
		{"c/", []string{"c/a"}},
		{"d", nil},
		{"a/x/", nil},
		{"zz", nil},
	}
	for _, tc := range cases {
		wantKeys(t, b, tc.prefix, tc.want)
	}
}

func testListEmpty(t *testing.T, b backend.Backend) {
	wantKeys(t, b, "", nil)
	wantKeys(t, b, "nothing/", nil)
	put(t, b, "one", []byte("1"), backend.PutOptions{})
	if err := b.Delete(testContext(t), "one"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantKeys(t, b, "", nil)
}

func testListEarlyBreak(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	putListKeys(t, b)
	var got []string
	for info, err := range b.List(ctx, "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		got = append(got, info.Key)
		if len(got) == 2 {
			break
		}
	}
	if !slices.Equal(got, listKeys[:2]) {
		t.Errorf("first two keys = %q, want %q", got, listKeys[:2])
	}

	// The backend stays usable from inside an iteration and after it was
	// stopped: no lock is held across a yield.
	n := 0
	for info, err := range b.List(ctx, "a/") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		n++
		if _, err := b.Stat(ctx, info.Key); err != nil {
			t.Errorf("Stat(%q) inside List: %v", info.Key, err)
		}
		if _, err := b.Put(ctx, "inside/list", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
			t.Errorf("Put inside List: %v", err)
		}
		break
	}
	if n != 1 {
		t.Errorf("iterations before break = %d, want 1", n)
	}
	if err := b.Delete(ctx, "z"); err != nil {
		t.Errorf("Delete after break: %v", err)
	}
	want := append(slices.Clone(listKeys[:len(listKeys)-1]), "inside/list") // "z" deleted
	slices.Sort(want)
	wantKeys(t, b, "", want)
}

func testListInvalidPrefix(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	put(t, b, "valid", []byte("v"), backend.PutOptions{})
	for _, prefix := range []string{"/", "/a", "a//", "../", "a/../", "a/./b", "x\x00", "\xff"} {
		var errs []error
		n := 0
		for info, err := range b.List(ctx, prefix) {
			n++
			if err != nil {
				errs = append(errs, err)
			} else {
				t.Errorf("List(%q) yielded %q", prefix, info.Key)
			}
		}
		if len(errs) != 1 || n != 1 || !errors.Is(errs[0], backend.ErrInvalidKey) {
			t.Errorf("List(%q): %d values, errors %v; want exactly one error matching ErrInvalidKey", prefix, n, errs)
		}
	}
}

// testKeyBelowObject stores "p" and "p/q" (and "r/s" then "r"). S3 stores
// both; S3 servers on a POSIX filesystem (versitygw's posix backend, MinIO
// in FS mode) refuse the second, which the contract allows as long as the
// refusal changes nothing.
func testKeyBelowObject(t *testing.T, b backend.Backend, opts Options) {
	ctx := testContext(t)
	for _, pair := range [][2]string{{"p", "p/q"}, {"r/s", "r"}} {
		first := put(t, b, pair[0], []byte("first"), backend.PutOptions{})
		second, err := b.Put(ctx, pair[1], strings.NewReader("second"), 6, backend.PutOptions{})
		if opts.KeyBelowObjectUnsupported {
			// Outside the contract: whatever the backend did with the
			// second key, the first is intact.
			t.Logf("Put(%q) next to %q: %v", pair[1], pair[0], err)
			wantContent(t, b, pair[0], []byte("first"), first.ETag)
			if err == nil {
				// A listing may not show it: delete it by name.
				if err := b.Delete(ctx, pair[1]); err != nil {
					t.Errorf("Delete(%q): %v", pair[1], err)
				}
			}
			continue
		}
		if err != nil {
			t.Logf("Put(%q) next to %q refused: %v", pair[1], pair[0], err)
			wantNotFound(t, b, pair[1])
			wantContent(t, b, pair[0], []byte("first"), first.ETag)
			wantKeys(t, b, pair[0][:1], []string{pair[0]})
			continue
		}
		wantContent(t, b, pair[0], []byte("first"), first.ETag)
		wantContent(t, b, pair[1], []byte("second"), second.ETag)
		want := []string{pair[0], pair[1]}
		slices.Sort(want)
		wantKeys(t, b, pair[0][:1], want)
	}
}

// ---------------------------------------------------------------------------
// keys

// oddKeys are valid keys that stress encodings: unicode, spaces,
// punctuation, dot segments that are not "." or "..", and names that look
// like the internal files of a filesystem backend.
var oddKeys = []string{
	"unicode/日本語/ファイル.txt",
	"unicode/emoji-🙂",
	"unicode/\u00fcmlaut-\u00df-\u00e9",   // precomposed (NFC)
	"unicode/u\u0308mlaut-\u00df-e\u0301", // the same letters, decomposed (NFD)
	"spaces/with space/and more .txt",
	"spaces/ leading and trailing ",
	"punctuation/!$&'()*+,;=@~",
	"punctuation/percent%20%2F%",
	"punctuation/question?hash#",
	"punctuation/quote\"double\" 'single'",
	"punctuation/back\\slash",
	"dots/.hidden",
	"dots/..double",
	"dots/trailing.",
	"dots/...",
	"case/A",
	"case/a",
	"internal/x.obj",
	"internal/x.d/y",
	"internal/x.tmp",
	"internal/.tmp-0123456789abcdef.tmp",
	"internal/x.lock",
	"internal/.locks",
	".leading-dot/x",
}

func testOddKeys(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	etags := make(map[string]string)
	for _, k := range oddKeys {
		etags[k] = put(t, b, k, []byte(k), backend.PutOptions{}).ETag
	}
	for _, k := range oddKeys {
		wantContent(t, b, k, []byte(k), etags[k])
	}
	want := slices.Clone(oddKeys)
	slices.Sort(want)
	wantKeys(t, b, "", want)
	for _, prefix := range []string{"unicode/", "internal/x.", "dots/.", "spaces/ "} {
		var want []string
		for _, k := range oddKeys {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		wantKeys(t, b, prefix, want)
	}
	for _, k := range oddKeys {
		if err := b.Delete(ctx, k); err != nil {
			t.Errorf("Delete(%q): %v", k, err)
		}
	}
	wantKeys(t, b, "", nil)
}

// testLongKeys stores keys near the length limit. They stay 124 bytes under
// backend.MaxKeyLength so that a backend may add a prefix of its own (the
// S3 backend's key prefix) and still meet S3's 1,024-byte limit; no segment
// is longer than 240 bytes (filesystem names are limited to 255).
func testLongKeys(t *testing.T, b backend.Backend) {
	long := "long/" + strings.Repeat("seg-0123/", 99) + "last" // 900 bytes
	if len(long) != 900 {
		t.Fatalf("test key is %d bytes", len(long))
	}
	deep := strings.TrimSuffix(strings.Repeat("d/", 150), "/") // 150 segments
	wide := "wide/" + strings.Repeat("w", 240)
	multibyte := "mb/" + strings.Repeat("é", 120) // 240 bytes in one segment
	for _, k := range []string{long, deep, wide, multibyte} {
		info := put(t, b, k, []byte("long"), backend.PutOptions{})
		wantContent(t, b, k, []byte("long"), info.ETag)
	}
	want := []string{deep, long, multibyte, wide}
	slices.Sort(want)
	wantKeys(t, b, "", want)
}

var invalidKeys = []string{
	"",
	"/",
	"/a",
	"a/",
	"a//b",
	".",
	"..",
	"../x",
	"a/../b",
	"a/..",
	"a/./b",
	"./a",
	"a\x00b",
	"a\nb",
	"a\tb",
	"a\x7fb",
	"\xff\xfe",
	strings.Repeat("k", backend.MaxKeyLength+1),
	strings.Repeat("k/", backend.MaxKeyLength/2) + "k",
}

func testInvalidKeys(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	for _, k := range invalidKeys {
		name := strconv.Quote(k)
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if _, err := b.Put(ctx, k, strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Put(%s): err = %v, want ErrInvalidKey", name, err)
		}
		if _, err := b.Put(ctx, k, strings.NewReader("x"), 1, backend.PutOptions{IfAbsent: true}); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Put(%s, IfAbsent): err = %v, want ErrInvalidKey", name, err)
		}
		rc, _, err := b.Get(ctx, k)
		if !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Get(%s): err = %v, want ErrInvalidKey", name, err)
		}
		if rc != nil {
			rc.Close()
			t.Errorf("Get(%s): non-nil reader", name)
		}
		if _, err := b.Stat(ctx, k); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Stat(%s): err = %v, want ErrInvalidKey", name, err)
		}
		if err := b.Delete(ctx, k); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Delete(%s): err = %v, want ErrInvalidKey", name, err)
		}
	}
	wantKeys(t, b, "", nil)
}

func testInvalidArguments(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	old := put(t, b, "args/existing", []byte("old"), backend.PutOptions{})
	for _, key := range []string{"args/new", "args/existing"} {
		if _, err := b.Put(ctx, key, nil, 0, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalidArgument) {
			t.Errorf("Put(%q, nil reader): err = %v, want ErrInvalidArgument", key, err)
		}
		if _, err := b.Put(ctx, key, strings.NewReader("x"), -2, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalidArgument) {
			t.Errorf("Put(%q, size -2): err = %v, want ErrInvalidArgument", key, err)
		}
		opts := backend.PutOptions{IfAbsent: true, IfMatch: old.ETag}
		if _, err := b.Put(ctx, key, strings.NewReader("x"), 1, opts); !errors.Is(err, backend.ErrInvalidArgument) {
			t.Errorf("Put(%q, IfAbsent and IfMatch): err = %v, want ErrInvalidArgument", key, err)
		}
	}
	wantNotFound(t, b, "args/new")
	wantContent(t, b, "args/existing", []byte("old"), old.ETag)
}

// ---------------------------------------------------------------------------
// conditional writes

func testIfAbsent(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	first := put(t, b, "ifabsent/key", []byte("first"), backend.PutOptions{IfAbsent: true})
	_, err := b.Put(ctx, "ifabsent/key", strings.NewReader("second"), 6, backend.PutOptions{IfAbsent: true})
	if !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("second IfAbsent Put: err = %v, want ErrPreconditionFailed", err)
	}
	wantContent(t, b, "ifabsent/key", []byte("first"), first.ETag)

	// An unknown-size body is refused the same way.
	_, err = b.Put(ctx, "ifabsent/key", onlyReader{strings.NewReader("third")}, backend.SizeUnknown, backend.PutOptions{IfAbsent: true})
	if !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("IfAbsent Put of unknown size: err = %v, want ErrPreconditionFailed", err)
	}
	wantContent(t, b, "ifabsent/key", []byte("first"), first.ETag)

	// After a Delete the key is absent again.
	if err := b.Delete(ctx, "ifabsent/key"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	again := put(t, b, "ifabsent/key", []byte("again"), backend.PutOptions{IfAbsent: true})
	wantContent(t, b, "ifabsent/key", []byte("again"), again.ETag)
}

func testIfMatch(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	first := put(t, b, "ifmatch/key", []byte("one"), backend.PutOptions{})
	second := put(t, b, "ifmatch/key", []byte("two"), backend.PutOptions{IfMatch: first.ETag})
	if second.ETag == first.ETag {
		t.Fatalf("ETag %q did not change when the content did", first.ETag)
	}
	wantContent(t, b, "ifmatch/key", []byte("two"), second.ETag)

	for _, etag := range []string{first.ETag, "not-an-etag", `"` + second.ETag + `x"`} {
		_, err := b.Put(ctx, "ifmatch/key", strings.NewReader("three"), 5, backend.PutOptions{IfMatch: etag})
		if !errors.Is(err, backend.ErrPreconditionFailed) {
			t.Errorf("Put with IfMatch %q (current %q): err = %v, want ErrPreconditionFailed", etag, second.ETag, err)
		}
	}
	wantContent(t, b, "ifmatch/key", []byte("two"), second.ETag)

	// A missing object matches no ETag.
	_, err := b.Put(ctx, "ifmatch/missing", strings.NewReader("x"), 1, backend.PutOptions{IfMatch: second.ETag})
	if !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("Put with IfMatch on a missing key: err = %v, want ErrPreconditionFailed", err)
	}
	wantNotFound(t, b, "ifmatch/missing")

	// The ETag returned by Stat and by List can be used too.
	st, err := b.Stat(ctx, "ifmatch/key")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	third := put(t, b, "ifmatch/key", []byte("three"), backend.PutOptions{IfMatch: st.ETag, ContentType: "text/plain"})
	infos := wantKeys(t, b, "ifmatch/", []string{"ifmatch/key"})
	if len(infos) == 1 {
		fourth := put(t, b, "ifmatch/key", []byte("four"), backend.PutOptions{IfMatch: infos[0].ETag})
		if fourth.ETag == third.ETag {
			t.Errorf("ETag %q did not change when the content did", third.ETag)
		}
		wantContent(t, b, "ifmatch/key", []byte("four"), fourth.ETag)
	}
}

func testIfMatchAfterDelete(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	first := put(t, b, "ifmatch/deleted", []byte("one"), backend.PutOptions{})
	if err := b.Delete(ctx, "ifmatch/deleted"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := b.Put(ctx, "ifmatch/deleted", strings.NewReader("two"), 3, backend.PutOptions{IfMatch: first.ETag})
	if !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("Put with the ETag of a deleted object: err = %v, want ErrPreconditionFailed", err)
	}
	wantNotFound(t, b, "ifmatch/deleted")
}

// ---------------------------------------------------------------------------
// failures during a Put

var errReader = errors.New("backendtest: reader failed half-way")

// halfReader delivers data[:failAt] and then fails.
type halfReader struct {
	data   []byte
	failAt int
	off    int
}

func (h *halfReader) Read(p []byte) (int, error) {
	if h.off >= h.failAt {
		return 0, errReader
	}
	n := copy(p, h.data[h.off:h.failAt])
	h.off += n
	return n, nil
}

func testFailingReader(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	data := content(4, 1<<20)
	old := put(t, b, "failing/existing", []byte("previous"), backend.PutOptions{})
	for _, size := range []int64{int64(len(data)), backend.SizeUnknown} {
		for _, opts := range []backend.PutOptions{{}, {IfAbsent: true}, {IfMatch: old.ETag}} {
			for _, key := range []string{"failing/new", "failing/existing"} {
				r := &halfReader{data: data, failAt: len(data) / 2}
				_, err := b.Put(ctx, key, r, size, opts)
				if err == nil {
					t.Errorf("Put(%q, size %d, %+v) with a reader failing half-way succeeded", key, size, opts)
				} else if !errors.Is(err, errReader) {
					// The contract does not require the reader's error in the
					// chain (an HTTP client may replace it); note it.
					t.Logf("Put(%q, size %d): the reader's error is not in the chain: %v", key, size, err)
				}
			}
		}
		wantNotFound(t, b, "failing/new")
		wantContent(t, b, "failing/existing", []byte("previous"), old.ETag)
	}
	wantKeys(t, b, "", []string{"failing/existing"})
}

func testCancelledContext(t *testing.T, b backend.Backend) {
	old := put(t, b, "cancelled/existing", []byte("previous"), backend.PutOptions{})
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	for _, key := range []string{"cancelled/new", "cancelled/existing"} {
		if _, err := b.Put(ctx, key, strings.NewReader("new"), 3, backend.PutOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Put(%q) with a cancelled context: err = %v, want context.Canceled", key, err)
		}
	}
	rc, _, err := b.Get(ctx, "cancelled/existing")
	if rc != nil {
		rc.Close()
		t.Errorf("Get with a cancelled context returned a reader")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := b.Stat(ctx, "cancelled/existing"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context: err = %v, want context.Canceled", err)
	}
	if err := b.Delete(ctx, "cancelled/existing"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: err = %v, want context.Canceled", err)
	}
	var listErr error
	for info, err := range b.List(ctx, "") {
		if err == nil {
			t.Errorf("List with a cancelled context yielded %q", info.Key)
			continue
		}
		listErr = err
	}
	if !errors.Is(listErr, context.Canceled) {
		t.Errorf("List with a cancelled context: err = %v, want context.Canceled", listErr)
	}
	wantNotFound(t, b, "cancelled/new")
	wantContent(t, b, "cancelled/existing", []byte("previous"), old.ETag)
}

// cancellingReader delivers data; once cancelAt bytes have been read it
// cancels the context of the Put, then keeps delivering the rest slowly, so
// that a backend (or an HTTP transport) that watches the context has time
// to notice before the body ends.
type cancellingReader struct {
	data     []byte
	cancelAt int
	cancel   context.CancelFunc
	off      int
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.off >= len(c.data) {
		return 0, io.EOF
	}
	if c.off >= c.cancelAt {
		c.cancel()
		time.Sleep(2 * time.Millisecond)
		p = p[:min(len(p), 16<<10)]
	} else {
		p = p[:min(len(p), c.cancelAt-c.off)]
	}
	n := copy(p, c.data[c.off:])
	c.off += n
	return n, nil
}

func testCancelDuringPut(t *testing.T, b backend.Backend) {
	data := content(5, 512<<10)
	old := put(t, b, "cancelling/existing", []byte("previous"), backend.PutOptions{})
	for _, size := range []int64{int64(len(data)), backend.SizeUnknown} {
		for _, key := range []string{"cancelling/new", "cancelling/existing"} {
			ctx, cancel := context.WithCancel(testContext(t))
			r := &cancellingReader{data: data, cancelAt: len(data) / 4, cancel: cancel}
			_, err := b.Put(ctx, key, r, size, backend.PutOptions{})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Put(%q, size %d) cancelled half-way: err = %v, want context.Canceled", key, size, err)
			}
		}
		wantNotFound(t, b, "cancelling/new")
		wantContent(t, b, "cancelling/existing", []byte("previous"), old.ETag)
	}
}

// ---------------------------------------------------------------------------
// concurrency

const concurrency = 20

// stamp is the content of version v (1..255) of a contended object: v
// repeated, with a length that depends on v, so a reader can tell a whole
// version from a mix of two.
func stamp(v int) []byte { return bytes.Repeat([]byte{byte(v)}, 8<<10+v*97) }

func checkStamp(data []byte) error {
	if len(data) == 0 {
		return errors.New("empty object")
	}
	want := stamp(int(data[0]))
	if !bytes.Equal(data, want) {
		return fmt.Errorf("torn object: %d bytes starting with %d, want %d bytes of %d", len(data), data[0], len(want), data[0])
	}
	return nil
}

func testConcurrentWritersAndReaders(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	const key, rounds = "concurrent/object", 3
	put(t, b, key, stamp(255), backend.PutOptions{})

	done := make(chan struct{})
	var readers, writers sync.WaitGroup
	for range concurrency {
		readers.Go(func() {
			for reads := 0; ; reads++ {
				select {
				case <-done:
					if reads > 0 {
						return
					}
				default:
				}
				rc, info, err := b.Get(ctx, key)
				if err != nil {
					t.Errorf("Get during writes: %v", err)
					return
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Errorf("Get during writes: read: %v", err)
					return
				}
				if err := checkStamp(data); err != nil {
					t.Errorf("Get during writes: %v", err)
					return
				}
				if info.Size != int64(len(data)) {
					t.Errorf("Get during writes: info.Size %d for %d bytes", info.Size, len(data))
					return
				}
				// A breath between reads, so that 20 readers of a fast
				// backend leave the writers some CPU.
				time.Sleep(time.Millisecond)
			}
		})
	}
	for w := range concurrency {
		writers.Go(func() {
			for r := range rounds {
				v := 1 + w*rounds + r
				if _, err := b.Put(ctx, key, bytes.NewReader(stamp(v)), int64(len(stamp(v))), backend.PutOptions{}); err != nil {
					t.Errorf("writer %d: Put: %v", w, err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()

	data, info := get(t, b, key)
	if err := checkStamp(data); err != nil {
		t.Errorf("final object: %v", err)
	} else if data[0] == 255 {
		t.Errorf("final object is still the initial one")
	}
	checkInfo(t, "Get", info, key, int64(len(data)))
	wantKeys(t, b, "", []string{key})
}

// race runs n goroutines that start together and calls fn(i) in each.
func race(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// contend runs concurrency conditional Puts of stamp(i+1) on key with the
// options opts and checks that exactly one wins and the object is its.
func contend(t *testing.T, b backend.Backend, key string, opts backend.PutOptions) {
	t.Helper()
	contendN(t, b, key, opts, concurrency, 1)
}

// contendN runs n conditional Puts of stamp(first+i) on key with the
// options opts, checks that exactly one wins and the object is its, and
// returns the winner's info.
func contendN(t *testing.T, b backend.Backend, key string, opts backend.PutOptions, n, first int) backend.ObjectInfo {
	t.Helper()
	ctx := testContext(t)
	var mu sync.Mutex
	var wins []backend.ObjectInfo
	var winner []byte
	race(n, func(i int) {
		data := stamp(first + i)
		info, err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			if !isConflict(err) {
				t.Errorf("writer %d: err = %v, want ErrPreconditionFailed", i, err)
			}
			return
		}
		mu.Lock()
		defer mu.Unlock()
		wins = append(wins, info)
		winner = data
	})
	if len(wins) != 1 {
		t.Fatalf("%d of %d conditional Puts (%+v) succeeded, want exactly 1", len(wins), n, opts)
	}
	wantContent(t, b, key, winner, wins[0].ETag)
	return wins[0]
}

func testConcurrentIfAbsent(t *testing.T, b backend.Backend) {
	contend(t, b, "contended/absent", backend.PutOptions{IfAbsent: true})
}

func testConcurrentIfMatch(t *testing.T, b backend.Backend) {
	base := put(t, b, "contended/match", []byte("base"), backend.PutOptions{})
	contend(t, b, "contended/match", backend.PutOptions{IfMatch: base.ETag})
}

// racers is the number of conditional Puts ConditionalPutRaces starts at
// once in each round.
const racers = 16

// testConditionalPutRaces creates a key with racers concurrent IfAbsent
// Puts, then replaces it in rounds of racers concurrent IfMatch Puts, each
// against the previous round's winner: every round has exactly one winner,
// whose content the object then holds.
func testConditionalPutRaces(t *testing.T, b backend.Backend) {
	const key, rounds = "races/key", 4
	cur := contendN(t, b, key, backend.PutOptions{IfAbsent: true}, racers, 1)
	for r := 1; r <= rounds; r++ {
		cur = contendN(t, b, key, backend.PutOptions{IfMatch: cur.ETag}, racers, 1+r*racers)
	}
	wantKeys(t, b, "", []string{key})
}

// testConcurrentIncrement is a read-modify-write counter under contention:
// every increment is an IfMatch Put retried on conflict. A lost update
// shows as a final count below the number of successful Puts.
func testConcurrentIncrement(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	const key, workers, increments = "contended/counter", 8, 5
	put(t, b, key, []byte("0"), backend.PutOptions{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for done, attempts := 0, 0; done < increments; attempts++ {
				if attempts > 1000 {
					t.Errorf("worker %d: no progress after %d attempts", w, attempts)
					return
				}
				rc, info, err := b.Get(ctx, key)
				if err != nil {
					t.Errorf("worker %d: Get: %v", w, err)
					return
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Errorf("worker %d: read: %v", w, err)
					return
				}
				n, err := strconv.Atoi(string(data))
				if err != nil {
					t.Errorf("worker %d: counter %q: %v", w, data, err)
					return
				}
				next := strconv.Itoa(n + 1)
				_, err = b.Put(ctx, key, strings.NewReader(next), int64(len(next)), backend.PutOptions{IfMatch: info.ETag})
				switch {
				case err == nil:
					done++
				case isConflict(err):
				default:
					t.Errorf("worker %d: Put: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	data, _ := get(t, b, key)
	if want := strconv.Itoa(workers * increments); string(data) != want {
		t.Errorf("counter = %s after %d increments: updates were lost", data, workers*increments)
	}
}

// ---------------------------------------------------------------------------
// conditional delete (backend.ConditionalDeleter)

func testDeleteIfMatch(t *testing.T, b backend.Backend, cd backend.ConditionalDeleter) {
	ctx := testContext(t)
	put(t, b, "cdelete/keep", []byte("neighbour"), backend.PutOptions{})
	info := put(t, b, "cdelete/key", []byte("one"), backend.PutOptions{})
	if err := cd.DeleteIfMatch(ctx, "cdelete/key", info.ETag); err != nil {
		t.Fatalf("DeleteIfMatch with the current ETag: %v", err)
	}
	wantNotFound(t, b, "cdelete/key")
	wantKeys(t, b, "", []string{"cdelete/keep"})

	// The ETags returned by Stat and List can be used too.
	put(t, b, "cdelete/stat", []byte("two"), backend.PutOptions{})
	st, err := b.Stat(ctx, "cdelete/stat")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if err := cd.DeleteIfMatch(ctx, "cdelete/stat", st.ETag); err != nil {
		t.Errorf("DeleteIfMatch with the ETag from Stat: %v", err)
	}
	put(t, b, "cdelete/list", []byte("three"), backend.PutOptions{})
	if infos := wantKeys(t, b, "cdelete/l", []string{"cdelete/list"}); len(infos) == 1 {
		if err := cd.DeleteIfMatch(ctx, "cdelete/list", infos[0].ETag); err != nil {
			t.Errorf("DeleteIfMatch with the ETag from List: %v", err)
		}
	}

	// An empty object; afterwards the key is absent for IfAbsent.
	zero := put(t, b, "cdelete/key", nil, backend.PutOptions{})
	if err := cd.DeleteIfMatch(ctx, "cdelete/key", zero.ETag); err != nil {
		t.Errorf("DeleteIfMatch of an empty object: %v", err)
	}
	again := put(t, b, "cdelete/key", []byte("again"), backend.PutOptions{IfAbsent: true})
	wantContent(t, b, "cdelete/key", []byte("again"), again.ETag)
	wantContent(t, b, "cdelete/keep", []byte("neighbour"), "")
	wantKeys(t, b, "", []string{"cdelete/keep", "cdelete/key"})
}

func testDeleteIfMatchStale(t *testing.T, b backend.Backend, cd backend.ConditionalDeleter) {
	ctx := testContext(t)
	first := put(t, b, "cdelete/stale", []byte("one"), backend.PutOptions{})
	second := put(t, b, "cdelete/stale", []byte("two"), backend.PutOptions{})
	if first.ETag == second.ETag {
		t.Fatalf("ETag %q did not change when the content did", first.ETag)
	}
	for _, etag := range []string{first.ETag, "not-an-etag", `"` + second.ETag + `x"`} {
		err := cd.DeleteIfMatch(ctx, "cdelete/stale", etag)
		if !errors.Is(err, backend.ErrPreconditionFailed) {
			t.Errorf("DeleteIfMatch with ETag %q (current %q): err = %v, want ErrPreconditionFailed", etag, second.ETag, err)
		}
	}
	wantContent(t, b, "cdelete/stale", []byte("two"), second.ETag)
	if err := cd.DeleteIfMatch(ctx, "cdelete/stale", second.ETag); err != nil {
		t.Errorf("DeleteIfMatch with the current ETag after refusals: %v", err)
	}
	wantKeys(t, b, "", nil)
}

func testDeleteIfMatchMissing(t *testing.T, b backend.Backend, cd backend.ConditionalDeleter) {
	ctx := testContext(t)
	if err := cd.DeleteIfMatch(ctx, "cdelete/never", "some-etag"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("DeleteIfMatch of a key that never existed: err = %v, want ErrNotFound", err)
	}
	gone := put(t, b, "cdelete/gone", []byte("x"), backend.PutOptions{})
	if err := b.Delete(ctx, "cdelete/gone"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := cd.DeleteIfMatch(ctx, "cdelete/gone", gone.ETag); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("DeleteIfMatch with the ETag of a deleted object: err = %v, want ErrNotFound", err)
	}
	sibling := put(t, b, "cdelete/sibling", []byte("y"), backend.PutOptions{})
	for _, key := range []string{"cdelete/sib", "cdelete/sibling2"} { // a prefix, a longer key
		if err := cd.DeleteIfMatch(ctx, key, sibling.ETag); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("DeleteIfMatch(%q) next to %q: err = %v, want ErrNotFound", key, "cdelete/sibling", err)
		}
	}
	wantNotFound(t, b, "cdelete/gone")
	wantContent(t, b, "cdelete/sibling", []byte("y"), sibling.ETag)
	wantKeys(t, b, "", []string{"cdelete/sibling"})
}

func testDeleteIfMatchInvalid(t *testing.T, b backend.Backend, cd backend.ConditionalDeleter) {
	info := put(t, b, "cdelete/kept", []byte("kept"), backend.PutOptions{})
	if err := cd.DeleteIfMatch(testContext(t), "cdelete/kept", ""); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Errorf("DeleteIfMatch with an empty ETag: err = %v, want ErrInvalidArgument", err)
	}
	for _, key := range []string{"", "a//b", "../x", "a/"} {
		if err := cd.DeleteIfMatch(testContext(t), key, info.ETag); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("DeleteIfMatch(%q): err = %v, want ErrInvalidKey", key, err)
		}
	}
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	if err := cd.DeleteIfMatch(ctx, "cdelete/kept", info.ETag); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteIfMatch with a cancelled context: err = %v, want context.Canceled", err)
	}
	wantContent(t, b, "cdelete/kept", []byte("kept"), info.ETag)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := cd.DeleteIfMatch(testContext(t), "cdelete/kept", info.ETag); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("DeleteIfMatch after Close: err = %v, want ErrClosed", err)
	}
}

// testDeleteIfMatchRacesPut races a DeleteIfMatch against an IfMatch Put
// with the same ETag, round after round: exactly one of them wins, and the
// object is then gone (the delete won) or holds the Put's content.
func testDeleteIfMatchRacesPut(t *testing.T, b backend.Backend, cd backend.ConditionalDeleter) {
	ctx := testContext(t)
	const key, rounds = "cdelete/race", 20
	won := map[string]int{}
	for r := range rounds {
		base := put(t, b, key, stamp(1+r), backend.PutOptions{})
		data := stamp(100 + r)
		var delErr, putErr error
		var putInfo backend.ObjectInfo
		race(2, func(i int) {
			if i == 0 {
				delErr = cd.DeleteIfMatch(ctx, key, base.ETag)
				return
			}
			putInfo, putErr = b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{IfMatch: base.ETag})
		})
		switch {
		case delErr == nil && putErr == nil:
			t.Fatalf("round %d: both the DeleteIfMatch and the IfMatch Put of ETag %q succeeded", r, base.ETag)
		case delErr == nil:
			won["delete"]++
			if !isConflict(putErr) {
				t.Errorf("round %d: the losing Put: err = %v, want ErrPreconditionFailed", r, putErr)
			}
			wantNotFound(t, b, key)
		case putErr == nil:
			won["put"]++
			if !isConflict(delErr) {
				t.Errorf("round %d: the losing DeleteIfMatch: err = %v, want ErrPreconditionFailed", r, delErr)
			}
			wantContent(t, b, key, data, putInfo.ETag)
		default:
			// Both refused: only a server that refuses concurrent
			// conditional requests (S3's 409) may do that.
			won["neither"]++
			if !errors.Is(delErr, backend.ErrTransient) && !errors.Is(putErr, backend.ErrTransient) {
				t.Errorf("round %d: both lost: DeleteIfMatch %v, Put %v", r, delErr, putErr)
			}
			wantContent(t, b, key, stamp(1+r), base.ETag)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("of %d rounds: %v", rounds, won)
}

// testConcurrentDeleteIfMatch starts racers DeleteIfMatch calls of one
// object with its ETag at once: exactly one deletes it, the others find it
// missing.
func testConcurrentDeleteIfMatch(t *testing.T, b backend.Backend, cd backend.ConditionalDeleter) {
	ctx := testContext(t)
	info := put(t, b, "cdelete/contended", []byte("x"), backend.PutOptions{})
	var mu sync.Mutex
	wins := 0
	race(racers, func(i int) {
		err := cd.DeleteIfMatch(ctx, "cdelete/contended", info.ETag)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, backend.ErrTransient):
			t.Errorf("deleter %d: err = %v, want ErrNotFound", i, err)
		}
	})
	if wins != 1 {
		t.Errorf("%d of %d concurrent DeleteIfMatch calls succeeded, want exactly 1", wins, racers)
	}
	wantKeys(t, b, "", nil)
}

// ---------------------------------------------------------------------------
// probe and close

func testProbeConditionalPut(t *testing.T, b backend.Backend) {
	if err := backend.ProbeConditionalPut(testContext(t), b, "probe/conditional"); err != nil {
		t.Fatalf("ProbeConditionalPut: %v", err)
	}
	wantNotFound(t, b, "probe/conditional")
	wantKeys(t, b, "", nil)
}

func testProbeConditionalDelete(t *testing.T, b backend.Backend, opts Options) {
	ok, err := backend.ProbeConditionalDelete(testContext(t), b, "probe/conditional")
	if err != nil {
		t.Fatalf("ProbeConditionalDelete: %v", err)
	}
	_, isCD := b.(backend.ConditionalDeleter)
	switch {
	case ok && !isCD:
		t.Errorf("ProbeConditionalDelete = true for %T, which is not a backend.ConditionalDeleter", b)
	case !ok && isCD && !opts.ProbeConditionalDelete:
		t.Errorf("ProbeConditionalDelete = false: %T implements backend.ConditionalDeleter but does not enforce it", b)
	case !ok && isCD:
		t.Logf("ProbeConditionalDelete = false: %T does not enforce DeleteIfMatch here", b)
	}
	wantKeys(t, b, "", nil)
}

func testClose(t *testing.T, b backend.Backend) {
	ctx := testContext(t)
	put(t, b, "close/existing", []byte("x"), backend.PutOptions{})
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := b.Put(ctx, "close/new", strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Put after Close: err = %v, want ErrClosed", err)
	}
	rc, _, err := b.Get(ctx, "close/existing")
	if rc != nil {
		rc.Close()
		t.Errorf("Get after Close returned a reader")
	}
	if !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Get after Close: err = %v, want ErrClosed", err)
	}
	if _, err := b.Stat(ctx, "close/existing"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Stat after Close: err = %v, want ErrClosed", err)
	}
	if err := b.Delete(ctx, "close/existing"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Delete after Close: err = %v, want ErrClosed", err)
	}
	var listErr error
	for info, err := range b.List(ctx, "") {
		if err == nil {
			t.Errorf("List after Close yielded %q", info.Key)
			continue
		}
		listErr = err
	}
	if !errors.Is(listErr, backend.ErrClosed) {
		t.Errorf("List after Close: err = %v, want ErrClosed", listErr)
	}
}
