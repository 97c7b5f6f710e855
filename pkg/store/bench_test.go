package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

// The benchmarks run the store on the real S3 server (versitygw started by
// internal/testenv, or the external server named by ARTIFACTSTORE_S3_*) with
// a redislock over a redis-server, side by side with raw minio-go calls on
// the same server in the same run: BenchmarkDownload4KiB/store next to
// BenchmarkDownload4KiB/minio. See BENCHMARKS.md ("Store") for the commands
// and figures.

// benchRig is a store on S3 + Redis and a raw minio-go client on the same
// bucket.
type benchRig struct {
	s      *Store
	raw    *minio.Client
	bucket string
}

// newBenchBackend starts the S3 server and returns a backend on a new
// bucket of it, closed when b ends.
func newBenchBackend(b *testing.B) (*s3backend.Backend, testenv.S3Server) {
	b.Helper()
	srv := testenv.StartS3(b)
	be, err := s3backend.New(context.Background(), s3backend.Config{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, UseSSL: srv.UseSSL, CreateBucket: true,
	})
	if err != nil {
		b.Fatalf("s3backend: %v", err)
	}
	b.Cleanup(func() { _ = be.Close() })
	return be, srv
}

func newBenchRig(b *testing.B, cfg Config) *benchRig {
	b.Helper()
	ctx := context.Background()
	be, srv := newBenchBackend(b)
	rs := testenv.StartRedis(b)
	locker, err := redislock.Open(redislock.Config{Addrs: []string{rs.Addr()}}, lock.Config{})
	if err != nil {
		b.Fatalf("redislock: %v", err)
	}
	b.Cleanup(func() { _ = locker.Close() })
	s, err := New(ctx, be, locker, cfg)
	if err != nil {
		b.Fatalf("store: %v", err)
	}
	raw, err := minio.New(srv.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Secure: srv.UseSSL, Region: srv.Region,
	})
	if err != nil {
		b.Fatalf("minio: %v", err)
	}
	return &benchRig{s: s, raw: raw, bucket: srv.Bucket}
}

// interleaved runs the store's operations and raw minio-go's ("minio...")
// alternately in each iteration and reports the time of each and the ratio
// of the speeds of every store operation to every raw one (raw time / store
// time: 0.5 means the store does half as many operations per second).
// Alternating keeps the comparison fair on a machine whose load changes
// during the run. "minio-samekey" writes keys shaped like the store's blob
// keys (blobs/<spec>/<task>/<type>/<id>): on a server that stores objects
// as files (versitygw, MinIO), a new deep prefix costs directory creations
// that a flat raw key does not pay.
func interleaved(b *testing.B, ops map[string]func(), order []string) {
	total := make(map[string]time.Duration, len(order))
	n := 0
	for b.Loop() {
		n++
		for _, name := range order {
			start := time.Now()
			ops[name]()
			total[name] += time.Since(start)
		}
	}
	for _, name := range order {
		b.ReportMetric(float64(total[name].Nanoseconds())/float64(n), name+"-ns/op")
		if strings.HasPrefix(name, "minio") {
			continue
		}
		for _, base := range order {
			if strings.HasPrefix(base, "minio") {
				b.ReportMetric(float64(total[base])/float64(total[name]), name+"/"+base+"-speed")
			}
		}
	}
}

// benchContent is n bytes of a text-like, compressible pattern.
func benchContent(n int) []byte {
	line := []byte("2026-01-02T03:04:05Z worker-7 step=compile file=pkg/store/upload.go status=ok\n")
	out := make([]byte, n)
	for i := 0; i < n; i += len(line) {
		copy(out[i:], line)
		if i+12 < n {
			copy(out[i+6:], strconv.Itoa(i%97)) // vary it a little
		}
	}
	return out
}

