package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

func main() {
	// go-redis has one logger per process, stderr by default; the tool's
	// errors are one line each, so its lines are dropped, and shown with
	// --verbose (see app.config).
	redis.SetLogger(redislock.GoRedisLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// run is main without the process: it runs the command line args (without
// the program name) and returns the exit status. environ is the
// environment, "NAME=value" entries (os.Environ in main).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	a := newApp(stdin, stdout, stderr, environ)
	return a.main(ctx, args)
}

// app is one invocation of the tool: its streams, environment and global
// flags. Nothing of it outlives the invocation.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// environ is the environment, "NAME=value" entries; env looks one up.
	environ []string
	env     func(string) (string, bool)
	// now is the clock of relative times (--after 24h) and ages.
	now func() time.Time
	// isTerminal reports whether a stream is an interactive terminal
	// (stdin for confirmations, stderr for the progress bar, stdout to
	// refuse writing a ZIP to a terminal). A field so that tests can
	// pretend.
	isTerminal func(any) bool
	// collectFlags, when set, receives the flag set of the command run
	// and stops it before it parses (see flagsOf).
	collectFlags func(*flag.FlagSet)
	// command is the name of the command being run, for the message of an
	// interruption.
	command string

	g globals
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, environ []string) *app {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	return &app{
		stdin: stdin, stdout: stdout, stderr: stderr,
		environ:    environ,
		env:        func(name string) (string, bool) { v, ok := vars[name]; return v, ok },
		now:        time.Now,
		isTerminal: isTerminal,
		g:          globals{set: map[string]string{}},
	}
}

// main dispatches args to a command and turns its error into one line on
// stderr and an exit status.
func (a *app) main(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitCode(ctx, err)
	switch {
	case code == exitInterrupted && a.command != "":
		// The cause is the signal, not the "context canceled" the
		// cancelled call reports.
		fmt.Fprintf(a.stderr, "%s: %s: interrupted\n", progName, a.command)
	case code != exitOK:
		fmt.Fprintf(a.stderr, "%s: %s\n", progName, oneLine(err))
	}
	return code
}

// dispatch parses the global flags that come before the command, then runs
// the command.
func (a *app) dispatch(ctx context.Context, args []string) error {
	fs := a.newFlagSet("")
	// Only before the command: get and stat have a --version N flag.
	showVersion := fs.Bool("version", false, "print the version of the tool and exit")
	// The global flags end at the command name: Parse stops at the first
	// argument that is not a flag.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.topHelp(a.stdout)
			return err
		}
		return usageErr("", err.Error())
	}
	if *showVersion {
		info, _ := debug.ReadBuildInfo()
		_, err := fmt.Fprintln(a.stdout, versionLine(info))
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageErr("", "missing command")
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		return a.help(ctx, rest)
	}
	cmd, ok := findCommand(name)
	if !ok {
		return usageErr("", fmt.Sprintf("unknown command %q", name))
	}
	a.command = name
	return cmd.exec(ctx, a, rest)
}

// help is the help command: help [COMMAND [SUBCOMMAND]].
func (a *app) help(ctx context.Context, args []string) error {
	if len(args) == 0 {
		a.topHelp(a.stdout)
		return flag.ErrHelp
	}
	cmd, ok := findCommand(args[0])
	if !ok {
		return usageErr("help", fmt.Sprintf("unknown command %q", args[0]))
	}
	return cmd.exec(ctx, a, append(args[1:], "--help"))
}

// oneLine renders err on one line (errors.Join separates with newlines).
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
