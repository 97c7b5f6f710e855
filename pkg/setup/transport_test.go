package setup

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/store"
)

// TestFromEnvTransport: the S3 and Redis transport variables reach their
// configurations, and the lock's unavailability timeout follows the Redis
// dial timeout unless set.
func TestFromEnvTransport(t *testing.T) {
	env := map[string]string{
		EnvBackend:                         "s3",
		s3backend.EnvEndpoint:              "https://s3.example.com",
		s3backend.EnvBucket:                "artifacts",
		s3backend.EnvProfile:               "ci",
		s3backend.EnvSSE:                   "aws:kms",
		s3backend.EnvSSEKMSKeyID:           "alias/artifacts",
		s3backend.EnvStorageClass:          "STANDARD_IA",
		s3backend.EnvBucketLookup:          "dns",
		s3backend.EnvRequestTimeout:        "7s",
		redislock.EnvAddrs:                 "rediss://locks:pw@r1.example.com:6380/2,rediss://r2.example.com",
		redislock.EnvTLSServerName:         "redis.example.com",
		redislock.EnvDialTimeout:           "750ms",
		redislock.EnvPoolSize:              "4",
		redislock.EnvTLSInsecureSkipVerify: "false",
	}
	c, err := FromEnv(lookupOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.S3.Credentials != "" || c.S3.Profile != "ci" || c.S3.SSE != s3backend.SSEKMS || c.S3.SSEKMSKeyID != "alias/artifacts" ||
		c.S3.StorageClass != "STANDARD_IA" || c.S3.BucketLookup != s3backend.BucketLookupDNS || c.S3.RequestTimeout != 7*time.Second {
		t.Errorf("S3 %v", c.S3)
	}
	if len(c.Redis.Addrs) != 2 || c.Redis.TLSServerName != "redis.example.com" || c.Redis.DialTimeout != 750*time.Millisecond || c.Redis.PoolSize != 4 {
		t.Errorf("Redis %v", c.Redis)
	}
	if got := c.WithDefaults().LockConfig.UnavailableTimeout; got != 750*time.Millisecond {
		t.Errorf("UnavailableTimeout %v, want the Redis dial timeout 750ms", got)
	}
	env[EnvLockUnavailableTimeout] = "5s"
	if c, err = FromEnv(lookupOf(env)); err != nil || c.WithDefaults().LockConfig.UnavailableTimeout != 5*time.Second {
		t.Errorf("with %s=5s: UnavailableTimeout %v, %v", EnvLockUnavailableTimeout, c.WithDefaults().LockConfig.UnavailableTimeout, err)
	}
	for name, bad := range map[string]string{
		EnvLockUnavailableTimeout: "soon",
		s3backend.EnvSSE:          "SSE-C",
		redislock.EnvTLSCAFile:    "/nonexistent/ca.pem",
		redislock.EnvReadTimeout:  "3",
		s3backend.EnvBucketLookup: "virtual",
		s3backend.EnvCredentials:  "iam",
	} {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		e[name] = bad
		if _, err := FromEnv(lookupOf(e)); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("FromEnv with %s=%q: %v, want ErrInvalidArgument", name, bad, err)
		}
	}
	if d := (Config{Lock: LockFile}).WithDefaults().LockConfig.UnavailableTimeout; d != 0 {
		t.Errorf("file locks: UnavailableTimeout %v, want lock's own default (zero here)", d)
	}
}

// TestWriteFailsFastWithoutLockService: a store over Redis locks with
// nothing listening fails a write with ErrLockTimeout and
// lock.ErrUnavailable long before its lock timeout (an hour here, so the
// test's deadline would end it first), reads still work, and a refused
// password is a permission error at once.
func TestWriteFailsFastWithoutLockService(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	open := func(t *testing.T, rc redislock.Config) *Opened {
		c := Config{Backend: BackendMemory, Lock: LockRedis, Redis: rc, Store: store.Config{LockTimeout: time.Hour}}
		o, err := Open(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.Close() })
		return o
	}
	put := func(o *Opened) error {
		_, err := o.Store.UploadBytes(ctx, "artifact://spec/t1/log", []byte("x"), store.UploadOptions{})
		return err
	}

	t.Run("nothing listening", func(t *testing.T) {
		o := open(t, redislock.Config{Addrs: []string{testenv.Addr(testenv.FreePort(t))}, DialTimeout: 300 * time.Millisecond})
		err := put(o)
		if !errors.Is(err, store.ErrLockTimeout) || !errors.Is(err, lock.ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("Upload without a lock service: %v, want ErrLockTimeout and ErrUnavailable before the test's deadline", err)
		}
		if _, err := o.Store.Search(ctx, store.Filter{Spec: "spec"}); err != nil {
			t.Fatalf("a read without a lock service: %v", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := testenv.StartRedis(t, "--requirepass", "right")
		err := put(open(t, redislock.Config{Addrs: []string{srv.Addr()}, Password: "wrong"}))
		if !errors.Is(err, store.ErrPermissionDenied) || errors.Is(err, store.ErrLockTimeout) {
			t.Fatalf("Upload with a wrong Redis password: %v, want ErrPermissionDenied, not a timeout", err)
		}
	})
}