func BenchmarkDownload4KiB(b *testing.B) {
	rig := newBenchRig(b, Config{})
	ctx := context.Background()
	data := benchContent(4 << 10)
	md, err := rig.s.UploadBytes(ctx, "artifact://bench/dl/log", data, UploadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rig.raw.PutObject(ctx, rig.bucket, "raw/dl", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Run("store", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			got, _, err := rig.s.Download(ctx, "artifact://bench/dl/log")
			if err != nil || len(got) != len(data) {
				b.Fatal(err)
			}
		}
	})
	b.Run("store-openversion", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rc, err := rig.s.OpenVersion(ctx, md)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
	rawGet := func() {
		obj, err := rig.raw.GetObject(ctx, rig.bucket, "raw/dl", minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, obj); err != nil || n != int64(len(data)) {
			b.Fatal(err)
		}
		obj.Close()
	}
	b.Run("minio", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rawGet()
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		interleaved(b, map[string]func(){
			"store": func() {
				if _, _, err := rig.s.Download(ctx, "artifact://bench/dl/log"); err != nil {
					b.Fatal(err)
				}
			},
			"openversion": func() {
				rc, err := rig.s.OpenVersion(ctx, md)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
					b.Fatal(err)
				}
				rc.Close()
			},
			"minio": rawGet,
		}, []string{"store", "openversion", "minio"})
	})
}

func BenchmarkDownload64MiB(b *testing.B) {
	rig := newBenchRig(b, Config{})
	ctx := context.Background()
	data := benchContent(64 << 20)
	if _, err := rig.s.UploadBytes(ctx, "artifact://bench/dl/big", data, UploadOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := rig.raw.PutObject(ctx, rig.bucket, "raw/big", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Run("store", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rc, _, err := rig.s.Open(ctx, "artifact://bench/dl/big")
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
				b.Fatal(n, err)
			}
			rc.Close()
		}
	})
	rawGet := func() {
		obj, err := rig.raw.GetObject(ctx, rig.bucket, "raw/big", minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, obj); err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
		obj.Close()
	}
	b.Run("minio", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rawGet()
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		interleaved(b, map[string]func(){
			"store": func() {
				rc, _, err := rig.s.Open(ctx, "artifact://bench/dl/big")
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
					b.Fatal(n, err)
				}
				rc.Close()
			},
			"minio": rawGet,
		}, []string{"store", "minio"})
	})
}

func BenchmarkUpload4KiB(b *testing.B) {
	rig := newBenchRig(b, Config{})
	ctx := context.Background()
	data := benchContent(4 << 10)
	b.Run("store", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			i++
			uri := "artifact://bench/up-" + strconv.Itoa(i) + "-" + strconv.Itoa(b.N) + "/log"
			if _, err := rig.s.UploadBytes(ctx, uri, data, UploadOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minio", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			i++
			key := "raw/up-" + strconv.Itoa(i) + "-" + strconv.Itoa(b.N)
			if _, err := rig.raw.PutObject(ctx, rig.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		i := 0
		changed := bytes.Clone(data) // a new version's content: its last bytes change
		interleaved(b, map[string]func(){
			"store": func() {
				i++
				if _, err := rig.s.UploadBytes(ctx, "artifact://bench/il-"+strconv.Itoa(i)+"/log", data, UploadOptions{}); err != nil {
					b.Fatal(err)
				}
			},
			"newversion": func() {
				copy(changed[len(changed)-8:], fmt.Sprintf("%08d", i))
				if _, err := rig.s.UploadBytes(ctx, "artifact://bench/nv/log", changed, UploadOptions{}); err != nil {
					b.Fatal(err)
				}
			},
			"minio": func() {
				if _, err := rig.raw.PutObject(ctx, rig.bucket, "raw/il-"+strconv.Itoa(i), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					b.Fatal(err)
				}
			},
			"minio-samekey": func() {
				key := "blobs/bench/raw-" + strconv.Itoa(i) + "/log/01KDYAK348V9HSFVABJVE3E1TD"
				if _, err := rig.raw.PutObject(ctx, rig.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					b.Fatal(err)
				}
			},
		}, []string{"store", "newversion", "minio", "minio-samekey"})
	})
}

func BenchmarkUpload64MiB(b *testing.B) {
	data := benchContent(64 << 20)
	ctx := context.Background()
	rig := newBenchRig(b, Config{})
	gz := *rig
	var err error
	if gz.s, err = New(ctx, rig.s.b, rig.s.locker, Config{Compression: true}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    *Store
	}{{"store", rig.s}, {"store-gzip", gz.s}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			i := 0
			for b.Loop() {
				i++
				uri := "artifact://bench/" + tc.name + "-" + strconv.Itoa(i) + "-" + strconv.Itoa(b.N) + "/log"
				md, err := tc.s.UploadBytes(ctx, uri, data, UploadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(md.StoredSize)/float64(md.Size), "stored/size")
			}
		})
	}
	b.Run("minio", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			i++
			key := "raw/big-" + strconv.Itoa(i) + "-" + strconv.Itoa(b.N)
			if _, err := rig.raw.PutObject(ctx, rig.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		i := 0
		up := func(s *Store, name string) func() {
			return func() {
				uri := "artifact://bench/il-" + name + "-" + strconv.Itoa(i) + "/log"
				if _, err := s.UploadBytes(ctx, uri, data, UploadOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		interleaved(b, map[string]func(){
			"store":      func() { i++; up(rig.s, "plain")() },
			"store-gzip": up(gz.s, "gzip"),
			"minio": func() {
				if _, err := rig.raw.PutObject(ctx, rig.bucket, "raw/il-big-"+strconv.Itoa(i), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					b.Fatal(err)
				}
			},
			"minio-samekey": func() {
				key := "blobs/bench/raw-big-" + strconv.Itoa(i) + "/log/01KDYAK348V9HSFVABJVE3E1TD"
				if _, err := rig.raw.PutObject(ctx, rig.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					b.Fatal(err)
				}
			},
		}, []string{"store", "store-gzip", "minio", "minio-samekey"})
	})
}

// BenchmarkPeakRSS uploads 1 GiB from a stream (a reader that only reads,
// of known size) and downloads it again, and reports the peak resident set
// of the process (VmHWM, reset before each phase through
// /proc/self/clear_refs) as MiB. Run it alone, with -benchtime 1x.
func BenchmarkPeakRSS(b *testing.B) {
	const size = 1 << 30
	rig := newBenchRig(b, Config{})
	ctx := context.Background()
	uri := "artifact://bench/rss/log"
	b.Run("upload-1GiB", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			resetPeakRSS(b)
			if _, err := rig.s.Upload(ctx, uri, &patternReader{n: size, seed: 3}, size, UploadOptions{}); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(peakRSSMiB(b), "peak-RSS-MiB")
		}
	})
	b.Run("download-1GiB", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			resetPeakRSS(b)
			rc, _, err := rig.s.Open(ctx, uri)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
				b.Fatal(n, err)
			}
			rc.Close()
			b.ReportMetric(peakRSSMiB(b), "peak-RSS-MiB")
		}
	})
}

