package main

import (
	"context"
	"fmt"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func compactCommand() *command {
	return &command{
		name:     "compact",
		synopsis: []string{"compact [flags]"},
		summary:  "fold the catalog's log into its segments (builds the catalog if it has none)",
		help: `The catalog (under _catalog/ in the bucket) answers search, usage and the
retention plan without reading every manifest. Writers keep it current and
compact it in the background; this command compacts it now: it reads the
manifests of the artifacts written since the last compaction, rewrites the
catalog segments that hold them and deletes the folded log entries. When the
bucket has no catalog yet, or a damaged one, it builds the catalog from every
manifest. Safe to run from several places at once and to interrupt.
"reconcile --apply" rebuilds the catalog too.`,
		run: runCompact,
	}
}

type compactJSON struct {
	Rebuilt         bool  `json:"rebuilt"`
	Generation      int64 `json:"generation"`
	Artifacts       int64 `json:"artifacts"`
	Segments        int   `json:"segments"`
	Folded          int   `json:"folded"`
	Pending         int   `json:"pending"`
	Dropped         int   `json:"dropped"`
	SegmentsWritten int   `json:"segments_written"`
	SegmentsDeleted int   `json:"segments_deleted"`
}

func runCompact(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrf(c.name, "unexpected arguments %q", pos)
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		rep, err := s.CompactCatalog(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(a.stdout, compactJSON(rep))
		}
		how := "compacted"
		if rep.Rebuilt {
			how = "rebuilt from the manifests"
		}
		fmt.Fprintf(a.stdout, "catalog %s: generation %d, %d artifacts in %d segments (%d written, %d deleted)\n",
			how, rep.Generation, rep.Artifacts, rep.Segments, rep.SegmentsWritten, rep.SegmentsDeleted)
		fmt.Fprintf(a.stdout, "log: %d entries folded, %d of writes not committed yet kept, %d of writes that never committed dropped\n",
			rep.Folded, rep.Pending, rep.Dropped)
		return nil
	})
}
