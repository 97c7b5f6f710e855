package integration

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
)

// The demo (cmd/demo), built and run as a user would, against S3 and three
// Redis masters: its worker processes share artifacts and its own checks
// find every invariant intact.
func TestDemoOnS3AndRedis(t *testing.T) {
	e := newEnv(t, 3)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "../cmd/demo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.CommandContext(ctx, bin, "-workers", "3", "-ops", "10", "-size", "4096", "-timeout", "2m")
	cmd.Env = e.environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"S3 " + e.s3.Endpoint + "/" + e.s3.Bucket,
		"Redis locks on 3 master(s)",
		"invariants      OK",
		"(60 acknowledged uploads)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{e.s3.SecretKey, e.s3.AccessKey} {
		// The bucket name and the demo's banner may contain the access
		// key by chance (the docker-compose one is "artifactstore").
		if testenv.ContainsCredential(out+stderr.String(), secret, e.s3.Bucket, "artifactstore demo") {
			t.Errorf("the demo printed a credential")
		}
	}
}
