package setup_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// The quick start of the README: the embedded default (a local directory
// and file locks, no server), with versioning on.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "artifacts-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	opened, err := setup.Open(ctx, setup.Config{
		FileDir: dir, // Backend "file" and Lock "file" are the defaults
		Store:   store.Config{Versioning: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer opened.Close()
	s := opened.Store

	const uri = "artifact://spec-42/task-7/log"
	md, err := s.UploadBytes(ctx, uri, []byte("build ok\n"), store.UploadOptions{
		ContentType: "text/plain",
		Tags:        []string{"ci"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(md.URI, md.Size, md.Tags)

	if _, err := s.UploadBytes(ctx, uri, []byte("build ok, again\n"), store.UploadOptions{ContentType: "text/plain"}); err != nil {
		log.Fatal(err)
	}
	data, _, err := s.Download(ctx, uri+"?version=1")
	if err != nil {
		log.Fatal(err)
	}
	versions, err := s.Versions(ctx, uri)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q, %d versions\n", data, len(versions))
	// Output:
	// artifact://spec-42/task-7/log?version=1 9 [ci]
	// "build ok\n", 2 versions
}
