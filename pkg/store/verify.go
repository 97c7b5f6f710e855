package store

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// VerifyChecksum reads the content of uri and checks it against its
// recorded SHA-256 and size, whatever Config.DisableVerify says: every
// version of the artifact, or only the one named by ?version=<n>. It
// returns nil when all match, otherwise an error matching ErrIntegrity (a
// missing blob matches ErrNotFound too) that joins one error per failing
// version.
func (s *Store) VerifyChecksum(ctx context.Context, uri string) (err error) {
	ctx, end := s.begin(ctx, "verify", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return err
	}
	m, _, err := s.readManifest(ctx, u)
	if err != nil {
		return err
	}
	versions := m.Versions
	if u.Version != 0 {
		v := m.find(u.Version)
		if v == nil {
			return errNotFound(u, nil)
		}
		versions = []version{*v}
	}
	var errs []error
	for i := range versions {
		if err := s.verifyVersion(ctx, m, &versions[i]); err != nil {
			if !errors.Is(err, ErrIntegrity) {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// verifyVersion reads version v of m to its end through the verifying
// reader. Corrupt content matches ErrIntegrity; a missing blob matches
// ErrIntegrity and ErrNotFound; other errors (I/O, context) are returned
// as they are.
func (s *Store) verifyVersion(ctx context.Context, m *manifest, v *version) error {
	u := m.artifactURI().WithVersion(v.Version)
	rc, err := s.openContent(ctx, v, true)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: %s: blob %q is missing: %w", ErrIntegrity, u, v.Blob, err)
		}
		return fmt.Errorf("%s: %w", u, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}
