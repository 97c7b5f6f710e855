package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

const filterHelp = `Filters combine (all must match): --spec, --task and --type match the URI,
--tag (repeatable) requires every tag given, --after and --before bound the
creation time of the current version (after <= created < before). Times are
RFC3339 (2026-01-02T15:04:05Z), a date (2026-01-02, UTC) or a duration ago
(24h, 90m, 7d, "2w ago").`

func lsCommand() *command {
	return &command{
		name:     "ls",
		synopsis: []string{"ls [flags] [SPEC[/TASK]]"},
		summary:  "list artifacts (current versions), optionally of one spec or task",
		help: `Lists the current version of every artifact, or of those of SPEC or
SPEC/TASK, as a table (URI, version, size, creation time, tags), or as a JSON
array of metadata with --json. Same filters as search.

` + filterHelp,
		run: func(ctx context.Context, a *app, c *command, args []string) error {
			return runList(ctx, a, c, args, true)
		},
	}
}

func searchCommand() *command {
	return &command{
		name:     "search",
		synopsis: []string{"search [flags]"},
		summary:  "find artifacts by spec, task, type, tags and creation time",
		help: `Prints the current version of every artifact that matches the filters, as
a table or, with --json, as a JSON array of metadata (the library's
store.Metadata fields: uri, task_id, spec_name, type, size, sha256,
created_at, tags, version, metadata, ...).

Results come in URI order. With --limit N, at most N are printed, and when
more match, a line on stderr gives the --after artifact://... that prints
the next ones (a page: searches by tag, type or time read the store's
catalog, so a page costs about the same at any store size).

` + filterHelp,
		run: func(ctx context.Context, a *app, c *command, args []string) error {
			return runList(ctx, a, c, args, false)
		},
	}
}

func runList(ctx context.Context, a *app, c *command, args []string, positional bool) error {
	fs := a.newFlagSet(c.name)
	var (
		ff                          filterFlags
		asJSON                      bool
		limit                       int
		updatedAfter, updatedBefore string
	)
	ff.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print a JSON array of metadata")
	fs.IntVar(&limit, "limit", 0, "print at most `N` artifacts, and the --after that prints the next ones (0: all)")
	fs.StringVar(&updatedAfter, "updated-after", "", "changed (upload, tags, prune) at or after `TIME` (same forms as --after)")
	fs.StringVar(&updatedBefore, "updated-before", "", "changed before `TIME` (same forms as --after)")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0 && !positional:
		return usageErrf(c.name, "unexpected arguments %q (filters are flags)", pos)
	case len(pos) > 1:
		return usageErrf(c.name, "too many arguments: %q", pos[1:])
	case len(pos) == 1:
		spec, task, _ := strings.Cut(strings.TrimPrefix(pos[0], store.Scheme+"://"), "/")
		task = strings.TrimSuffix(task, "/")
		if (ff.spec != "" && ff.spec != spec) || (ff.task != "" && task != "" && ff.task != task) {
			return usageErrf(c.name, "%q contradicts --spec/--task", pos[0])
		}
		ff.spec = spec
		if task != "" {
			ff.task = task
		}
	}
	// --after with an artifact URI is the cursor of a page: the results
	// start after that artifact.
	var page store.Page
	if strings.HasPrefix(ff.after, store.Scheme+"://") {
		page.After, ff.after = ff.after, ""
	}
	if limit < 0 {
		return usageErrf(c.name, "--limit %d is negative", limit)
	}
	page.Limit = limit
	f, err := ff.filter(c.name, a.now())
	if err != nil {
		return err
	}
	for _, u := range []struct {
		flag, v string
		to      *time.Time
	}{{"updated-after", updatedAfter, &f.UpdatedAfter}, {"updated-before", updatedBefore, &f.UpdatedBefore}} {
		if u.v == "" {
			continue
		}
		if *u.to, err = parseTime(u.v, a.now()); err != nil {
			return usageErrf(c.name, "--%s: %v", u.flag, err)
		}
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		mds, next, err := s.SearchPage(ctx, f, page)
		if err != nil {
			return err
		}
		if next != "" {
			defer fmt.Fprintf(a.stderr, "more artifacts match: add --after %s for the next %d\n", next, limit)
		}
		if asJSON {
			return writeJSON(a.stdout, mds)
		}
		if len(mds) == 0 {
			fmt.Fprintln(a.stderr, "no artifacts match")
			return nil
		}
		t := newTable(a.stdout, "URI", "VERSION", "SIZE", "CREATED", "TAGS")
		for _, md := range mds {
			t.row(artifactURI(md), strconv.Itoa(md.Version), humanSize(md.Size), formatTime(md.CreatedAt), joinOr(md.Tags, ","))
		}
		return t.flush()
	})
}

