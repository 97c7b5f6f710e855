package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/necrocode/artifactstore/pkg/store"
)

// linInput is an operation on one artifact's version list: an upload of
// content id, or a read of the list.
type linInput struct {
	upload bool
	uri    string
	id     string // upload: the content's id (a SHA-256 prefix)
}

// linOutput is what the operation returned: the version an upload got, or
// the ids of the versions a read listed, oldest first, comma-separated.
type linOutput struct {
	version int
	list    string
}

// versionListModel returns the sequential specification of an artifact's version
// list with versioning on and no pruning: the state is the ids of its
// versions, comma-separated, oldest first; an upload of new content appends
// it and returns its position (its version number); a read returns the list.
func versionListModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byURI := map[string][]porcupine.Operation{}
			var order []string
			for _, op := range history {
				uri := op.Input.(linInput).uri
				if _, ok := byURI[uri]; !ok {
					order = append(order, uri)
				}
				byURI[uri] = append(byURI[uri], op)
			}
			out := make([][]porcupine.Operation, 0, len(order))
			for _, uri := range order {
				out = append(out, byURI[uri])
			}
			return out
		},
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(string), input.(linInput), output.(linOutput)
			if !in.upload {
				return out.list == st, st
			}
			n := 0
			if st != "" {
				n = strings.Count(st, ",") + 1
			}
			if out.version != n+1 {
				return false, st
			}
			if st == "" {
				return true, in.id
			}
			return true, st + "," + in.id
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(linInput), output.(linOutput)
			if in.upload {
				return fmt.Sprintf("upload(%s) -> v%d", in.id, out.version)
			}
			return fmt.Sprintf("versions() -> [%s]", out.list)
		},
		DescribeState: func(state any) string { return "[" + state.(string) + "]" },
	}
}

// A history of concurrent uploads and version listings by clients on
// several stores, checked for linearizability of each artifact's version
// list: every upload takes effect at one instant between its call and its
// return, in the order of the version numbers, and every listing shows the
// versions committed before it, no more.
func TestVersionListsLinearizable(t *testing.T) {
	e := newEnv(t, 3)
	e.inline = true // small contents in the manifests, older ones moving to blobs
	stores := []*store.Store{e.open(t, nil).Store, e.open(t, nil).Store, e.open(t, nil).Store}
	uris := []string{"artifact://lin/task/log", "artifact://lin/task/diff"}
	const clients, opsPerClient = 6, 16

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := time.Now()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		wg      sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			s := stores[c%len(stores)]
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for i := range opsPerClient {
				uri := uris[rng.IntN(len(uris))]
				var (
					in  linInput
					out linOutput
					err error
				)
				call := time.Since(base).Nanoseconds()
				if rng.IntN(2) == 0 {
					data := payload(fmt.Sprintf("client %d", c), i)
					in = linInput{upload: true, uri: uri, id: sha(data)[:12]}
					var md store.Metadata
					md, err = s.UploadBytes(ctx, uri, data, store.UploadOptions{})
					out.version = md.Version
				} else {
					in = linInput{uri: uri}
					var vs []store.Metadata
					vs, err = s.Versions(ctx, uri)
					if errors.Is(err, store.ErrNotFound) {
						err = nil // not created yet: the empty list
					}
					ids := make([]string, len(vs))
					for j, v := range vs {
						ids[j] = v.SHA256[:12]
					}
					out.list = strings.Join(ids, ",")
				}
				ret := time.Since(base).Nanoseconds()
				if err != nil {
					t.Errorf("client %d op %d: %v", c, i, err)
					return
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(history) != clients*opsPerClient {
		t.Fatalf("%d operations recorded, want %d", len(history), clients*opsPerClient)
	}

	res, info := porcupine.CheckOperationsVerbose(versionListModel(), history, 30*time.Second)
	if res != porcupine.Ok {
		path := fmt.Sprintf("%s/artifactstore-linearizability-%d.html", os.TempDir(), time.Now().UnixNano())
		if err := porcupine.VisualizePath(versionListModel(), info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("the history of %d operations is not linearizable (%v)", len(history), res)
	}

	// The checker is not vacuous: the same history with one listing that
	// misses a version whose upload returned before the listing was called
	// is refused.
	returned := map[string]int64{} // upload id -> return time
	for _, op := range history {
		if in := op.Input.(linInput); in.upload {
			returned[in.id] = op.Return
		}
	}
	bad := slices.Clone(history)
	tampered := false
	for i, op := range bad {
		out := op.Output.(linOutput)
		if op.Input.(linInput).upload || out.list == "" {
			continue
		}
		ids := strings.Split(out.list, ",")
		if last := ids[len(ids)-1]; returned[last] < op.Call {
			bad[i].Output = linOutput{list: strings.Join(ids[:len(ids)-1], ",")}
			tampered = true
			break
		}
	}
	if !tampered {
		t.Fatal("no listing follows a completed upload: the history is too small to mean anything")
	}
	if res := porcupine.CheckOperationsTimeout(versionListModel(), bad, 30*time.Second); res != porcupine.Illegal {
		t.Fatalf("a history with a stale listing was judged %v, want Illegal", res)
	}
}
