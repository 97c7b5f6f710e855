package filebackend

import (
	"fmt"
	"io/fs"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Defaults of Config, applied by WithDefaults to zero fields.
const (
	DefaultDirPerm  fs.FileMode = 0o755
	DefaultFilePerm fs.FileMode = 0o644
)

// Config configures a Backend. The zero value of each field means its
// default; Root has none and is required.
type Config struct {
	// Root is the directory that holds the objects. Required, no default.
	// A relative path is made absolute when the Backend is created.
	Root string
	// CreateRoot creates Root and its missing parents (with DirPerm) when
	// it does not exist. Default false: a missing Root is an error.
	CreateRoot bool
	// DirPerm is the permission of the directories the backend creates,
	// before the umask. Default 0o755.
	DirPerm fs.FileMode
	// FilePerm is the permission of object and lock files, before the
	// umask. Default 0o644.
	FilePerm fs.FileMode
	// NoSync skips every fsync. Puts get faster, readers still never see
	// a partial object, and a crashed process still loses nothing it
	// reported as written; but a crash of the machine (power loss, kernel
	// panic) may lose recent Puts and Deletes. Default false (fsync the
	// file before the rename and the directory after it).
	NoSync bool
}

// WithDefaults returns c with every zero field but Root set to its default.
func (c Config) WithDefaults() Config {
	if c.DirPerm == 0 {
		c.DirPerm = DefaultDirPerm
	}
	if c.FilePerm == 0 {
		c.FilePerm = DefaultFilePerm
	}
	return c
}

// Validate reports the first invalid field of c after defaults are
// applied. The error matches backend.ErrInvalidArgument.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Root == "":
		return fmt.Errorf("%w: filebackend config: Root is empty", backend.ErrInvalidArgument)
	case c.DirPerm&^fs.ModePerm != 0:
		return fmt.Errorf("%w: filebackend config: DirPerm %v has bits other than permissions", backend.ErrInvalidArgument, c.DirPerm)
	case c.DirPerm&0o700 != 0o700:
		return fmt.Errorf("%w: filebackend config: DirPerm %v does not let the owner read, write and search", backend.ErrInvalidArgument, c.DirPerm)
	case c.FilePerm&^fs.ModePerm != 0:
		return fmt.Errorf("%w: filebackend config: FilePerm %v has bits other than permissions", backend.ErrInvalidArgument, c.FilePerm)
	case c.FilePerm&0o600 != 0o600:
		return fmt.Errorf("%w: filebackend config: FilePerm %v does not let the owner read and write", backend.ErrInvalidArgument, c.FilePerm)
	}
	return nil
}
