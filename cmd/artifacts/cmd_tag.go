package main

import (
	"context"
	"fmt"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func tagCommand() *command {
	return group("tag", "add, remove or replace the tags of an artifact",
		`Tags belong to the artifact (all its versions). A tag is 1-128 characters of
[A-Za-z0-9._:=+@/-]. Each subcommand prints the artifact's tags afterwards
(or its metadata with --json).`,
		tagSub("add", "add tags to an artifact", "tag add [flags] URI TAG...", true,
			func(ctx context.Context, s *store.Store, uri string, tags []string) (store.Metadata, error) {
				return s.AddTags(ctx, uri, tags...)
			}),
		tagSub("rm", "remove tags from an artifact (also: tag remove)", "tag rm [flags] URI TAG...", true,
			func(ctx context.Context, s *store.Store, uri string, tags []string) (store.Metadata, error) {
				return s.RemoveTags(ctx, uri, tags...)
			}),
		tagSub("set", "replace all the tags of an artifact (none given: clear them)", "tag set [flags] URI [TAG...]", false,
			func(ctx context.Context, s *store.Store, uri string, tags []string) (store.Metadata, error) {
				return s.SetTags(ctx, uri, tags...)
			}),
	)
}

func tagSub(verb, summary, synopsis string, needTags bool,
	apply func(ctx context.Context, s *store.Store, uri string, tags []string) (store.Metadata, error)) *command {
	alias := ""
	if verb == "rm" {
		alias = "remove"
	}
	return &command{
		name:     "tag " + verb,
		alias:    alias,
		synopsis: []string{synopsis},
		summary:  summary,
		run: func(ctx context.Context, a *app, c *command, args []string) error {
			fs := a.newFlagSet(c.name)
			var asJSON bool
			fs.BoolVar(&asJSON, "json", false, "print the artifact's metadata as JSON")
			pos, err := a.parse(fs, c, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usageErr(c.name, "missing URI")
			}
			if needTags && len(pos) < 2 {
				return usageErr(c.name, "missing TAG")
			}
			u, err := store.ParseURI(pos[0])
			if err != nil {
				return usageErr(c.name, err.Error())
			}
			if u.Version != 0 {
				return usageErrf(c.name, "URI %q: tags belong to the artifact; give it without ?version", pos[0])
			}
			tags := pos[1:]
			for _, t := range tags {
				if err := store.ValidateTag(t); err != nil {
					return usageErr(c.name, err.Error())
				}
			}
			return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
				md, err := apply(ctx, s, u.String(), tags)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, md)
				}
				_, err = fmt.Fprintf(a.stdout, "%s tags: %s\n", artifactURI(md), joinOr(md.Tags, ", "))
				return err
			})
		},
	}
}
