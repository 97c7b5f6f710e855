package membackend_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
)

func Example() {
	ctx := context.Background()
	b := membackend.New()
	defer b.Close()

	body := "hello, world"
	info, err := b.Put(ctx, "greetings/hello.txt", strings.NewReader(body), int64(len(body)), backend.PutOptions{ContentType: "text/plain"})
	if err != nil {
		fmt.Println("put:", err)
		return
	}
	fmt.Println("stored", info.Key, info.Size, "bytes of", info.ContentType)

	rc, _, err := b.Get(ctx, "greetings/hello.txt")
	if err != nil {
		fmt.Println("get:", err)
		return
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	fmt.Println(string(data))

	_, _, err = b.Get(ctx, "greetings/missing.txt")
	fmt.Println("missing:", errors.Is(err, backend.ErrNotFound))
	// Output:
	// stored greetings/hello.txt 12 bytes of text/plain
	// hello, world
	// missing: true
}

// Conditional Puts let one writer win: IfAbsent creates, IfMatch replaces
// only the version the writer read.
func Example_conditionalPut() {
	ctx := context.Background()
	b := membackend.New()
	defer b.Close()

	put := func(body string, opts backend.PutOptions) (backend.ObjectInfo, error) {
		return b.Put(ctx, "counter", strings.NewReader(body), int64(len(body)), opts)
	}
	v1, err := put("1", backend.PutOptions{IfAbsent: true})
	fmt.Println("create:", err)
	_, err = put("1", backend.PutOptions{IfAbsent: true})
	fmt.Println("create again:", errors.Is(err, backend.ErrPreconditionFailed))
	_, err = put("2", backend.PutOptions{IfMatch: v1.ETag})
	fmt.Println("update from v1:", err)
	_, err = put("2", backend.PutOptions{IfMatch: v1.ETag})
	fmt.Println("update from v1 again:", errors.Is(err, backend.ErrPreconditionFailed))
	// Output:
	// create: <nil>
	// create again: true
	// update from v1: <nil>
	// update from v1 again: true
}

func ExampleBackend_List() {
	ctx := context.Background()
	b := membackend.New()
	defer b.Close()
	for _, key := range []string{"logs/b", "logs/a", "diffs/x", "logs/a/1"} {
		if _, err := b.Put(ctx, key, strings.NewReader(key), int64(len(key)), backend.PutOptions{}); err != nil {
			fmt.Println(err)
			return
		}
	}
	for info, err := range b.List(ctx, "logs/") {
		if err != nil {
			fmt.Println("list:", err)
			return
		}
		fmt.Println(info.Key, info.Size)
	}
	// Output:
	// logs/a 6
	// logs/a/1 8
	// logs/b 6
}
