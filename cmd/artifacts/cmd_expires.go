package main

import (
	"context"
	"fmt"
	"time"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// ---- expires ----

func expiresCommand() *command {
	return &command{
		name:     "expires",
		synopsis: []string{"expires [flags] URI", "expires --within DURATION [flags]"},
		summary:  "when an artifact expires, or which versions expire within a window",
		help: `With a URI, prints when that version (or the current one) expires by its
type's retention period, or "never" (a type kept forever, or an artifact
tagged "retain"). With --within, lists every version that will be expired
that long from now (those expired already included): what cleanup would
delete then. --within 0 lists what cleanup deletes now. Filters restrict
the listing, as for cleanup; --retention, --default-retention and
--exempt-tag override the periods as for cleanup.`,
		vars: retentionVars(),
		run:  runExpires,
	}
}

type expiryJSON struct {
	URI       string     `json:"uri"`
	Size      int64      `json:"size"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"` // null: never
	Expired   bool       `json:"expired"`
}

func runExpires(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		ff     filterFlags
		rf     retentionFlags
		within string
		asJSON bool
	)
	ff.register(fs)
	rf.register(fs)
	fs.StringVar(&within, "within", "", "list the versions expired `DURATION` from now (0, 36h, 7d, 2w)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	adjust, err := rf.adjust(c.name)
	if err != nil {
		return err
	}
	now := a.now()
	toJSON := func(e store.Expiry) expiryJSON {
		j := expiryJSON{URI: e.Version.URI, Size: e.Version.Size, CreatedAt: e.Version.CreatedAt}
		if !e.ExpiresAt.IsZero() {
			at := e.ExpiresAt
			j.ExpiresAt, j.Expired = &at, now.After(at)
		}
		return j
	}
	when := func(e store.Expiry) string {
		switch {
		case e.ExpiresAt.IsZero():
			return "never expires"
		case now.After(e.ExpiresAt):
			return "expired " + e.ExpiresAt.UTC().Format(time.RFC3339) + " (" + ago(e.ExpiresAt, now) + ")"
		}
		return "expires " + e.ExpiresAt.UTC().Format(time.RFC3339) + " (" + ago(e.ExpiresAt, now) + ")"
	}
	if within == "" {
		if len(pos) != 1 {
			return usageErr(c.name, "want one URI, or --within DURATION")
		}
		if ff.spec != "" || ff.task != "" || ff.typ != "" || len(ff.tags) > 0 || ff.after != "" || ff.before != "" {
			return usageErr(c.name, "filters go with --within")
		}
		u, err := store.ParseURI(pos[0])
		if err != nil {
			return usageErr(c.name, err.Error())
		}
		return a.withStore(ctx, openOpts{adjust: adjust}, func(s *store.Store, _ *setup.Opened) error {
			e, err := s.ExpiresAt(ctx, u.String())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, toJSON(e))
			}
			_, err = fmt.Fprintf(a.stdout, "%s %s\n", e.Version.URI, when(e))
			return err
		})
	}
	if len(pos) > 0 {
		return usageErrf(c.name, "unexpected arguments %q with --within (filters are flags)", pos)
	}
	window, err := parseDuration(within)
	if within == "0" {
		window, err = 0, nil
	}
	if err != nil || window < 0 {
		return usageErrf(c.name, "--within: %q is not a duration (0, 36h, 7d, 2w)", within)
	}
	f, err := ff.filter(c.name, now)
	if err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{adjust: adjust}, func(s *store.Store, _ *setup.Opened) error {
		es, err := s.ExpiringWithin(ctx, window, f)
		if err != nil {
			return err
		}
		if asJSON {
			out := make([]expiryJSON, len(es))
			for i, e := range es {
				out[i] = toJSON(e)
			}
			return writeJSON(a.stdout, out)
		}
		for _, e := range es {
			fmt.Fprintf(a.stdout, "%s %s, %s\n", e.Version.URI, humanSize(e.Version.Size), when(e))
		}
		_, err = fmt.Fprintf(a.stdout, "%d versions expired within %s\n", len(es), formatPeriod(window))
		return err
	})
}
