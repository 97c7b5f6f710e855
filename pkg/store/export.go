package store

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ExportOptions are the parameters of Export and ExportFile.
type ExportOptions struct {
	// Spec selects the artifacts of one spec. Required unless Task is set.
	Spec string
	// Task, when set, narrows the export to one task of the spec; without
	// Spec, it selects that task in every spec (a scan of all the
	// manifests' keys).
	Task string
	// AllVersions exports every stored version instead of only the
	// current one.
	AllVersions bool
	// NoCompression stores the entries as they are (zip.Store) instead of
	// deflating them; faster, for content that is already compressed.
	NoCompression bool
	// Progress, when set, is called from the exporting goroutine: once
	// with nothing done, after each artifact, every MiB or so within large
	// ones, and last with the totals. Done counts never decrease.
	Progress func(ExportProgress)
}

// ExportProgress is what Export reports to ExportOptions.Progress.
type ExportProgress struct {
	ArtifactsDone, ArtifactsTotal int
	// BytesDone and BytesTotal count content (original, uncompressed)
	// bytes. BytesTotal may change during the export when an artifact is
	// replaced while it runs.
	BytesDone, BytesTotal int64
}

// ExportReport is what Export wrote.
type ExportReport struct {
	// Artifacts and Versions count the artifacts and content entries.
	Artifacts int
	Versions  int
	// Bytes counts the content bytes (original, uncompressed).
	Bytes int64
	// Entries counts every entry of the ZIP, metadata included.
	Entries int
}

// exportProgressStep is how many bytes of one entry pass between two
// progress reports.
const exportProgressStep = 1 << 20

// exportBufferSize is the copy buffer of Export.
const exportBufferSize = 256 << 10

// exportItem is one artifact to export and the versions chosen.
type exportItem struct {
	uri      URI
	m        *manifest
	versions []version
}

// Export writes the artifacts of opts.Spec (or of one task of it) to w as
// a ZIP archive: the decompressed content of each artifact's current
// version under <spec>/<task>/<type> (with opts.AllVersions, each version
// under <spec>/<task>/<type>@v<n> instead), and after it the metadata of
// the exported versions as a JSON array of Metadata under
// <spec>/<task>/<type>@metadata.json. Names use only [A-Za-z0-9._-], "/"
// and "@" ('@' cannot occur in a spec, task or type, so no name collides
// with another); every name is checked to be a local, relative path.
//
// Content is streamed from the backend through the verifying reader (the
// SHA-256 and size are always checked) into the archive, with memory
// bounded whatever the sizes. Artifacts are read in URI order; one
// replaced or pruned during the export is taken in its new state. No
// artifact matching gives ErrNotFound with nothing written; an invalid
// manifest or a corrupt or missing blob fails the export with
// ErrIntegrity, and w then holds a truncated archive (ExportFile removes
// its file).
func (s *Store) Export(ctx context.Context, w io.Writer, opts ExportOptions) (rep ExportReport, err error) {
	ctx, end := s.begin(ctx, "export", exportName(opts))
	defer func() { end(err) }()
	if w == nil {
		return ExportReport{}, invalidf("export: nil writer")
	}
	return s.export(ctx, w, opts)
}

// exportName names the export for logs and file names.
func exportName(opts ExportOptions) string {
	switch {
	case opts.Task == "":
		return opts.Spec
	case opts.Spec == "":
		return "task " + opts.Task
	}
	return opts.Spec + "/" + opts.Task
}

