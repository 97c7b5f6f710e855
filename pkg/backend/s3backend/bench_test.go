package s3backend

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// The benchmarks compare s3backend with the raw minio-go calls it is built
// on, in the same process against the same server (the one TestMain
// started), each pair side by side: BenchmarkPut/64MiB/s3backend next to
// BenchmarkPut/64MiB/minio. See BENCHMARKS.md for the command and figures.

var benchSizes = []struct {
	name string
	size int
}{
	{"4KiB", 4 << 10},
	{"64MiB", 64 << 20},
}

// benchEnv is a bucket with an s3backend and a raw minio-go client on it.
type benchEnv struct {
	bucket string
	be     *Backend
	raw    *minio.Client
}

func newBenchEnv(b *testing.B) benchEnv {
	b.Helper()
	be := newTestBackend(b, MaxParts, nil)
	return benchEnv{bucket: be.bucket, be: be, raw: rawClient(b, server)}
}

// onlyRead hides every method of its reader but Read, like a network
// stream.
type onlyRead struct{ r io.Reader }

func (o onlyRead) Read(p []byte) (int, error) { return o.r.Read(p) }

// cpuTime returns the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times and reports, besides time and throughput, the
// allocations and the CPU time the client process spent per operation
// ("cpu-ms/op"): the server runs in another process, so this is the cost of
// the client code alone, and much less noisy than the wall time on a
// shared machine.
func measure(b *testing.B, bytes int, op func() error) {
	b.Helper()
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func benchData(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	return data
}

// BenchmarkPut uploads one object per iteration: "seekable" is a
// *bytes.Reader with its size (the common case of a file or a buffer),
// "stream" a reader that only reads, with its size, "unknown" the same
// reader without a size.
func BenchmarkPut(b *testing.B) {
	env := newBenchEnv(b)
	ctx := b.Context()
	for _, sz := range benchSizes {
		data := benchData(sz.size)
		kinds := []struct {
			name string
			body func() io.Reader
			size int64
		}{
			{"", func() io.Reader { return bytes.NewReader(data) }, int64(len(data))},
			{"-stream", func() io.Reader { return onlyRead{bytes.NewReader(data)} }, int64(len(data))},
			{"-unknown", func() io.Reader { return onlyRead{bytes.NewReader(data)} }, backend.SizeUnknown},
		}
		for _, kind := range kinds {
			b.Run(sz.name+kind.name, func(b *testing.B) {
				b.Run("s3backend", func(b *testing.B) {
					measure(b, len(data), func() error {
						_, err := env.be.Put(ctx, "bench/put"+kind.name+"/s3backend", kind.body(), kind.size, backend.PutOptions{})
						return err
					})
				})
				b.Run("minio", func(b *testing.B) {
					opts := minio.PutObjectOptions{ContentType: backend.DefaultContentType, PartSize: uint64(DefaultPartSize)}
					measure(b, len(data), func() error {
						_, err := env.raw.PutObject(ctx, env.bucket, "bench/put"+kind.name+"/minio", kind.body(), kind.size, opts)
						return err
					})
				})
			})
		}
	}
}

// BenchmarkGet downloads one object per iteration to io.Discard:
// s3backend's Get (one GET through minio.Core), minio-go's Client.GetObject
// (the *minio.Object most programs use) and minio.Core.GetObject.
func BenchmarkGet(b *testing.B) {
	env := newBenchEnv(b)
	ctx := b.Context()
	for _, sz := range benchSizes {
		data := benchData(sz.size)
		key := "bench/get/" + sz.name
		if _, err := env.be.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		check := func(n int64, err error) error {
			if err == nil && n != int64(len(data)) {
				err = fmt.Errorf("read %d bytes, want %d", n, len(data))
			}
			return err
		}
		b.Run(sz.name, func(b *testing.B) {
			b.Run("s3backend", func(b *testing.B) {
				measure(b, len(data), func() error {
					rc, _, err := env.be.Get(ctx, key)
					if err != nil {
						return err
					}
					defer rc.Close()
					return check(io.Copy(io.Discard, rc))
				})
			})
			b.Run("minio", func(b *testing.B) {
				measure(b, len(data), func() error {
					obj, err := env.raw.GetObject(ctx, env.bucket, key, minio.GetObjectOptions{})
					if err != nil {
						return err
					}
					defer obj.Close()
					return check(io.Copy(io.Discard, obj))
				})
			})
			b.Run("minio-core", func(b *testing.B) {
				core := minio.Core{Client: env.raw}
				measure(b, len(data), func() error {
					rc, _, _, err := core.GetObject(ctx, env.bucket, key, minio.GetObjectOptions{})
					if err != nil {
						return err
					}
					defer rc.Close()
					return check(io.Copy(io.Discard, rc))
				})
			})
		})
	}
}

// ---------------------------------------------------------------------------
// peak RSS

// rssChildEnv makes TestMain run rssChild instead of the tests: the
// benchmark measures the peak RSS (VmHWM) of a fresh process that does
// nothing but one transfer, so nothing else the test binary did counts.
const (
	rssChildEnv = "ARTIFACTSTORE_S3BACKEND_RSS_CHILD"
	rssKeyEnv   = "ARTIFACTSTORE_S3BACKEND_RSS_KEY"
	rssSizeEnv  = "ARTIFACTSTORE_S3BACKEND_RSS_SIZE"
	rssSize     = 1 << 30
)

// patternReader delivers n bytes of a fixed pattern without allocating: a
// stream of unknown length.
type patternReader struct{ n int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = byte(i)
	}
	p.n -= int64(len(b))
	return len(b), nil
}

