package main

import (
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// TestBashCompletion sources the generated script in bash and asks it to
// complete command lines, as bash does on TAB.
func TestBashCompletion(t *testing.T) {
	c := newCLI(t)
	script := writeFile(t, "artifacts.bash", []byte(c.ok("completion", "bash").stdout))
	tests := []struct {
		line string // the words; the last one is being completed
		want string // COMPREPLY, space-separated
	}{
		{"artifacts p", "put"},
		{"artifacts --dir /data p", "put"},
		{"artifacts --verbose ver", "versions verify"},
		{"artifacts put --ta", "--tag --task"},
		{"artifacts put --spec ", ""}, // a flag's value: file names
		{"artifacts put artifact://s/t/log ", ""},
		{"artifacts tag ", "add rm set"}, // then the global flags
		{"artifacts tag a", "add"},
		{"artifacts tag --di", "--dir"},
		{"artifacts tag add --j", "--json"},
		{"artifacts lock b", "break"},
		{"artifacts cleanup --ap", "--apply"},
		{"artifacts get -o", "-o"},
		{"artifacts completion ", "bash zsh fish"},
		{"artifacts help cl", "cleanup"},
		{"artifacts --vers", "--version --versioning"},
	}
	for _, tt := range tests {
		words := strings.Split(tt.line, " ")
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_artifacts\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command("bash", "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		got := strings.TrimSpace(string(out))
		if strings.HasSuffix(tt.line, "tag ") {
			f := strings.Fields(got)
			got = strings.Join(f[:min(3, len(f))], " ")
		}
		if got != tt.want {
			t.Errorf("completing %q: %q, want %q", tt.line, got, tt.want)
		}
	}
}

// TestCompletionScripts checks that the zsh and fish scripts name every
// command and every flag of a command, and that a bad shell is a usage
// error.
func TestCompletionScripts(t *testing.T) {
	c := newCLI(t)
	zsh := c.ok("completion", "zsh").stdout
	if !strings.HasPrefix(zsh, "#compdef artifacts\n") || !strings.Contains(zsh, "bashcompinit") || !strings.Contains(zsh, "complete -o bashdefault -o default -F _artifacts artifacts") {
		t.Errorf("zsh script lacks its header or the completion function:\n%s", zsh)
	}
	if out, err := exec.Command("bash", "-n", writeFile(t, "zsh.sh", []byte(strings.SplitN(zsh, "bashcompinit\n", 2)[1]))).CombinedOutput(); err != nil {
		t.Errorf("the zsh script's function is not valid shell: %v\n%s", err, out)
	}
	fish := c.ok("completion", "fish").stdout
	for _, cmd := range commands() {
		if !strings.Contains(fish, "complete -c artifacts -n '__fish_use_subcommand' -f -a "+cmd.name+" -d ") {
			t.Errorf("fish script does not complete the command %s", cmd.name)
		}
		if !strings.Contains(zsh, "\""+cmd.name+"\") words=") {
			t.Errorf("zsh script does not complete the command %s", cmd.name)
		}
	}
	for _, want := range []string{
		"complete -c artifacts -n '__fish_seen_subcommand_from put' -l tag -r -d 'add TAG to the artifact (repeatable)'",
		"complete -c artifacts -n '__fish_seen_subcommand_from cleanup' -l apply -d ",
		"complete -c artifacts -n '__fish_seen_subcommand_from tag; and __fish_seen_subcommand_from add' -l json -d ",
		"complete -c artifacts -n '__fish_seen_subcommand_from get' -s o -r -d ",
		"complete -c artifacts -l dir -r -d ",
	} {
		if !strings.Contains(fish, want) {
			t.Errorf("fish script lacks %q", want)
		}
	}
	r := c.fails(exitUsage, "completion", "powershell")
	if !strings.Contains(r.stderr, `unknown shell "powershell"`) {
		t.Errorf("stderr %q", r.stderr)
	}
	c.fails(exitUsage, "completion")
}

func TestVersion(t *testing.T) {
	c := newCLI(t)
	out := c.ok("--version").stdout
	if !strings.HasPrefix(out, "artifacts ") || !strings.Contains(out, " go1.") || strings.Count(out, "\n") != 1 {
		t.Errorf("--version printed %q", out)
	}
	info := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/necrocode/artifactstore", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1e2e075b1c3d5f7a9b0c2d4e6f8a0b1c2d3e4f5a"},
			{Key: "vcs.time", Value: "2026-12-01T18:03:11Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := versionLine(info)
	if want := "artifacts v1.4.0 (rev 1e2e075b1c3d+dirty, 2026-12-01T18:03:11Z) go1.26.8 "; !strings.HasPrefix(got, want) {
		t.Errorf("versionLine = %q, want prefix %q", got, want)
	}
	if got := versionLine(nil); !strings.HasPrefix(got, "artifacts unknown go") {
		t.Errorf("versionLine(nil) = %q", got)
	}
	// get's --version N is still get's.
	c.fails(exitNotFound, "get", "--version", "2", "artifact://s/t/log")
}
