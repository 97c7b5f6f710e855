package main

import (
	"context"
	"fmt"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func lockCommand() *command {
	return group("lock", "show or break the write lock of an artifact",
		`Writers of an artifact hold its lock (file locks or Redis, per --lock) while
they commit. 'lock status' shows who holds it; 'lock break' frees it for
recovery: the broken holder's commit is then refused (a conflict), so it
cannot overwrite anything committed after it. Reads never take the lock.`,
		&command{
			name:     "lock status",
			synopsis: []string{"lock status [flags] URI"},
			summary:  "show whether the artifact's lock is held, by whom and until when",
			run:      runLockStatus,
		},
		&command{
			name:     "lock break",
			synopsis: []string{"lock break [flags] URI"},
			summary:  "forcibly release the artifact's lock (asks first) and print the holder it broke",
			help: `Asks for confirmation on the terminal unless --yes; without a terminal on
stdin it refuses (exit status 2) unless --yes is given.`,
			aliases: map[string]string{"y": "yes"},
			run:     runLockBreak,
		},
	)
}

// lockJSON is the --json form of a lock's status.
type lockJSON struct {
	URI    string       `json:"uri"`
	Held   bool         `json:"held"`
	Holder *lock.Holder `json:"holder,omitempty"`
	Fence  uint64       `json:"fence,omitempty"`
	Since  *time.Time   `json:"since,omitempty"`
	Until  *time.Time   `json:"until,omitempty"`
	// Broken is set by lock break: the lock was held and is now free.
	Broken bool `json:"broken,omitempty"`
}

func lockStatusJSON(uri string, st lock.Status) lockJSON {
	out := lockJSON{URI: uri, Held: st.Held}
	if st.Held {
		h, since, until := st.Holder, st.Since, st.Until
		out.Holder, out.Fence, out.Since, out.Until = &h, st.Fence, &since, &until
	}
	return out
}

// describeLock says who holds a lock: "host:pid (fence 7, since ..., until ... (in 25s))".
func describeLock(st lock.Status, now time.Time) string {
	return fmt.Sprintf("%s (fence %d, since %s, until %s (%s))", st.Holder, st.Fence,
		formatTime(st.Since), formatTime(st.Until), ago(st.Until, now))
}

// lockURI parses the URI argument of the lock subcommands (a version is
// accepted and ignored: the lock is the artifact's).
func lockURI(cmd string, pos []string) (string, error) {
	u, err := oneURI(cmd, pos, 0)
	if err != nil {
		return "", err
	}
	return u.Artifact().String(), nil
}

func runLockStatus(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	uri, err := lockURI(c.name, pos)
	if err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		st, err := s.IsLocked(ctx, uri)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(a.stdout, lockStatusJSON(uri, st))
		}
		if !st.Held {
			_, err = fmt.Fprintf(a.stdout, "%s is not locked\n", uri)
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s is locked by %s\n", uri, describeLock(st, a.now()))
		return err
	})
}

func runLockBreak(ctx context.Context, a *app, c *command, args []string) error {
	fs := a.newFlagSet(c.name)
	var yes, asJSON bool
	fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	fs.BoolVar(&yes, "y", false, "same as --yes")
	fs.BoolVar(&asJSON, "json", false, "print the broken lock's status as JSON")
	pos, err := a.parse(fs, c, args)
	if err != nil {
		return err
	}
	uri, err := lockURI(c.name, pos)
	if err != nil {
		return err
	}
	if err := a.canConfirm(c.name, yes); err != nil {
		return err
	}
	return a.withStore(ctx, openOpts{}, func(s *store.Store, _ *setup.Opened) error {
		if !yes {
			st, err := s.IsLocked(ctx, uri)
			if err != nil {
				return err
			}
			if !st.Held {
				return a.printBroken(uri, st, asJSON)
			}
			q := fmt.Sprintf("Break the lock of %s held by %s? Its holder's commit will fail.", uri, describeLock(st, a.now()))
			if err := a.confirm(c.name, q, yes); err != nil {
				return err
			}
		}
		st, err := s.ForceUnlock(ctx, uri)
		if err != nil {
			return err
		}
		return a.printBroken(uri, st, asJSON)
	})
}

// printBroken reports what lock break found (and broke).
func (a *app) printBroken(uri string, st lock.Status, asJSON bool) error {
	if asJSON {
		out := lockStatusJSON(uri, st)
		out.Broken = st.Held
		return writeJSON(a.stdout, out)
	}
	if !st.Held {
		_, err := fmt.Fprintf(a.stdout, "%s was not locked; nothing to break\n", uri)
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "broke the lock of %s held by %s (fence %d, since %s)\n", uri, st.Holder, st.Fence, formatTime(st.Since))
	return err
}
