package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/store"
)

func lookupOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" for success
		check   func(t *testing.T, c Config)
	}{
		{
			name: "embedded default",
			env:  map[string]string{EnvDir: "/data/artifacts"},
			check: func(t *testing.T, c Config) {
				d := c.WithDefaults()
				if d.Backend != BackendFile || d.Lock != LockFile || d.LockDir != filepath.Join("/data/artifacts", DefaultLockSubdir) {
					t.Errorf("defaults: backend %q lock %q lock dir %q", d.Backend, d.Lock, d.LockDir)
				}
				if d.Store.DisableLocking || d.LockConfig.Timeout != store.DefaultLockTimeout {
					t.Errorf("lock settings: %+v", d.LockConfig)
				}
			},
		},
		{
			name: "file backend with store settings and lock tuning",
			env: map[string]string{
				EnvBackend: "file", EnvDir: "/d", EnvFileNoSync: "true", EnvLockDir: "/locks",
				EnvLockExpiry: "2s", EnvLockRetryInterval: "20ms", EnvLockRefreshInterval: "500ms", EnvLockKeyPrefix: "t:",
				"ARTIFACTSTORE_VERSIONING": "true", "ARTIFACTSTORE_LOCK_TIMEOUT": "5s", "ARTIFACTSTORE_COMPRESSION": "1",
			},
			check: func(t *testing.T, c Config) {
				d := c.WithDefaults()
				if !c.FileNoSync || d.LockDir != "/locks" || !c.Store.Versioning || !c.Store.Compression {
					t.Errorf("config %+v", c)
				}
				want := lock.Config{Timeout: 5 * time.Second, Expiry: 2 * time.Second, RetryInterval: 20 * time.Millisecond,
					RefreshInterval: 500 * time.Millisecond, KeyPrefix: "t:"}
				if d.LockConfig != want {
					t.Errorf("lock config %+v, want %+v", d.LockConfig, want)
				}
			},
		},
		{
			name: "memory backend defaults to memory locks",
			env:  map[string]string{EnvBackend: "memory"},
			check: func(t *testing.T, c Config) {
				if d := c.WithDefaults(); d.Lock != LockMemory {
					t.Errorf("lock %q", d.Lock)
				}
			},
		},
		{
			name: "disable locking means no lock",
			env:  map[string]string{EnvBackend: "memory", "ARTIFACTSTORE_DISABLE_LOCKING": "true"},
			check: func(t *testing.T, c Config) {
				if d := c.WithDefaults(); d.Lock != LockNone || !d.Store.DisableLocking {
					t.Errorf("lock %q, disable %t", d.Lock, d.Store.DisableLocking)
				}
			},
		},
		{
			name: "lock none",
			env:  map[string]string{EnvDir: "/d", EnvLock: "none"},
			check: func(t *testing.T, c Config) {
				if d := c.WithDefaults(); !d.Store.DisableLocking || d.LockDir != "" {
					t.Errorf("config %+v", d)
				}
			},
		},
		{name: "file backend without a directory", env: map[string]string{}, wantErr: EnvDir},
		{name: "unknown backend", env: map[string]string{EnvBackend: "ftp"}, wantErr: `Backend "ftp"`},
		{name: "unknown lock", env: map[string]string{EnvDir: "/d", EnvLock: "zookeeper"}, wantErr: `Lock "zookeeper"`},
		{name: "file locks need a directory off the file backend", env: map[string]string{EnvBackend: "memory", EnvLock: "file"}, wantErr: EnvLockDir},
		{name: "malformed expiry", env: map[string]string{EnvDir: "/d", EnvLockExpiry: "soon"}, wantErr: EnvLockExpiry},
		{name: "malformed no-sync", env: map[string]string{EnvDir: "/d", EnvFileNoSync: "maybe"}, wantErr: EnvFileNoSync},
		{name: "malformed store variable", env: map[string]string{EnvDir: "/d", "ARTIFACTSTORE_VERSIONING": "perhaps"}, wantErr: "ARTIFACTSTORE_VERSIONING"},
		{name: "refresh not below expiry", env: map[string]string{EnvDir: "/d", EnvLockExpiry: "1s", EnvLockRefreshInterval: "1s"}, wantErr: "RefreshInterval"},
		{name: "locking disabled but a lock named", env: map[string]string{EnvDir: "/d", EnvLock: "file", "ARTIFACTSTORE_DISABLE_LOCKING": "true"}, wantErr: "contradicts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(lookupOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, store.ErrInvalidArgument) {
					t.Fatalf("FromEnv = %v, want an invalid-argument error naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// The S3 and Redis variables are read by their packages' loaders, through
// the same lookup as the rest.
func TestFromEnvS3AndRedis(t *testing.T) {
	env := map[string]string{
		s3backend.EnvEndpoint:     "127.0.0.1:9000",
		s3backend.EnvBucket:       "artifacts",
		s3backend.EnvAccessKey:    "artifactstore",
		s3backend.EnvSecretKey:    "artifactstore-secret",
		s3backend.EnvCreateBucket: "true",
		redislock.EnvAddrs:        "127.0.0.1:6379, 127.0.0.1:6380,127.0.0.1:6381",
		redislock.EnvPassword:     "redis-secret",
		EnvBackend:                "s3",
	}
	c, err := FromEnv(lookupOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.WithDefaults().Lock != LockRedis {
		t.Errorf("lock %q, want redis by default with S3", c.WithDefaults().Lock)
	}
	if c.S3.Endpoint != "127.0.0.1:9000" || c.S3.Bucket != "artifacts" || c.S3.SecretKey != "artifactstore-secret" || !c.S3.CreateBucket {
		t.Errorf("S3 %v", c.S3)
	}
	if len(c.Redis.Addrs) != 3 || c.Redis.Addrs[1] != "127.0.0.1:6380" || c.Redis.Password != "redis-secret" {
		t.Errorf("Redis %v", c.Redis)
	}

	env[s3backend.EnvBucket] = ""
	if _, err := FromEnv(lookupOf(env)); err == nil || !errors.Is(err, store.ErrInvalidArgument) || !strings.Contains(err.Error(), "Bucket") {
		t.Errorf("S3 without a bucket: %v", err)
	}
	env[s3backend.EnvBucket] = "artifacts"
	env[redislock.EnvAddrs] = "127.0.0.1"
	if _, err := FromEnv(lookupOf(env)); err == nil || !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("Redis address without a port: %v", err)
	}
	// With file locks the Redis variables are not read at all.
	env[EnvLock] = "file"
	env[EnvLockDir] = t.TempDir()
	if _, err := FromEnv(lookupOf(env)); err != nil {
		t.Errorf("S3 with file locks: %v", err)
	}
}

func TestSecretsRedacted(t *testing.T) {
	const (
		access  = "AKIAEXAMPLEACCESS"
		secret  = "s3-very-secret-key"
		session = "session-token-value"
		redisPW = "redis-password-value"
	)
	c := Config{
		Backend: BackendS3,
		S3:      s3backend.Config{Endpoint: "127.0.0.1:9000", Bucket: "artifacts", AccessKey: access, SecretKey: secret, SessionToken: session},
		Redis:   redislock.Config{Addrs: []string{"127.0.0.1:6379"}, Password: redisPW},
	}
	var logged bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logged, nil))
	logger.Info("config", "config", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", c)
	outputs := map[string]string{
		"String": c.String(),
		"%v":     fmt.Sprintf("%v", c),
		"%+v":    fmt.Sprintf("%+v", c),
		"%#v":    fmt.Sprintf("%#v", c),
		"%s":     fmt.Sprintf("%s", c),
		"%q":     fmt.Sprintf("%q", c),
		"&%v":    fmt.Sprintf("%v", &c),
		"slog":   logged.String(),
	}
	for name, out := range outputs {
		for _, s := range []string{access, secret, session, redisPW} {
			if strings.Contains(out, s) {
				t.Errorf("%s prints the credential %q: %s", name, s, out)
			}
		}
		if !strings.Contains(out, "127.0.0.1:9000") || !strings.Contains(out, "REDACTED") {
			t.Errorf("%s does not describe the config: %s", name, out)
		}
	}
	// An invalid config's error must not leak them either.
	bad := c
	bad.S3.Bucket = ""
	if err := bad.Validate(); err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), redisPW) {
		t.Errorf("Validate: %v", err)
	}
}

func TestOpenFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{FileDir: dir, FileNoSync: true, Store: store.Config{Versioning: true}}
	o, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.Config.Lock != LockFile || o.Config.LockDir != filepath.Join(dir, DefaultLockSubdir) || o.Locker == nil {
		t.Fatalf("opened %v with locker %T", o.Config, o.Locker)
	}
	const uri = "artifact://spec/task/log"
	for _, content := range []string{"one", "two"} {
		if _, err := o.Store.UploadBytes(ctx, uri, []byte(content), store.UploadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := o.Store.IsLocked(ctx, uri)
	if err != nil || st.Held {
		t.Fatalf("IsLocked = %+v, %v", st, err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := o.Backend.Stat(ctx, "manifests/spec/task/log.json"); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("backend after Close: %v", err)
	}

	// A second process (here: a second Open) sees the same artifacts.
	o2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	vs, err := o2.Store.Versions(ctx, uri)
	if err != nil || len(vs) != 2 || vs[1].Version != 2 {
		t.Fatalf("Versions = %+v, %v", vs, err)
	}
}

func TestOpenMemoryWrapped(t *testing.T) {
	ctx := context.Background()
	var wrappedB, wrappedL int
	o, err := Open(ctx, Config{
		Backend:     BackendMemory,
		WrapBackend: func(b backend.Backend) backend.Backend { wrappedB++; return b },
		WrapLocker:  func(l lock.Locker) lock.Locker { wrappedL++; return l },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if wrappedB != 1 || wrappedL != 1 || o.Config.Lock != LockMemory {
		t.Fatalf("wrapped backend %d, locker %d times; lock %q", wrappedB, wrappedL, o.Config.Lock)
	}
	md, err := o.Store.UploadBytes(ctx, "artifact://s/t/diff", []byte("x"), store.UploadOptions{})
	if err != nil || md.Version != 1 {
		t.Fatalf("upload = %+v, %v", md, err)
	}
}

func TestOpenWithoutLocks(t *testing.T) {
	o, err := Open(context.Background(), Config{Backend: BackendMemory, Lock: LockNone})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Locker != nil || !o.Store.Config().DisableLocking {
		t.Fatalf("locker %T, disable locking %t", o.Locker, o.Store.Config().DisableLocking)
	}
	if _, err := o.Store.IsLocked(context.Background(), "artifact://s/t/log"); !errors.Is(err, store.ErrUnsupported) {
		t.Fatalf("IsLocked without locks: %v", err)
	}
}

func TestOpenInvalid(t *testing.T) {
	_, err := Open(context.Background(), Config{})
	if !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("Open(Config{}) = %v, want ErrInvalidArgument", err)
	}
	// A file where the lock directory should be: Open writes nothing, so
	// it opens; Ping reports the lock directory, and writes fail.
	ctx := context.Background()
	o, err := Open(ctx, Config{Backend: BackendMemory, Lock: LockFile, LockDir: "/dev/null/locks"})
	if err != nil {
		t.Fatalf("Open with an impossible lock directory: %v", err)
	}
	defer o.Close()
	if _, err := o.Store.Ping(ctx); !errors.Is(err, store.ErrUnhealthy) || !errors.Is(err, lock.ErrUnavailable) {
		t.Errorf("Ping with an impossible lock directory: %v, want ErrUnhealthy and lock.ErrUnavailable", err)
	}
	if _, err := o.Store.UploadBytes(ctx, "artifact://s/t/log", []byte("x"), store.UploadOptions{}); err == nil {
		t.Error("upload with an impossible lock directory succeeded")
	}
}