func statCommand() *command {
	return &command{
		name:     "stat",
		synopsis: []string{"stat [flags] URI"},
		summary:  "show the metadata of an artifact (or one version)",
		help: `Prints the metadata of the current version of URI, or of the version named
by ?version=N or --version N: sizes, SHA-256, MIME type, times, tags, user
metadata, blob key and the commit's writer. --json prints store.Metadata.`,
		run: runStat,
	}
}

func runStat(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		version int
		asJSON  bool
	)
	fs.IntVar(&version, "version", 0, "show version `N` (same as ?version=N)")
	fs.BoolVar(&asJSON, "json", false, "print the metadata as JSON")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	u, err := oneURI(c.name, pos, version)
	if err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		md, err := s.Stat(ctx, u.String())
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(a.stdout, md)
		}
		now := a.now()
		compressed := "no"
		if md.Compressed {
			compressed = "gzip"
		}
		writer := md.Writer
		if md.Fence != 0 {
			writer += fmt.Sprintf(" (fence %d)", md.Fence)
		}
		t := newTable(a.stdout)
		t.row("uri:", md.URI)
		t.row("spec:", md.SpecName)
		t.row("task:", md.TaskID)
		t.row("type:", md.Type)
		t.row("version:", strconv.Itoa(md.Version))
		t.row("size:", fmt.Sprintf("%s (%d bytes)", humanSize(md.Size), md.Size))
		t.row("stored size:", fmt.Sprintf("%s (%d bytes)", humanSize(md.StoredSize), md.StoredSize))
		t.row("compressed:", compressed)
		t.row("sha256:", md.SHA256)
		t.row("mime type:", md.MimeType)
		t.row("created:", formatTime(md.CreatedAt)+" ("+ago(md.CreatedAt, now)+")")
		t.row("updated:", formatTime(md.UpdatedAt)+" ("+ago(md.UpdatedAt, now)+")")
		t.row("tags:", joinOr(md.Tags, ", "))
		t.row("metadata:", formatMeta(md.UserMetadata))
		blob := md.BlobKey
		if blob == "" {
			blob = "(none: the content is stored in the manifest)"
		}
		t.row("blob:", blob)
		t.row("writer:", writer)
		return t.flush()
	})
}

func versionsCommand() *command {
	return &command{
		name:     "versions",
		synopsis: []string{"versions [flags] URI"},
		summary:  "list the stored versions of an artifact",
		help: `Lists every stored version of URI, oldest first: number, size, stored size,
creation time, SHA-256 prefix and writer. --json prints a JSON array of
store.Metadata.`,
		run: runVersions,
	}
}

func runVersions(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print a JSON array of metadata")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	u, err := oneURI(c.name, pos, 0)
	if err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		mds, err := s.Versions(ctx, u.Artifact().String())
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(a.stdout, mds)
		}
		t := newTable(a.stdout, "VERSION", "SIZE", "STORED", "CREATED", "SHA256", "WRITER")
		for _, md := range mds {
			t.row(strconv.Itoa(md.Version), humanSize(md.Size), humanSize(md.StoredSize), formatTime(md.CreatedAt),
				shortSum(md.SHA256), orDash(md.Writer))
		}
		return t.flush()
	})
}
