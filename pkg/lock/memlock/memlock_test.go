package memlock_test

import (
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/locktest"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
)

func TestConformance(t *testing.T) {
	locktest.Run(t, func(t *testing.T, cfg lock.Config) lock.Locker {
		l, err := memlock.New(cfg)
		if err != nil {
			t.Fatalf("memlock.New: %v", err)
		}
		return l
	})
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := memlock.New(lock.Config{Expiry: -time.Second}); err == nil {
		t.Fatal("New accepted a negative Expiry")
	}
}
