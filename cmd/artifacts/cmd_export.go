package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func exportCommand() *command {
	return &command{
		name:     "export",
		synopsis: []string{"export [flags] SPEC[/TASK]", "export [flags] [--spec NAME] [--task ID]"},
		summary:  "write the artifacts of a spec or task to a ZIP archive",
		help: `Writes the artifacts of a spec (or of one task of it; with --task alone, of
that task in every spec) to a ZIP archive: the
content of each artifact's current version (every version with
--all-versions) under SPEC/TASK/TYPE, and its metadata as JSON beside it.
Content is checked against its SHA-256 on the way (exit status 4 on a
mismatch; a file is then not created).

With -o FILE the archive is written atomically to FILE (or to DIR/SPEC.zip,
DIR/SPEC-TASK.zip, DIR/task-TASK.zip when FILE is a directory) and the path is printed;
otherwise it goes to stdout, which must not be a terminal. Progress goes to
stderr: a bar on a terminal, a plain line (at most once a second)
otherwise; --quiet turns it off.`,
		aliases: map[string]string{"o": "output", "q": "quiet"},
		run:     runExport,
	}
}

func runExport(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		spec, task, output string
		all, noCompress    bool
		quiet              bool
	)
	fs.StringVar(&spec, "spec", "", "export spec `NAME`")
	fs.StringVar(&task, "task", "", "only task `ID` (of the spec, or of every spec without one)")
	fs.StringVar(&output, "output", "", "write the ZIP to `FILE` (or into a directory); default stdout")
	fs.StringVar(&output, "o", "", "same as --output")
	fs.BoolVar(&all, "all-versions", false, "export every stored version, not only the current one")
	fs.BoolVar(&noCompress, "no-compression", false, "store entries without deflating them (faster for compressed content)")
	fs.BoolVar(&quiet, "quiet", false, "no progress on stderr")
	fs.BoolVar(&quiet, "q", false, "same as --quiet")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 1:
		return usageErrf(c.name, "too many arguments: %q", pos[1:])
	case len(pos) == 1:
		if spec != "" || task != "" {
			return usageErr(c.name, "give SPEC[/TASK] or --spec/--task, not both")
		}
		spec, task, _ = strings.Cut(strings.TrimPrefix(pos[0], store.Scheme+"://"), "/")
		task = strings.TrimSuffix(task, "/")
	}
	if spec == "" && task == "" {
		return usageErr(c.name, "missing SPEC (or --spec, or --task)")
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
	toStdout := output == "" || output == "-"
	if toStdout && a.isTerminal(a.stdout) {
		return usageErr(c.name, "refusing to write a ZIP archive to a terminal: use -o FILE or redirect stdout")
	}
	opts := store.ExportOptions{Spec: spec, Task: task, AllVersions: all, NoCompression: noCompress}
	var prog *progress
	if !quiet {
		prog = a.newProgress("export")
		opts.Progress = func(p store.ExportProgress) {
			prog.update(p.ArtifactsDone, p.ArtifactsTotal, p.BytesDone, p.BytesTotal, false)
		}
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		var (
			rep  store.ExportReport
			path string
			err  error
		)
		if toStdout {
			bw := bufio.NewWriterSize(a.stdout, 256<<10)
			rep, err = s.Export(ctx, bw, opts)
			if err == nil {
				err = bw.Flush()
			}
		} else {
			path, rep, err = s.ExportFile(ctx, output, opts)
		}
		if prog != nil && err == nil {
			prog.update(rep.Artifacts, rep.Artifacts, rep.Bytes, rep.Bytes, true)
		} else if prog != nil && prog.tty && prog.width > 0 {
			fmt.Fprintln(a.stderr) // end the bar's line before the error
		}
		if err != nil {
			return err
		}
		if !quiet {
			fmt.Fprintf(a.stderr, "exported %d artifacts (%d versions, %s) in %d ZIP entries\n",
				rep.Artifacts, rep.Versions, humanSize(rep.Bytes), rep.Entries)
		}
		if !toStdout {
			_, err = fmt.Fprintln(a.stdout, path)
		}
		return err
	})
}
