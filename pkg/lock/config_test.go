package lock_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

func TestConfigWithDefaults(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	tests := []struct {
		name string
		in   lock.Config
		want lock.Config
	}{
		{"zero", lock.Config{}, lock.Config{
			Timeout: 30 * time.Second, UnavailableTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond, MaxRetryInterval: 2 * time.Second,
			Expiry: 30 * time.Second, RefreshInterval: 10 * time.Second, KeyPrefix: "artifactstore:lock:",
		}},
		{"refreshFollowsExpiry", lock.Config{Expiry: 3 * time.Second}, lock.Config{
			Timeout: 30 * time.Second, UnavailableTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond, MaxRetryInterval: 2 * time.Second,
			Expiry: 3 * time.Second, RefreshInterval: time.Second, KeyPrefix: "artifactstore:lock:",
		}},
		{"maxFollowsLargeRetry", lock.Config{RetryInterval: 5 * time.Second}, lock.Config{
			Timeout: 30 * time.Second, UnavailableTimeout: 2 * time.Second, RetryInterval: 5 * time.Second, MaxRetryInterval: 5 * time.Second,
			Expiry: 30 * time.Second, RefreshInterval: 10 * time.Second, KeyPrefix: "artifactstore:lock:",
		}},
		{"setFieldsKept", lock.Config{
			Timeout: time.Second, UnavailableTimeout: time.Minute, RetryInterval: time.Millisecond, MaxRetryInterval: time.Minute,
			Expiry: time.Hour, RefreshInterval: time.Minute, DisableAutoRefresh: true, KeyPrefix: "p:", Logger: logger,
		}, lock.Config{
			Timeout: time.Second, UnavailableTimeout: time.Minute, RetryInterval: time.Millisecond, MaxRetryInterval: time.Minute,
			Expiry: time.Hour, RefreshInterval: time.Minute, DisableAutoRefresh: true, KeyPrefix: "p:", Logger: logger,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.WithDefaults()
			if got.Logger == nil {
				t.Fatal("WithDefaults left Logger nil")
			}
			if tc.want.Logger == nil {
				got.Logger = nil
			}
			if got != tc.want {
				t.Errorf("WithDefaults(%+v)\n got  %+v\n want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  lock.Config
		ok   bool
	}{
		{"zero", lock.Config{}, true},
		{"short", lock.Config{Expiry: time.Millisecond * 3, RefreshInterval: time.Millisecond}, true},
		{"negativeTimeout", lock.Config{Timeout: -1}, false},
		{"negativeUnavailableTimeout", lock.Config{UnavailableTimeout: -1}, false},
		{"negativeRetry", lock.Config{RetryInterval: -1}, false},
		{"maxBelowRetry", lock.Config{RetryInterval: time.Second, MaxRetryInterval: time.Millisecond}, false},
		{"negativeExpiry", lock.Config{Expiry: -time.Second}, false},
		{"expiryUnder1ms", lock.Config{Expiry: time.Microsecond}, false},
		{"refreshEqualsExpiry", lock.Config{Expiry: time.Second, RefreshInterval: time.Second}, false},
		{"refreshAboveExpiry", lock.Config{Expiry: time.Second, RefreshInterval: time.Minute}, false},
		{"negativeRefresh", lock.Config{RefreshInterval: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Errorf("Validate(%+v) = %v, want ok %v", tc.cfg, err, tc.ok)
			}
		})
	}
}
