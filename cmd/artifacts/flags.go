package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/necrocode/artifactstore/pkg/store"
)

// newFlagSet returns a flag set for command name ("" for the top level)
// with the global flags registered. Its output and Usage are silenced:
// parse errors become one-line usage errors, and parse prints the
// command's help for --help.
func (a *app) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&a.g.config, "config", a.g.config, "read settings from `FILE` of KEY=VALUE lines (env "+envConfig+")")
	fs.BoolVar(&a.g.verbose, "verbose", a.g.verbose, "log the store's operations to stderr")
	fs.BoolVar(&a.g.verbose, "v", a.g.verbose, "same as --verbose")
	fs.StringVar(&a.g.metricsAddr, "metrics-addr", a.g.metricsAddr, "serve Prometheus metrics at http://`HOST:PORT`/metrics while the command runs (a loopback address)")
	for _, gf := range globalFlags() {
		fs.Var(&envFlag{g: &a.g, env: gf.env, bool: gf.bool}, gf.name, gf.usage+" (env "+gf.env+")")
	}
	return fs
}

// isGlobalFlag reports whether name is one of the flags newFlagSet adds.
func isGlobalFlag(name string) bool {
	switch name {
	case "config", "verbose", "v", "metrics-addr":
		return true
	}
	for _, gf := range globalFlags() {
		if gf.name == name {
			return true
		}
	}
	return false
}

// parse parses the args of command c with flags and positional arguments
// in any order (flag.FlagSet stops at the first positional one); "--" ends
// the flags. It returns the positional arguments. A parse error is a usage
// error of c; --help prints c's help and returns flag.ErrHelp.
func (a *app) parse(fs *flag.FlagSet, c *command, args []string) ([]string, error) {
	if a.collectFlags != nil { // completionTable wants the flags only
		a.collectFlags(fs)
		return nil, errFlagsCollected
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.commandHelp(a.stdout, c, fs)
				return nil, err
			}
			return nil, usageErr(c.name, err.Error())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printFlags prints the flags of fs that keep selects, one per entry, with
// the aliases given as short name -> long name.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(name string) bool, aliases map[string]string) {
	short := map[string]string{} // long -> short
	for s, l := range aliases {
		short[l] = s
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f.Name) || aliases[f.Name] != "" || f.Name == "v" {
			return
		}
		kind, usage := flag.UnquoteUsage(f)
		line := "  "
		if s := short[f.Name]; s != "" {
			line += "-" + s + ", "
		}
		if f.Name == "verbose" {
			line += "-v, "
		}
		line += "--" + f.Name
		if kind != "" {
			line += " " + kind
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "[]" {
			usage += " (default " + d + ")"
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, usage)
	})
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// kvFlag is a repeatable KEY=VALUE flag.
type kvFlag map[string]string

func (m kvFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func (m kvFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	if _, dup := m[k]; dup {
		return fmt.Errorf("key %q given twice", k)
	}
	m[k] = val
	return nil
}

// filterFlags are the search filters shared by ls, search, verify and
// cleanup.
type filterFlags struct {
	spec, task, typ string
	tags            listFlag
	after, before   string
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.spec, "spec", "", "only artifacts of spec `NAME`")
	fs.StringVar(&f.task, "task", "", "only artifacts of task `ID`")
	fs.StringVar(&f.typ, "type", "", "only artifacts of `TYPE` (diff, log, test or custom)")
	fs.Var(&f.tags, "tag", "only artifacts with `TAG` (repeatable: all of them)")
	fs.StringVar(&f.after, "after", "", "created at or after `TIME`: RFC3339, 2006-01-02, or a duration ago (24h, 7d)")
	fs.StringVar(&f.before, "before", "", "created before `TIME` (same forms as --after)")
}

// filter builds the store filter; a malformed time is a usage error.
func (f *filterFlags) filter(cmd string, now time.Time) (store.Filter, error) {
	out := store.Filter{Spec: f.spec, Task: f.task, Type: f.typ, Tags: f.tags}
	var err error
	if f.after != "" {
		if out.CreatedAfter, err = parseTime(f.after, now); err != nil {
			return store.Filter{}, usageErrf(cmd, "--after: %v", err)
		}
	}
	if f.before != "" {
		if out.CreatedBefore, err = parseTime(f.before, now); err != nil {
			return store.Filter{}, usageErrf(cmd, "--before: %v", err)
		}
	}
	for _, p := range []struct{ what, v string }{{"spec", f.spec}, {"task", f.task}, {"type", f.typ}} {
		if p.v != "" {
			if err := store.ValidateName(p.what, p.v); err != nil {
				return store.Filter{}, usageErrf(cmd, "--%s: %v", p.what, err)
			}
		}
	}
	for _, t := range f.tags {
		if err := store.ValidateTag(t); err != nil {
			return store.Filter{}, usageErrf(cmd, "--tag: %v", err)
		}
	}
	return out, nil
}

// parseTime accepts RFC3339 (with or without fractional seconds), a date
// and time without zone ("2006-01-02T15:04:05", UTC), a date (UTC
// midnight), or a duration before now ("24h", "7d", "90m ago").
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	d, err := parseDuration(strings.TrimSpace(strings.TrimSuffix(s, "ago")))
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither a time (RFC3339, 2006-01-02) nor a duration ago (24h, 7d)", s)
	}
	return now.Add(-d), nil
}

// parseDuration is time.ParseDuration plus a leading count of days or weeks:
// "7d", "2w", "1d12h".
func parseDuration(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 && i < len(s) && (s[i] == 'd' || s[i] == 'w') {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		unit := 24 * time.Hour
		if s[i] == 'w' {
			unit *= 7
		}
		if n > int64(math.MaxInt64/unit) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		d := time.Duration(n) * unit
		if rest := s[i+1:]; rest != "" {
			r, err := time.ParseDuration(rest)
			if err != nil || r < 0 {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			d += r
		}
		return d, nil
	}
	return time.ParseDuration(s)
}

// parseSize reads a byte count: a number with an optional unit, B,
// K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024) or KB, MB, GB, TB (powers of
// 1000); "1.5GiB" is allowed.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (examples: 500MiB, 10G, 1000000)", s)
	}
	mult := map[string]float64{
		"": 1, "B": 1,
		"K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s, unit)
	}
	n := v * mult
	if n >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(n), nil
}
