package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
	"github.com/necrocode/artifactstore/pkg/store"
)

// newStore opens a store on the in-memory backend and lock.
func newStore(cfg store.Config) (*store.Store, error) {
	locker, err := memlock.New(lock.Config{})
	if err != nil {
		return nil, err
	}
	return store.New(context.Background(), membackend.New(), locker, cfg)
}

func Example() {
	ctx := context.Background()
	s, err := newStore(store.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	md, err := s.UploadBytes(ctx, "artifact://spec-1/task-7/log", []byte("build ok\n"), store.UploadOptions{
		ContentType: "text/plain",
		Tags:        []string{"ci"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(md.URI, md.Size, md.MimeType, md.Tags)

	data, md, err := s.Download(ctx, "artifact://spec-1/task-7/log")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q version %d sha256 %s...\n", data, md.Version, md.SHA256[:12])

	_, _, err = s.Download(ctx, "artifact://spec-1/task-7/diff")
	fmt.Println("missing:", errors.Is(err, store.ErrNotFound))
	_, err = s.UploadBytes(ctx, "artifact://spec-1/../etc", []byte("x"), store.UploadOptions{})
	fmt.Println("traversal:", errors.Is(err, store.ErrInvalidArgument))
	// Output:
	// artifact://spec-1/task-7/log?version=1 9 text/plain [ci]
	// "build ok\n" version 1 sha256 5c3d57cf803c...
	// missing: true
	// traversal: true
}

func ExampleStore_Versions() {
	ctx := context.Background()
	s, err := newStore(store.Config{Versioning: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	const uri = "artifact://spec-1/task-7/diff"
	for _, content := range []string{"first", "second", "third"} {
		if _, err := s.UploadBytes(ctx, uri, []byte(content), store.UploadOptions{}); err != nil {
			fmt.Println(err)
			return
		}
	}
	versions, err := s.Versions(ctx, uri)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range versions {
		fmt.Println(v.URI, v.Size)
	}
	old, _, err := s.Download(ctx, uri+"?version=1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("version 1: %s\n", old)

	pruned, err := s.PruneVersions(ctx, uri, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	current, md, err := s.Download(ctx, uri)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("pruned %d, current version %d: %s\n", pruned, md.Version, current)
	// Output:
	// artifact://spec-1/task-7/diff?version=1 5
	// artifact://spec-1/task-7/diff?version=2 6
	// artifact://spec-1/task-7/diff?version=3 5
	// version 1: first
	// pruned 2, current version 3: third
}

func ExampleStore_Search() {
	ctx := context.Background()
	s, err := newStore(store.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	uploads := []struct {
		uri  string
		tags []string
	}{
		{"artifact://spec-1/task-1/diff", []string{"reviewed"}},
		{"artifact://spec-1/task-1/test", []string{"flaky", "reviewed"}},
		{"artifact://spec-1/task-2/diff", nil},
		{"artifact://spec-2/task-1/diff", []string{"reviewed"}},
	}
	for _, u := range uploads {
		if _, err := s.UploadBytes(ctx, u.uri, []byte(u.uri), store.UploadOptions{Tags: u.tags}); err != nil {
			fmt.Println(err)
			return
		}
	}
	show := func(f store.Filter) {
		mds, err := s.Search(ctx, f)
		if err != nil {
			fmt.Println(err)
			return
		}
		var uris []string
		for _, md := range mds {
			uris = append(uris, md.URI)
		}
		fmt.Println(strings.Join(uris, " "))
	}
	show(store.Filter{Spec: "spec-1", Tags: []string{"reviewed"}})
	show(store.Filter{Type: "diff"})

	task, err := s.ListTask(ctx, "spec-1", "task-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(task), "artifacts in spec-1/task-1")
	n, err := s.DeleteBySpec(ctx, "spec-1")
	fmt.Println("deleted", n, err)
	// Output:
	// artifact://spec-1/task-1/diff?version=1 artifact://spec-1/task-1/test?version=1
	// artifact://spec-1/task-1/diff?version=1 artifact://spec-1/task-2/diff?version=1 artifact://spec-2/task-1/diff?version=1
	// 2 artifacts in spec-1/task-1
	// deleted 3 <nil>
}
