package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

// TestS3Redis is a smoke flow against a real S3 server and Redis: the
// S3 settings come from a config file and the Redis address from a flag,
// so it also proves that both reach the S3 and Redis configurations.
func TestS3Redis(t *testing.T) {
	t.Parallel()
	s3 := testenv.StartS3(t)
	redis := testenv.StartRedis(t)

	cfgFile := writeFile(t, "s3.env", []byte(strings.Join([]string{
		"ARTIFACTSTORE_BACKEND=s3",
		"ARTIFACTSTORE_S3_ENDPOINT=" + s3.Endpoint,
		"ARTIFACTSTORE_S3_BUCKET=" + s3.Bucket,
		"ARTIFACTSTORE_S3_ACCESS_KEY=" + s3.AccessKey,
		"ARTIFACTSTORE_S3_SECRET_KEY=" + s3.SecretKey,
		"ARTIFACTSTORE_S3_REGION=" + s3.Region,
		"ARTIFACTSTORE_S3_USE_SSL=" + strconv.FormatBool(s3.UseSSL),
		"ARTIFACTSTORE_S3_CREATE_BUCKET=true",
		"ARTIFACTSTORE_LOCK_TIMEOUT=5s",
	}, "\n")))
	c := &cli{t: t, env: map[string]string{}}
	g := []string{"--config", cfgFile, "--redis", redis.Addr()}
	args := func(a ...string) []string { return append(append([]string{}, g...), a...) }

	const uri = "artifact://s3spec/t1/log"
	data := content(11, 200_000)
	if r := c.ok(args("put", uri, writeFile(t, "big.log", data), "--tag", "smoke")...); strings.TrimSpace(r.stdout) != uri+"?version=1" {
		t.Fatalf("put printed %q", r.stdout)
	}
	if r := c.ok(args("get", uri)...); r.stdout != string(data) {
		t.Fatalf("get returned %d bytes, want the %d uploaded", len(r.stdout), len(data))
	}
	if r := c.ok(args("ls", "s3spec")...); !strings.Contains(r.stdout, uri) {
		t.Fatalf("ls:\n%s", r.stdout)
	}
	if r := c.ok(args("lock", "status", uri)...); strings.TrimSpace(r.stdout) != uri+" is not locked" {
		t.Fatalf("lock status: %q", r.stdout)
	}

	// Hold the artifact's lock in Redis as a worker would.
	l, err := redislock.Open(redislock.Config{Addrs: []string{redis.Addr()}}, lock.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lease, err := l.TryAcquire(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s:%d", host, os.Getpid())
	if r := c.ok(args("lock", "status", uri)...); !strings.Contains(r.stdout, "is locked by "+holder) {
		t.Fatalf("lock status of a held lock: %q", r.stdout)
	}
	c.fails(exitLocked, args("--lock-timeout", "300ms", "tag", "add", uri, "x")...)
	if r := c.ok(args("lock", "break", "--yes", uri)...); !strings.Contains(r.stdout, "broke the lock of "+uri+" held by "+holder) {
		t.Fatalf("lock break: %q", r.stdout)
	}
	if err := lease.Refresh(context.Background()); !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("the broken lease still refreshes: %v", err)
	}
	c.ok(args("tag", "add", uri, "x")...)
	if r := c.ok(args("verify")...); !strings.Contains(r.stdout, "checked 1 versions: 0 corrupt") {
		t.Fatalf("verify: %q", r.stdout)
	}
	c.fails(exitUsage, "--config", cfgFile, "--redis", redis.Addr(), "get", "artifact://../x/y")
}

// TestLockServiceFailsFast: with Redis locks and nothing listening, a put
// exits 10 (lock service unavailable) long before its lock timeout (an
// hour: the test's own deadline would end it first, exit 130); with a
// refused password it exits 7 (permission denied); reads still work.
func TestLockServiceFailsFast(t *testing.T) {
	t.Parallel()
	redis := testenv.StartRedis(t, "--requirepass", "right")
	for _, tc := range []struct {
		name, addrs, password string
		code                  int
	}{
		{"nothing listening", testenv.Addr(testenv.FreePort(t)), "", exitUnavailable},
		{"wrong password", redis.Addr(), "wrong", exitPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			c.env["ARTIFACTSTORE_LOCK"] = "redis"
			c.env["ARTIFACTSTORE_REDIS_ADDRS"] = tc.addrs
			c.env["ARTIFACTSTORE_REDIS_PASSWORD"] = tc.password
			c.env["ARTIFACTSTORE_REDIS_DIAL_TIMEOUT"] = "300ms"
			c.env["ARTIFACTSTORE_LOCK_TIMEOUT"] = "1h"
			r := c.fails(tc.code, "put", "artifact://spec/t1/log", writeFile(t, "a.log", []byte("x")))
			if strings.Contains(r.stderr, "wrong") {
				t.Errorf("the error shows the password: %q", r.stderr)
			}
			c.ok("ls")
		})
	}
}
