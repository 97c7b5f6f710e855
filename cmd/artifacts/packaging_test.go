package main

import (
	"bufio"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../.."

// dockerfile is what TestDockerfile reads of the Dockerfile.
type dockerfile struct {
	copied  []string // sources of the COPY lines that read the build context
	built   []string // packages of the go build commands, "./cmd/artifacts"
	left    []string // commands named in a "# Not in the image: ./cmd/x" line
	outputs []string // their -o files
	from    []string // the images of the FROM lines
	user    string   // the last USER
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continued lines.
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	var d dockerfile
	build := regexp.MustCompile(`go build [^&]*-o (\S+) (\./\S+)`)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if rest, ok := strings.CutPrefix(sc.Text(), "# Not in the image: "); ok {
			d.left = append(d.left, strings.Fields(rest)[0])
		}
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "FROM":
			d.from = append(d.from, f[1])
		case "USER":
			d.user = f[1]
		case "COPY":
			if !strings.HasPrefix(f[1], "--from=") && !strings.HasPrefix(f[1], "--chown") {
				d.copied = append(d.copied, f[1:len(f)-1]...)
			}
		case "RUN":
			for _, m := range build.FindAllStringSubmatch(sc.Text(), -1) {
				d.outputs = append(d.outputs, m[1])
				d.built = append(d.built, m[2])
			}
		}
	}
	return d
}

// TestDockerfile checks, without a Docker engine, that the Dockerfile
// builds every command of the module (but those it names as left out) and
// only packages that exist, copies
// everything they import, uses the Go version of go.mod and runs as a
// non-root user; and that .dockerignore lets the copied paths through.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)

	var commands []string
	dirs, err := os.ReadDir(filepath.Join(repoRoot, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range dirs {
		if e.IsDir() {
			commands = append(commands, "./cmd/"+e.Name())
		}
	}
	for _, pkg := range d.built {
		p, err := build.ImportDir(filepath.Join(repoRoot, pkg), 0)
		if err != nil || p.Name != "main" {
			t.Errorf("the Dockerfile builds %s, which is not a command of the module (%v)", pkg, err)
		}
	}
	for _, c := range commands {
		if !slices.Contains(d.built, c) && !slices.Contains(d.left, c) {
			t.Errorf("the Dockerfile neither builds %s nor says it is left out", c)
		}
	}
	if len(d.built)+len(d.left) != len(commands) {
		t.Errorf("the Dockerfile builds %q and leaves out %q; the module's commands are %q", d.built, d.left, commands)
	}

	// Every package the commands import from the module is copied.
	args := []string{"list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}}{{end}}{{end}}"}
	for _, pkg := range d.built {
		args = append(args, filepath.Join(repoRoot, pkg))
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, path := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(path, "github.com/necrocode/artifactstore/")
		top, _, _ := strings.Cut(rel, "/")
		if !slices.Contains(d.copied, top) {
			t.Errorf("the commands import %s, but the Dockerfile does not copy %s", path, top)
		}
	}
	for _, src := range d.copied {
		if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
			t.Errorf("the Dockerfile copies %s: %v", src, err)
		}
	}

	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range d.copied {
		if !strings.Contains(string(ignore), "\n!"+strings.TrimSuffix(src, "/")) {
			t.Errorf(".dockerignore does not let %s into the build context", src)
		}
	}

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if len(d.from) < 2 || goVersion == nil || !strings.HasPrefix(d.from[0], "golang:"+goVersion[1]+"-") {
		t.Errorf("the build stage %q does not use Go %v of go.mod", d.from, goVersion)
	}
	if d.user == "" || d.user == "root" || strings.HasPrefix(d.user, "0") {
		t.Errorf("the image runs as %q, want a non-root user", d.user)
	}
}

// TestComposeUsesImage checks that docker-compose.yml builds the CLI and
// the demo from the Dockerfile, with an entrypoint the image has.
func TestComposeUsesImage(t *testing.T) {
	d := readDockerfile(t)
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	compose := string(data)
	for _, service := range []string{"artifacts", "demo"} {
		i := strings.Index(compose, "\n  "+service+":\n")
		if i < 0 {
			t.Errorf("docker-compose.yml has no %s service", service)
			continue
		}
		body := compose[i+1:]
		if j := regexp.MustCompile(`\n  \S`).FindStringIndex(body[1:]); j != nil {
			body = body[:j[0]+1]
		}
		if !strings.Contains(body, "dockerfile: Dockerfile") || !strings.Contains(body, "context: .") {
			t.Errorf("the %s service is not built from the Dockerfile:\n%s", service, body)
		}
		if m := regexp.MustCompile(`entrypoint: \["([^"]+)"`).FindStringSubmatch(body); m != nil {
			if !slices.Contains(d.outputs, strings.Replace(m[1], "/usr/local/bin/", "/out/bin/", 1)) {
				t.Errorf("the %s service runs %s, which the Dockerfile does not build", service, m[1])
			}
		}
	}
	for _, v := range regexp.MustCompile(`(?m)^\s+(ARTIFACTSTORE_\w+):`).FindAllStringSubmatch(compose, -1) {
		if err := checkRegistered(v[1]); err != nil {
			t.Errorf("docker-compose.yml: %v", err)
		}
	}
}

// checkRegistered reports a variable the tool would refuse.
func checkRegistered(name string) error {
	a := newApp(nil, nil, nil, []string{name + "=x"})
	_, err := a.lookup()
	return err
}

func TestLicense(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{"Apache License\n                           Version 2.0, January 2004", "END OF TERMS AND CONDITIONS", "Copyright 2026 The artifactstore authors"} {
		if !strings.Contains(text, want) {
			t.Errorf("LICENSE lacks %q", want)
		}
	}
}