// validate checks the spec (required without a task) and the task.
func (opts ExportOptions) validate() error {
	if opts.Spec != "" || opts.Task == "" {
		if err := ValidateName("spec", opts.Spec); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	if opts.Task != "" {
		if err := ValidateName("task", opts.Task); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	return nil
}

func (s *Store) export(ctx context.Context, w io.Writer, opts ExportOptions) (ExportReport, error) {
	if err := opts.validate(); err != nil {
		return ExportReport{}, err
	}
	items, err := s.exportPlan(ctx, opts)
	if err != nil {
		return ExportReport{}, err
	}
	if len(items) == 0 {
		where := exportName(opts)
		if opts.Task == "" {
			where = "spec " + where
		}
		return ExportReport{}, &notFoundError{msg: "no artifacts to export in " + where}
	}
	p := ExportProgress{ArtifactsTotal: len(items)}
	for _, it := range items {
		for _, v := range it.versions {
			p.BytesTotal += v.Size
		}
	}
	report := func() {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	report()

	method := zip.Deflate
	if opts.NoCompression {
		method = zip.Store
	}
	zw := zip.NewWriter(w)
	buf := make([]byte, exportBufferSize)
	var rep ExportReport
	for i := range items {
		it := &items[i]
		exported, err := s.exportArtifact(ctx, zw, it, opts.AllVersions, method, buf, &p, report)
		if err != nil {
			return rep, fmt.Errorf("export %s: %w", exportName(opts), err)
		}
		if len(exported) == 0 {
			// Deleted since the listing: not part of the export after all.
			p.ArtifactsTotal--
			report()
			continue
		}
		mds := make([]Metadata, len(exported))
		for i := range exported {
			mds[i] = metadataOf(it.m, &exported[i])
		}
		if err := writeMetadataEntry(zw, it, mds); err != nil {
			return rep, fmt.Errorf("export %s: %w", exportName(opts), err)
		}
		rep.Artifacts++
		rep.Versions += len(exported)
		rep.Entries += len(exported) + 1
		for _, v := range exported {
			rep.Bytes += v.Size
		}
		p.ArtifactsDone++
		report()
	}
	if err := zw.Close(); err != nil {
		return rep, fmt.Errorf("export %s: finish archive: %w", exportName(opts), err)
	}
	s.log.Info("store: export done", "spec", opts.Spec, "task", opts.Task, "all_versions", opts.AllVersions,
		"artifacts", rep.Artifacts, "versions", rep.Versions, "bytes", rep.Bytes)
	return rep, nil
}

// exportPlan reads the manifests of the export, in URI order.
func (s *Store) exportPlan(ctx context.Context, opts ExportOptions) ([]exportItem, error) {
	var (
		mu    sync.Mutex
		items []exportItem
	)
	err := s.forEachManifest(ctx, manifestPrefix(opts.Spec, opts.Task), taskFilter(opts.Spec, opts.Task), func(ctx context.Context, r record) error {
		if r.err != nil {
			return r.err
		}
		mu.Lock()
		items = append(items, exportItem{uri: r.uri, m: r.m, versions: exportVersions(r.m, opts.AllVersions)})
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", exportName(opts), err)
	}
	slices.SortFunc(items, func(a, b exportItem) int { return strings.Compare(a.uri.String(), b.uri.String()) })
	return items, nil
}

func exportVersions(m *manifest, all bool) []version {
	if all {
		return slices.Clone(m.Versions)
	}
	return []version{*m.current()}
}

// exportArtifact writes the content entries of one artifact and returns
// the versions written. When a blob vanished because the artifact changed
// since its manifest was read, the manifest is read once more and the
// artifact exported in its new state (it.m is updated).
func (s *Store) exportArtifact(ctx context.Context, zw *zip.Writer, it *exportItem, all bool, method uint16,
	buf []byte, p *ExportProgress, report func()) ([]version, error) {
	reread := false
	var done []version
	for i := 0; i < len(it.versions); i++ {
		v := it.versions[i]
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rc, err := s.openContent(ctx, &v, true)
		if errors.Is(err, ErrNotFound) && !reread {
			reread = true
			m, _, rerr := s.readManifest(ctx, it.uri)
			if rerr != nil && !(errors.Is(rerr, ErrNotFound) && !errors.Is(rerr, ErrIntegrity)) {
				return nil, rerr
			}
			if rerr == nil {
				if w := m.find(v.Version); w != nil && w.Blob == v.Blob {
					return nil, fmt.Errorf("%w: %s: blob %q is missing: %w", ErrIntegrity, it.uri.WithVersion(v.Version), v.Blob, err)
				}
			}
			// Re-plan the rest of this artifact from the new manifest.
			var rest []version
			if rerr == nil {
				for _, w := range exportVersions(m, all) {
					if !slices.ContainsFunc(done, func(d version) bool { return d.Version == w.Version }) {
						rest = append(rest, w)
					}
				}
				it.m = m
			}
			for _, w := range it.versions[i:] {
				p.BytesTotal -= w.Size
			}
			for _, w := range rest {
				p.BytesTotal += w.Size
			}
			it.versions = append(slices.Clone(done), rest...)
			i = len(done) - 1
			continue
		}
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("%w: %s: blob %q is missing: %w", ErrIntegrity, it.uri.WithVersion(v.Version), v.Blob, err)
			}
			return nil, err
		}
		err = s.exportEntry(ctx, zw, it, &v, all, method, rc, buf, p, report)
		rc.Close()
		if err != nil {
			return nil, err
		}
		done = append(done, v)
	}
	return done, nil
}

// exportEntry copies one version's content into a new entry.
func (s *Store) exportEntry(ctx context.Context, zw *zip.Writer, it *exportItem, v *version, all bool, method uint16,
	rc io.Reader, buf []byte, p *ExportProgress, report func()) error {
	name := contentEntryName(it.uri, v.Version, all)
	if err := checkEntryName(name); err != nil {
		return err
	}
	hdr := &zip.FileHeader{Name: name, Method: method, Modified: v.Created}
	hdr.SetMode(0o644)
	ew, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("zip entry %s: %w", name, err)
	}
	pw := &progressWriter{ctx: ctx, w: ew, p: p, report: report}
	if _, err := io.CopyBuffer(pw, rc, buf); err != nil {
		return fmt.Errorf("%s: %w", it.uri.WithVersion(v.Version), err)
	}
	return nil
}

// contentEntryName is the ZIP name of a version's content.
func contentEntryName(u URI, version int, all bool) string {
	name := u.Spec + "/" + u.Task + "/" + u.Type
	if all {
		name += "@v" + strconv.Itoa(version)
	}
	return name
}

// metadataEntryName is the ZIP name of an artifact's metadata.
func metadataEntryName(u URI) string {
	return u.Spec + "/" + u.Task + "/" + u.Type + "@metadata.json"
}

func writeMetadataEntry(zw *zip.Writer, it *exportItem, mds []Metadata) error {
	name := metadataEntryName(it.uri)
	if err := checkEntryName(name); err != nil {
		return err
	}
	data, err := json.MarshalIndent(mds, "", "  ")
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", it.uri, err)
	}
	hdr := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: it.m.Updated}
	hdr.SetMode(0o644)
	ew, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("zip entry %s: %w", name, err)
	}
	if _, err := ew.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("zip entry %s: %w", name, err)
	}
	return nil
}

