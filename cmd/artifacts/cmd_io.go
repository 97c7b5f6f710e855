package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func putCommand() *command {
	return &command{
		name:     "put",
		synopsis: []string{"put [flags] URI FILE|-", "put [flags] --spec NAME --task ID --type TYPE FILE|-"},
		summary:  "upload a file (or stdin with -) as an artifact",
		help: `Uploads FILE, or stdin when FILE is -, as the artifact URI (or the one named
by --spec, --task and --type), and prints the URI of the stored version. By
default it replaces the artifact's content; with versioning on
(--versioning, ARTIFACTSTORE_VERSIONING) it adds a version. Uploading the
current content again (same bytes and content type) changes nothing when
no --meta/--meta-json is given (the current metadata is kept) or the same
metadata is; new --tag values are still added. Other metadata makes a new
version. Creates the file backend's directory when missing.

On a terminal (stdout and stderr), an upload over 4 MiB draws a progress
bar on stderr; with --json, or when either is not a terminal, nothing but
the result is printed. Ctrl-C cancels the upload, also while it waits for
stdin (exit status 130); nothing is stored.`,
		vars: []string{
			store.EnvPrefix + "VERSIONING", store.EnvPrefix + "MAX_VERSIONS", store.EnvPrefix + "COMPRESSION",
			store.EnvPrefix + "COMPRESSION_MIN_SIZE", store.EnvPrefix + "LOCK_TIMEOUT", store.EnvPrefix + "QUOTA_MAX_BYTES",
		},
		run: runPut,
	}
}

func runPut(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		spec, task, typ, contentType string
		tags                         listFlag
		meta                         = kvFlag{}
		metaJSON                     = kvFlag{}
		asJSON                       bool
	)
	fs.StringVar(&spec, "spec", "", "spec `NAME` (instead of a URI)")
	fs.StringVar(&task, "task", "", "task `ID` (instead of a URI)")
	fs.StringVar(&typ, "type", "", "artifact `TYPE`: diff, log, test or custom (instead of a URI)")
	fs.Var(&tags, "tag", "add `TAG` to the artifact (repeatable)")
	fs.Var(meta, "meta", "user metadata `KEY=VALUE` of the version, VALUE a string (repeatable)")
	fs.Var(metaJSON, "meta-json", "user metadata `KEY=JSON` of the version, JSON any JSON value: 42, true, [1,2], {\"a\":1} (repeatable)")
	fs.StringVar(&contentType, "content-type", "", "MIME `TYPE` (default: from FILE's extension, else application/octet-stream)")
	fs.BoolVar(&asJSON, "json", false, "print the stored version's metadata as JSON")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	var uri, file string
	switch {
	case spec != "" || task != "" || typ != "":
		if spec == "" || task == "" || typ == "" {
			return usageErr(c.name, "--spec, --task and --type go together")
		}
		if len(pos) != 1 {
			return usageErr(c.name, "with --spec/--task/--type, want exactly one FILE argument (- for stdin)")
		}
		u, err := store.NewURI(spec, task, typ)
		if err != nil {
			return usageErr(c.name, err.Error())
		}
		uri, file = u.String(), pos[0]
	case len(pos) == 0:
		return usageErr(c.name, "missing URI and FILE")
	case len(pos) == 1:
		return usageErr(c.name, "missing FILE (use - for stdin)")
	case len(pos) > 2:
		return usageErrf(c.name, "too many arguments: %q", pos[2:])
	default:
		u, err := store.ParseURI(pos[0])
		if err != nil {
			return usageErr(c.name, err.Error())
		}
		if u.Version != 0 {
			return usageErrf(c.name, "URI %q: put takes the artifact's URI, without ?version", pos[0])
		}
		uri, file = u.String(), pos[1]
	}
	if contentType == "" && file != "-" {
		contentType = mime.TypeByExtension(filepath.Ext(file))
	}
	r, size, closeInput, err := a.openInput(ctx, c.name, file)
	if err != nil {
		return err
	}
	defer closeInput()
	values := make(map[string]any, len(meta)+len(metaJSON))
	for k, v := range meta {
		values[k] = v
	}
	for k, v := range metaJSON {
		if !json.Valid([]byte(v)) {
			return usageErrf(c.name, "--meta-json %s: %q is not a JSON value (a string needs quotes: '\"text\"')", k, v)
		}
		if _, dup := values[k]; dup {
			return usageErrf(c.name, "metadata key %q given with --meta and --meta-json", k)
		}
		values[k] = json.RawMessage(v)
	}
	return a.withStore(ctx, openOpts{create: true}, func(s *store.Store, _ *setup.Opened) error {
		body, done := a.trackTransfer(r, size, "put "+uri, !asJSON)
		md, err := s.Upload(ctx, uri, body, size, store.UploadOptions{ContentType: contentType, Tags: tags, UserMetadata: values})
		done(err == nil)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(a.stdout, md)
		}
		_, err = fmt.Fprintln(a.stdout, md.URI)
		return err
	})
}

