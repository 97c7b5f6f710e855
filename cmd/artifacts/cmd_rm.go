package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func rmCommand() *command {
	return &command{
		name: "rm",
		synopsis: []string{
			"rm [flags] URI...",
			"rm [flags] --spec NAME [--task ID]",
			"rm [flags] --task ID",
		},
		summary: "delete artifacts by URI, or all of a task or spec",
		help: `Deletes each URI (the whole artifact with all its versions, or only the
version named by ?version=N), or every artifact of a task (--spec with
--task; --task alone: that task in every spec) or of a spec (--spec
alone). Metadata goes with the content.

It asks for confirmation on the terminal first. Without a terminal on stdin
it refuses (exit status 2) unless --yes is given.`,
		aliases: map[string]string{"y": "yes"},
		run:     runRm,
	}
}

func runRm(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		spec, task string
		yes        bool
	)
	fs.StringVar(&spec, "spec", "", "delete every artifact of spec `NAME`")
	fs.StringVar(&task, "task", "", "delete every artifact of task `ID` (of --spec, or of every spec)")
	fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	fs.BoolVar(&yes, "y", false, "same as --yes")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0 && (spec != "" || task != ""):
		return usageErr(c.name, "give URIs or --spec/--task, not both")
	case len(pos) == 0 && spec == "" && task == "":
		return usageErr(c.name, "missing URI (or --spec, --task, or both)")
	}
	if len(pos) > 0 {
		uris := make([]store.URI, len(pos))
		for i, p := range pos {
			if uris[i], err = store.ParseURI(p); err != nil {
				return usageErr(c.name, err.Error())
			}
		}
		if err := a.canConfirm(c.name, yes); err != nil {
			return err
		}
		return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
			return a.rmURIs(ctx, s, c.name, uris, yes)
		})
	}
	if spec != "" {
		if err := store.ValidateName("spec", spec); err != nil {
			return usageErr(c.name, err.Error())
		}
	}
	if task != "" {
		if err := store.ValidateName("task", task); err != nil {
			return usageErr(c.name, err.Error())
		}
	}
	if err := a.canConfirm(c.name, yes); err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		what := "spec " + spec
		switch {
		case spec == "":
			what = "task " + task + " in every spec"
		case task != "":
			what = "task " + spec + "/" + task
		}
		if !yes {
			var (
				mds []store.Metadata
				err error
			)
			switch {
			case spec == "":
				mds, err = s.Search(ctx, store.Filter{Task: task})
			case task != "":
				mds, err = s.ListTask(ctx, spec, task)
			default:
				mds, err = s.ListSpec(ctx, spec)
			}
			if err != nil {
				return err
			}
			if len(mds) == 0 {
				_, err := fmt.Fprintf(a.stdout, "deleted 0 artifacts of %s (there are none)\n", what)
				return err
			}
			q := fmt.Sprintf("Delete all %d artifacts of %s, with every version?", len(mds), what)
			if err := a.confirm(c.name, q, yes); err != nil {
				return err
			}
		}
		var n int
		if task != "" {
			n, err = s.DeleteByTask(ctx, spec, task)
		} else {
			n, err = s.DeleteBySpec(ctx, spec)
		}
		fmt.Fprintf(a.stdout, "deleted %d artifacts of %s\n", n, what)
		return err
	})
}

// rmURIs deletes each URI after one confirmation; a failure does not stop
// the others, and the errors are joined.
func (a *app) rmURIs(ctx context.Context, s *store.Store, cmd string, uris []store.URI, yes bool) error {
	names := make([]string, len(uris))
	for i, u := range uris {
		names[i] = u.String()
		if u.Version == 0 {
			names[i] += " (every version)"
		}
	}
	q := "Delete " + names[0] + "?"
	if len(uris) > 1 {
		q = fmt.Sprintf("Delete these %d artifacts?\n  %s\nProceed?", len(uris), strings.Join(names, "\n  "))
	}
	if err := a.confirm(cmd, q, yes); err != nil {
		return err
	}
	var errs []error
	for _, u := range uris {
		if err := s.Delete(ctx, u.String()); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		fmt.Fprintf(a.stdout, "deleted %s\n", u)
	}
	return errors.Join(errs...)
}