// checkEntryName asserts that a ZIP entry name cannot escape the directory
// it is extracted to. Names come from validated URIs, so a failure is an
// internal error.
func checkEntryName(name string) error {
	ok := name != "" && !strings.ContainsAny(name, "\\:\x00") && !path.IsAbs(name) &&
		path.Clean(name) == name && filepath.IsLocal(filepath.FromSlash(name))
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("store: internal error: unsafe ZIP entry name %q", name)
	}
	return nil
}

// progressWriter counts the content bytes written to one entry and
// reports progress every exportProgressStep bytes.
type progressWriter struct {
	ctx     context.Context
	w       io.Writer
	p       *ExportProgress
	report  func()
	pending int64
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	if err := pw.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := pw.w.Write(b)
	pw.p.BytesDone += int64(n)
	pw.pending += int64(n)
	if pw.pending >= exportProgressStep {
		pw.pending = 0
		pw.report()
	}
	return n, err
}

// ExportFile writes the export of opts (see Export) to a ZIP file and
// returns its absolute path. When dest is an existing directory the file
// is <dest>/<spec>.zip, or <dest>/<spec>-<task>.zip with a task
// (<dest>/task-<task>.zip with a task alone); otherwise
// dest is the file's path. The file is written atomically: to a temporary
// file in the same directory, synced, then renamed over dest (replacing an
// existing file), and the directory synced; on failure nothing is left.
func (s *Store) ExportFile(ctx context.Context, dest string, opts ExportOptions) (p string, rep ExportReport, err error) {
	ctx, end := s.begin(ctx, "export-file", exportName(opts))
	defer func() { end(err) }()
	if dest == "" {
		return "", ExportReport{}, invalidf("export: empty destination path")
	}
	if err := opts.validate(); err != nil {
		return "", ExportReport{}, err
	}
	if st, serr := os.Stat(dest); serr == nil && st.IsDir() {
		name := opts.Spec
		switch {
		case opts.Spec == "":
			name = "task-" + opts.Task
		case opts.Task != "":
			name += "-" + opts.Task
		}
		dest = filepath.Join(dest, name+".zip")
	}
	if dest, err = filepath.Abs(dest); err != nil {
		return "", ExportReport{}, fmt.Errorf("export: %w", err)
	}
	dir := filepath.Dir(dest)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".*.tmp")
	if err != nil {
		return "", ExportReport{}, fmt.Errorf("export: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, exportBufferSize)
	rep, err = s.export(ctx, bw, opts)
	if err != nil {
		return "", rep, err
	}
	if err := bw.Flush(); err != nil {
		return "", rep, fmt.Errorf("export: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return "", rep, fmt.Errorf("export: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", rep, fmt.Errorf("export: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", rep, fmt.Errorf("export: %w", err)
	}
	committed = true
	if d, err := os.Open(dir); err == nil {
		if err := d.Sync(); err != nil {
			s.log.Warn("store: export: sync directory", "dir", dir, "err", err)
		}
		_ = d.Close()
	}
	return dest, rep, nil
}
