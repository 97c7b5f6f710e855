package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one subcommand (or one sub-subcommand: "tag add").
type command struct {
	name     string            // as typed: "put", "tag add"
	synopsis []string          // usage lines, after the program name
	summary  string            // one line for the command list
	help     string            // the rest of the help text
	aliases  map[string]string // short flag name -> long flag name, for help
	alias    string            // another name of a subcommand ("tag remove")
	vars     []string          // ARTIFACTSTORE_* variables that matter to it most, for help
	subs     []*command        // tag and lock: their subcommands
	run      func(ctx context.Context, a *app, c *command, args []string) error
}

// exec runs c and prefixes its errors with its name (usage errors and
// exit errors carry their own wording; a group's errors come prefixed by
// its subcommand: "tag add: ...").
func (c *command) exec(ctx context.Context, a *app, args []string) error {
	err := c.run(ctx, a, c, args)
	var (
		ue *usageError
		ee *exitError
	)
	if err == nil || len(c.subs) > 0 || errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) || errors.As(err, &ee) {
		return err
	}
	return fmt.Errorf("%s: %w", c.name, err)
}

// commands lists the top-level commands in help order.
func commands() []*command {
	return []*command{
		putCommand(), getCommand(), lsCommand(), searchCommand(), statCommand(), versionsCommand(),
		tagCommand(), rmCommand(), exportCommand(), usageCommand(), verifyCommand(),
		cleanupCommand(), expiresCommand(), reconcileCommand(), compactCommand(), lockCommand(), doctorCommand(), completionCommand(),
	}
}

func findCommand(name string) (*command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return nil, false
}

// group returns a command that dispatches to subs by their last word.
func group(name, summary, help string, subs ...*command) *command {
	g := &command{name: name, summary: summary, help: help, subs: subs}
	for _, s := range subs {
		g.synopsis = append(g.synopsis, s.synopsis...)
	}
	g.run = func(ctx context.Context, a *app, c *command, args []string) error {
		fs := a.newFlagSet(name)
		// Global flags may come before the subcommand's name.
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.commandHelp(a.stdout, c, fs)
				return err
			}
			return usageErr(name, err.Error())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return usageErr(name, "missing subcommand")
		}
		for _, s := range subs {
			if s.name == name+" "+rest[0] || (s.alias != "" && s.alias == rest[0]) {
				return s.exec(ctx, a, rest[1:])
			}
		}
		return usageErrf(name, "unknown subcommand %q", rest[0])
	}
	return g
}

// topHelp prints the tool's help.
func (a *app) topHelp(w io.Writer) {
	fmt.Fprintf(w, `%[1]s: operate an artifact store (diffs, logs, test results in S3 or a local
directory, writers serialized by locks) from a shell.

Usage:
  %[1]s [global flags] COMMAND [flags] [arguments]
  %[1]s help COMMAND
  %[1]s --version

Commands:
`, progName)
	t := newTable(w)
	for _, c := range commands() {
		t.row("  "+c.name, c.summary)
	}
	_ = t.flush()
	fmt.Fprintf(w, `
Artifacts are named artifact://SPEC/TASK/TYPE, optionally ?version=N. TYPE is
diff, log, test or a custom name; SPEC, TASK and TYPE are 1-128 characters of
[A-Za-z0-9._-], not "." or "..".

Global flags (before or after COMMAND):
`)
	printFlags(w, a.newFlagSet(""), isGlobalFlag, nil)
	fmt.Fprintln(w)
	printEnvHelp(w)
	fmt.Fprintf(w, "\n%s\nExamples:\n%s", exitCodesHelp, topExamples)
}

const topExamples = `  export ARTIFACTSTORE_DIR=/var/lib/artifacts
  artifacts put artifact://build-42/t1/log run.log --tag nightly --meta host=ci3
  make test 2>&1 | artifacts put --spec build-42 --task t1 --type test -
  artifacts get artifact://build-42/t1/log -o run.log
  artifacts ls build-42 --json
  artifacts search --tag nightly --after 24h
  artifacts verify --spec build-42
  artifacts cleanup             # dry run; add --apply to delete
  artifacts lock status artifact://build-42/t1/log
`

// commandHelp prints the help of c, whose flags fs holds.
func (a *app) commandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s %s: %s\n\nUsage:\n", progName, c.name, c.summary)
	for _, s := range c.synopsis {
		fmt.Fprintf(w, "  %s %s\n", progName, s)
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.help, "\n"))
	}
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nSubcommands:\n")
		t := newTable(w)
		for _, s := range c.subs {
			t.row("  "+s.name, s.summary)
		}
		_ = t.flush()
		fmt.Fprintf(w, "Run '%s %s SUBCOMMAND --help' for its flags.\n", progName, c.name)
	}
	own := false
	fs.VisitAll(func(f *flag.Flag) { own = own || !isGlobalFlag(f.Name) })
	if own {
		fmt.Fprintf(w, "\nFlags:\n")
		printFlags(w, fs, func(n string) bool { return !isGlobalFlag(n) }, c.aliases)
	}
	if len(c.vars) > 0 {
		fmt.Fprintf(w, "\nVariables it reads (flags override them; see '%s --help' for all):\n", progName)
		printVariables(w, c.vars)
	}
	fmt.Fprintf(w, "\nGlobal flags (each sets the ARTIFACTSTORE_* variable it names):\n")
	printFlags(w, fs, isGlobalFlag, nil)
	fmt.Fprintf(w, `
Environment: the variables above and every other ARTIFACTSTORE_* setting of
package setup (listed by '%[1]s --help'); precedence: flags > environment >
config file (--config FILE or ARTIFACTSTORE_CONFIG, KEY=VALUE lines).

Exit status: 0 ok, 1 failure, 2 usage error or invalid URI, 3 not found,
4 integrity, 5 storage full, 6 lock timeout/held/conflict, 7 permission
denied, 8 unsupported by the lock, 130 interrupted.
`, progName)
}