// rssChild is the child process: mode is "baseline" (build the backend and
// stop), "put/s3backend", "get/s3backend", "put/minio" or "get/minio". It
// finds the server in the ARTIFACTSTORE_S3_* variables (ConfigFromEnv) and
// prints its VmHWM.
func rssChild(mode string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "rss child %s: %v\n", mode, err)
		return 1
	}
	ctx := context.Background()
	cfg, err := ConfigFromEnv(os.LookupEnv)
	if err != nil {
		return fail(err)
	}
	key := os.Getenv(rssKeyEnv)
	size, err := strconv.ParseInt(os.Getenv(rssSizeEnv), 10, 64)
	if err != nil {
		return fail(err)
	}
	be, err := New(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer be.Close()
	raw, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.UseSSL,
		Region: cfg.Region,
	})
	if err != nil {
		return fail(err)
	}
	var n int64
	switch mode {
	case "baseline":
	case "put/s3backend":
		var info backend.ObjectInfo
		info, err = be.Put(ctx, key, &patternReader{n: size}, backend.SizeUnknown, backend.PutOptions{})
		n = info.Size
	case "put/minio":
		var info minio.UploadInfo
		info, err = raw.PutObject(ctx, cfg.Bucket, key, &patternReader{n: size}, -1, minio.PutObjectOptions{PartSize: uint64(DefaultPartSize)})
		n = info.Size
	case "get/s3backend":
		var rc io.ReadCloser
		if rc, _, err = be.Get(ctx, key); err == nil {
			n, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
	case "get/minio":
		var obj *minio.Object
		if obj, err = raw.GetObject(ctx, cfg.Bucket, key, minio.GetObjectOptions{}); err == nil {
			n, err = io.Copy(io.Discard, obj)
			obj.Close()
		}
	default:
		err = fmt.Errorf("unknown mode")
	}
	if err != nil {
		return fail(err)
	}
	if mode != "baseline" && n != size {
		return fail(fmt.Errorf("transferred %d bytes, want %d", n, size))
	}
	hwm, err := vmHWM()
	if err != nil {
		return fail(err)
	}
	fmt.Printf("VmHWM-kB %d\n", hwm)
	return 0
}

// vmHWM returns the peak resident set size of this process, in kB, from
// /proc/self/status.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// runRSSChild runs this test binary as an rssChild and returns its VmHWM
// in kB.
func runRSSChild(b *testing.B, bucket, mode, key string) int64 {
	b.Helper()
	cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		rssChildEnv+"="+mode,
		rssKeyEnv+"="+key,
		rssSizeEnv+"="+strconv.Itoa(rssSize),
		EnvEndpoint+"="+server.Endpoint,
		EnvBucket+"="+bucket,
		EnvRegion+"="+server.Region,
		EnvAccessKey+"="+server.AccessKey,
		EnvSecretKey+"="+server.SecretKey,
		EnvUseSSL+"="+strconv.FormatBool(server.UseSSL),
		EnvPrefix+"=",
		EnvPartSize+"=",
		EnvCreateBucket+"=false",
	)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		b.Fatalf("rss child %s: %v\n%s", mode, err, stderr)
	}
	var kb int64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "VmHWM-kB %d", &kb); err != nil {
		b.Fatalf("rss child %s: output %q: %v", mode, out, err)
	}
	return kb
}

// BenchmarkPeakRSS measures the peak RSS of a process that makes one 1 GiB
// Put from a stream of unknown size, or one 1 GiB Get streamed to
// io.Discard, with s3backend and with raw minio-go (PutObject with size -1
// and the same 16 MiB part size; GetObject), and of one that only builds
// the clients ("baseline"). Each iteration is a child process; the metric
// is the largest VmHWM seen. Run it with -benchtime 1x: every iteration
// moves 1 GiB.
func BenchmarkPeakRSS(b *testing.B) {
	env := newBenchEnv(b)
	key := "bench/rss/1GiB"
	run := func(name, mode string, bytes int64) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(bytes)
			var peak int64
			for b.Loop() {
				peak = max(peak, runRSSChild(b, env.bucket, mode, key))
			}
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
		})
	}
	run("baseline", "baseline", 0)
	run("Put1GiB-unknown-size/s3backend", "put/s3backend", rssSize)
	run("Put1GiB-unknown-size/minio", "put/minio", rssSize)
	// The Get benchmarks read what the Puts wrote; write it here too, so
	// that they also run alone (-bench PeakRSS/Get).
	if _, err := env.be.Put(b.Context(), key, &patternReader{n: rssSize}, backend.SizeUnknown, backend.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	run("Get1GiB/s3backend", "get/s3backend", rssSize)
	run("Get1GiB/minio", "get/minio", rssSize)
}