// openInput opens FILE, or stdin for "-", with its size when it is a
// regular file (backend.SizeUnknown otherwise). Stdin that is not a
// regular file (a terminal, a pipe) is read through a contextReader, so
// that Ctrl-C (ctx cancelled) ends a put that waits for input.
func (a *app) openInput(ctx context.Context, cmd, file string) (io.Reader, int64, func(), error) {
	if file == "-" {
		if a.isTerminal(a.stdin) {
			fmt.Fprintln(a.stderr, "reading the content from the terminal; end it with Ctrl-D (Ctrl-C cancels)")
		}
		if f, ok := a.stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				if off, err := f.Seek(0, io.SeekCurrent); err == nil {
					return a.stdin, fi.Size() - off, func() {}, nil
				}
			}
		}
		return newContextReader(ctx, a.stdin), backend.SizeUnknown, func() {}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, nil, usageErrf(cmd, "%s is a directory", file)
	}
	size := backend.SizeUnknown
	if fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, func() { f.Close() }, nil
}

func getCommand() *command {
	return &command{
		name:     "get",
		synopsis: []string{"get [flags] URI"},
		summary:  "download an artifact (or one version) to stdout or a file",
		help: `Writes the content of URI (its current version, or the one named by
?version=N or --version N) to stdout, or to FILE with -o (with a progress
bar on a terminal for a transfer over 4 MiB). The content is
checked against its SHA-256 while it streams: on a mismatch the exit status
is 4 and FILE is not created (what went to stdout must be discarded).`,
		aliases: map[string]string{"o": "output"},
		run:     runGet,
	}
}

func runGet(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var (
		output  string
		version int
	)
	fs.StringVar(&output, "output", "", "write to `FILE` (atomically) instead of stdout; - is stdout")
	fs.StringVar(&output, "o", "", "same as --output")
	fs.IntVar(&version, "version", 0, "download version `N` (same as ?version=N)")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	u, err := oneURI(c.name, pos, version)
	if err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		rc, md, err := s.Open(ctx, u.String())
		if err != nil {
			return err
		}
		defer rc.Close()
		if output == "" || output == "-" {
			_, err = io.Copy(a.stdout, rc)
			return err
		}
		body, done := a.trackTransfer(rc, md.Size, "get "+md.URI, true)
		err = writeFileAtomic(output, body)
		done(err == nil)
		return err
	})
}

// oneURI parses the single URI argument of a command, applying --version.
func oneURI(cmd string, pos []string, version int) (store.URI, error) {
	switch {
	case len(pos) == 0:
		return store.URI{}, usageErr(cmd, "missing URI")
	case len(pos) > 1:
		return store.URI{}, usageErrf(cmd, "too many arguments: %q", pos[1:])
	case version < 0:
		return store.URI{}, usageErrf(cmd, "--version %d: want a positive number", version)
	}
	u, err := store.ParseURI(pos[0])
	if err != nil {
		return store.URI{}, usageErr(cmd, err.Error())
	}
	if version != 0 {
		if u.Version != 0 && u.Version != version {
			return store.URI{}, usageErrf(cmd, "--version %d contradicts the URI's ?version=%d", version, u.Version)
		}
		u.Version = version
	}
	return u, nil
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, renamed over path only when all of r was read.
func writeFileAtomic(path string, r io.Reader) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