// resetPeakRSS resets VmHWM to the current RSS (Linux 4.0+).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}

// peakRSSMiB reads VmHWM from /proc/self/status.
func peakRSSMiB(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkUploadManyVersions measures a 4 KiB upload (a commit) to an
// artifact that already holds 1, 1,000 or 10,000 versions, with
// Config.MaxVersions keeping the count constant: every commit rewrites the
// whole manifest, so its cost grows with the number of versions. The
// versions are seeded by writing their manifest directly (their blobs do
// not exist; the pruned one's deletion is a no-op).
func BenchmarkUploadManyVersions(b *testing.B) {
	for _, n := range []int{1, 1000, MaxVersionsLimit} {
		b.Run(fmt.Sprintf("versions=%d", n), func(b *testing.B) {
			rig := newBenchRig(b, Config{Versioning: true, MaxVersions: n})
			ctx := context.Background()
			u := URI{Spec: "bench", Task: "many", Type: "log"}
			m := &manifest{manifestHeader: manifestHeader{
				Schema: schemaBlobs, URI: u.String(), Spec: u.Spec, Task: u.Task, Type: u.Type,
				Tags: []string{}, Created: time.Now().UTC(), Updated: time.Now().UTC(), NextVersion: n + 1, Commit: "seed",
			}}
			for i := 1; i <= n; i++ {
				m.Versions = append(m.Versions, version{
					Version: i, Blob: blobPrefix(u) + fmt.Sprintf("SEED%022d", i), SHA256: strings.Repeat("ab", 32),
					Size: 4096, StoredSize: 4096, ContentType: "text/plain", Created: time.Now().UTC(), Writer: "seed",
					Metadata: map[string]json.RawMessage{"step": json.RawMessage(`"compile"`), "worker": json.RawMessage(strconv.Quote(strconv.Itoa(i % 7)))},
				})
			}
			data, err := encodeManifest(m)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := rig.s.b.Put(ctx, manifestKey(u), bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
				b.Fatal(err)
			}
			content := benchContent(4 << 10)
			i := 0
			for b.Loop() {
				i++
				content[0] = byte(i) // a new version each time
				content[1] = byte(i >> 8)
				if _, err := rig.s.UploadBytes(ctx, u.String(), content, UploadOptions{Metadata: map[string]string{"step": "compile"}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "manifest-bytes")
		})
	}
}
