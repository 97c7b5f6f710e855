package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

// EnvRedisAddrs names external Redis masters (comma-separated host:port, for
// example the docker-compose ones). It is the variable
// redislock.ConfigFromEnv reads.
const EnvRedisAddrs = "ARTIFACTSTORE_REDIS_ADDRS"

// EnvRedisLog, when set to a true value, keeps go-redis's own log lines
// (on stderr) in tests that use Redis; by default they are dropped.
const EnvRedisLog = "ARTIFACTSTORE_TEST_REDIS_LOG"

var quietOnce sync.Once

// quietGoRedis silences go-redis's process-wide logger, once per test
// binary: its lines (failed dials to a killed master, dropped pub/sub
// connections) are expected in these tests and would bury their output.
// go-redis has no per-client logger, so this is the one place the tests
// set it; every helper that hands out Redis addresses calls it.
func quietGoRedis() {
	quietOnce.Do(func() {
		if keep, _ := strconv.ParseBool(os.Getenv(EnvRedisLog)); keep {
			return
		}
		redis.SetLogger(redislock.GoRedisLogger{})
	})
}

// RedisBinary is the server the helpers start (Debian package redis-server,
// installed by scripts/test.sh).
const RedisBinary = "redis-server"

// RedisServer is a redis-server started by a test on a loopback port, with
// no persistence (--save "" --appendonly no) and its own temporary
// directory. Kill and Restart let fault tests take it down and bring it back
// on the same port, empty, like a master that lost its memory.
type RedisServer struct {
	port    int
	dir     string
	rmDir   bool // dir is ours to remove (TB-less servers)
	extra   []string
	mu      sync.Mutex
	proc    *Process
	stopped bool
}

// StartRedis starts a redis-server for t on a free loopback port and stops
// it by PID when t ends. extraArgs are appended to the command line (for
// example "--requirepass", "secret"). It fails the test, never skips it,
// when redis-server is missing or does not answer PING.
func StartRedis(t testing.TB, extraArgs ...string) *RedisServer {
	t.Helper()
	s, err := startRedis(t.TempDir(), false, extraArgs)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartRedisProcess is StartRedis without a testing.TB, for TestMain and
// benchmarks' shared servers. The caller must call Stop, which also removes
// the server's temporary directory.
func StartRedisProcess(extraArgs ...string) (*RedisServer, error) {
	dir, err := os.MkdirTemp("", "artifactstore-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis-server: temp dir: %w", err)
	}
	s, err := startRedis(dir, true, extraArgs)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// StartRedisCluster starts n independent redis-server masters for t (not a
// Redis Cluster: n separate servers, as Redlock wants), each stopped by PID
// when t ends.
func StartRedisCluster(t testing.TB, n int) []*RedisServer {
	t.Helper()
	if n < 1 {
		t.Fatalf("testenv: StartRedisCluster(%d): need at least one server", n)
	}
	servers := make([]*RedisServer, n)
	for i := range servers {
		servers[i] = StartRedis(t)
	}
	return servers
}

// RedisAddrs returns the addresses of n running Redis masters for a test
// that only needs servers, never kills them, and keeps to its own keys: the
// first n of ARTIFACTSTORE_REDIS_ADDRS when it names at least n, otherwise n
// servers started for t. Fault tests call StartRedisCluster instead.
func RedisAddrs(t testing.TB, n int) []string {
	t.Helper()
	if ext := ExternalRedisAddrs(); len(ext) >= n {
		return ext[:n]
	}
	servers := StartRedisCluster(t, n)
	addrs := make([]string, n)
	for i, s := range servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// ExternalRedisAddrs returns the addresses in ARTIFACTSTORE_REDIS_ADDRS, nil
// when it is unset or empty.
func ExternalRedisAddrs() []string {
	quietGoRedis()
	var addrs []string
	for a := range strings.SplitSeq(os.Getenv(EnvRedisAddrs), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

func startRedis(dir string, rmDir bool, extra []string) (*RedisServer, error) {
	quietGoRedis()
	port, err := FindFreePort()
	if err != nil {
		return nil, err
	}
	s := &RedisServer{port: port, dir: dir, rmDir: rmDir, extra: extra}
	p, err := s.start()
	if err != nil {
		return nil, err
	}
	s.proc = p
	return s, nil
}

func (s *RedisServer) start() (*Process, error) {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	}
	args = append(args, s.extra...)
	name := "redis-server " + s.Addr()
	return StartProcess(name, RedisBinary, args, RedisReady(s.Addr()))
}

// Addr is the server's host:port on 127.0.0.1; it stays the same across
// Restart.
func (s *RedisServer) Addr() string { return Addr(s.port) }

// Port is the server's TCP port.
func (s *RedisServer) Port() int { return s.port }

// PID is the process id of the current redis-server process.
func (s *RedisServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.PID()
}

// Process is the current redis-server process (a new one after Restart).
func (s *RedisServer) Process() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Kill sends SIGKILL to the server by PID and waits for it to exit: its
// clients see connection errors at once and every key is gone.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	p.Kill()
}

// Restart starts a new, empty redis-server on the same port after Kill (or
// kills the running one first). Clients reconnect to it on their own.
func (s *RedisServer) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("redis-server " + s.Addr() + ": restart after Stop")
	}
	s.proc.Kill()
	var err error
	for range 50 { // the port may take a moment to be free again
		var p *Process
		if p, err = s.start(); err == nil {
			s.proc = p
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restart: %w", err)
}

// Stop kills the server by PID and waits for it to exit; a TB-less server
// also loses its temporary directory. Calling it again does nothing.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	s.proc.Stop()
	if s.rmDir {
		_ = os.RemoveAll(s.dir)
	}
}

// RedisReady returns a readiness check that succeeds once the server at addr
// answers PING with PONG (any other reply, such as a NOAUTH error from a
// server with a password, also proves it is serving).
func RedisReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "+PONG"), strings.HasPrefix(line, "-NOAUTH"):
			return nil
		case strings.HasPrefix(line, "-LOADING"):
			return errors.New("redis-server is loading")
		}
		return fmt.Errorf("unexpected PING reply %q", strings.TrimSpace(line))
	}
}
