package s3backend

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

func validConfig() Config {
	return Config{Endpoint: "127.0.0.1:9000", Bucket: "artifacts"}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // "" when valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"everything", func(c *Config) {
			c.Endpoint = "https://s3.example.com"
			c.UseSSL = true
			c.Prefix = "tenant/a"
			c.Region = "eu-west-1"
			c.AccessKey, c.SecretKey, c.SessionToken = "AK", "SK", "TOKEN"
			c.InsecureSkipVerify = true
			c.CreateBucket = true
			c.PartSize = 64 << 20
			c.MaxAttempts = 3
			c.Credentials = CredentialsStatic
			c.SSE, c.SSEKMSKeyID = SSEKMS, "alias/artifacts"
			c.StorageClass = "STANDARD_IA"
			c.BucketLookup = BucketLookupDNS
			c.ConnectTimeout, c.RequestTimeout = time.Second, time.Minute
		}, ""},
		{"chain with profile", func(c *Config) { c.Profile, c.CredentialsFile = "ci", "/etc/aws/credentials" }, ""},
		{"explicit chain", func(c *Config) { c.Credentials = CredentialsChain }, ""},
		{"anonymous", func(c *Config) { c.Credentials = CredentialsAnonymous }, ""},
		{"sse-s3", func(c *Config) { c.SSE = SSES3 }, ""},
		{"sse-kms default key", func(c *Config) { c.SSE = SSEKMS }, ""},
		{"path lookup", func(c *Config) { c.BucketLookup = BucketLookupPath }, ""},
		{"unknown credentials", func(c *Config) { c.Credentials = "iam" }, "Credentials"},
		{"keys with chain", func(c *Config) { c.Credentials, c.AccessKey, c.SecretKey = CredentialsChain, "AK", "SK" }, "only used with"},
		{"profile with static keys", func(c *Config) { c.AccessKey, c.SecretKey, c.Profile = "AK", "SK", "ci" }, "Profile"},
		{"unknown sse", func(c *Config) { c.SSE = "SSE-C" }, "SSE"},
		{"kms key without kms", func(c *Config) { c.SSE, c.SSEKMSKeyID = SSES3, "k" }, "SSEKMSKeyID"},
		{"bad storage class", func(c *Config) { c.StorageClass = "standard ia" }, "StorageClass"},
		{"unknown lookup", func(c *Config) { c.BucketLookup = "virtual" }, "BucketLookup"},
		{"negative connect timeout", func(c *Config) { c.ConnectTimeout = -time.Second }, "negative"},
		{"negative request timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "negative"},
		{"timeout with transport", func(c *Config) { c.RequestTimeout, c.Transport = time.Second, http.DefaultTransport }, "injected Transport"},
		{"http URL", func(c *Config) { c.Endpoint = "http://127.0.0.1:9000/" }, ""},
		{"smallest part", func(c *Config) { c.PartSize = MinPartSize }, ""},
		{"largest part", func(c *Config) { c.PartSize = MaxPartSize }, ""},
		{"injected transport", func(c *Config) { c.Transport = http.DefaultTransport }, ""},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "Endpoint is empty"},
		{"endpoint with path", func(c *Config) { c.Endpoint = "http://host:9000/bucket" }, "not host:port"},
		{"endpoint with credentials", func(c *Config) { c.Endpoint = "user@host:9000" }, "not host:port"},
		{"https without UseSSL", func(c *Config) { c.Endpoint = "https://host" }, "UseSSL is false"},
		{"http with UseSSL", func(c *Config) { c.Endpoint = "http://host"; c.UseSSL = true }, "UseSSL is true"},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "Bucket is empty"},
		{"bad bucket", func(c *Config) { c.Bucket = "Bad_Bucket" }, "Bucket"},
		{"short bucket", func(c *Config) { c.Bucket = "ab" }, "Bucket"},
		{"prefix with dot-dot", func(c *Config) { c.Prefix = "a/../b" }, "Prefix"},
		{"prefix with leading slash", func(c *Config) { c.Prefix = "/a" }, "Prefix"},
		{"part too small", func(c *Config) { c.PartSize = MinPartSize - 1 }, "PartSize"},
		{"part too large", func(c *Config) { c.PartSize = MaxPartSize + 1 }, "PartSize"},
		{"negative part", func(c *Config) { c.PartSize = -1 }, "PartSize"},
		{"negative attempts", func(c *Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"access key alone", func(c *Config) { c.AccessKey = "AK" }, "set together"},
		{"secret key alone", func(c *Config) { c.SecretKey = "SK" }, "set together"},
		{"token without keys", func(c *Config) { c.SessionToken = "T" }, "SessionToken"},
		{"skip verify without TLS", func(c *Config) { c.InsecureSkipVerify = true }, "needs UseSSL"},
		{"skip verify with transport", func(c *Config) {
			c.UseSSL, c.InsecureSkipVerify, c.Transport = true, true, http.DefaultTransport
		}, "injected Transport"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, backend.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want ErrInvalidArgument mentioning %q", err, tc.wantErr)
			}
			if _, nerr := New(t.Context(), c); !errors.Is(nerr, backend.ErrInvalidArgument) {
				t.Errorf("New accepted the config: %v", nerr)
			}
		})
	}
	// Several problems are all reported.
	err := Config{PartSize: 1}.Validate()
	for _, want := range []string{"Endpoint", "Bucket", "PartSize"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() of a zero config = %v, lacks %s", err, want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig().withDefaults()
	if c.Region != DefaultRegion || c.PartSize != DefaultPartSize || c.MaxAttempts != 1 || c.Prefix != "" || c.Logger == nil ||
		c.Credentials != CredentialsChain || c.BucketLookup != BucketLookupAuto || c.SSE != "" || c.StorageClass != "" ||
		c.ConnectTimeout != DefaultConnectTimeout || c.RequestTimeout != DefaultRequestTimeout {
		t.Errorf("defaults = %v (logger %v)", c, c.Logger)
	}
	withKeys := validConfig()
	withKeys.AccessKey, withKeys.SecretKey = "AK", "SK"
	if got := withKeys.withDefaults().Credentials; got != CredentialsStatic {
		t.Errorf("Credentials with keys defaults to %q, want %q", got, CredentialsStatic)
	}
	for in, want := range map[string]string{"a": "a/", "a/b/": "a/b/", "": ""} {
		c := validConfig()
		c.Prefix = in
		if got := c.withDefaults().Prefix; got != want {
			t.Errorf("Prefix %q normalized to %q, want %q", in, got, want)
		}
	}
	c = Config{Endpoint: "e:1", Bucket: "bkt", Region: "r", PartSize: MinPartSize, MaxAttempts: 5}.withDefaults()
	if c.Region != "r" || c.PartSize != MinPartSize || c.MaxAttempts != 5 {
		t.Errorf("explicit values replaced: %v", c)
	}
}

func TestConfigFromEnv(t *testing.T) {
	all := []string{EnvEndpoint, EnvBucket, EnvPrefix, EnvRegion, EnvAccessKey, EnvSecretKey, EnvSessionToken,
		EnvUseSSL, EnvInsecureSkipVerify, EnvCreateBucket, EnvPartSize, EnvMaxAttempts, EnvCredentials, EnvProfile,
		EnvCredentialsFile, EnvSSE, EnvSSEKMSKeyID, EnvStorageClass, EnvBucketLookup, EnvConnectTimeout, EnvRequestTimeout}
	cases := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr []string
	}{
		{"empty", nil, Config{}, nil},
		{"full", map[string]string{
			EnvEndpoint: "127.0.0.1:9000", EnvBucket: "artifacts", EnvPrefix: "p/", EnvRegion: "eu-1",
			EnvAccessKey: "AK", EnvSecretKey: "SK", EnvSessionToken: "TOK", EnvUseSSL: "true",
			EnvInsecureSkipVerify: "1", EnvCreateBucket: "TRUE", EnvPartSize: "33554432", EnvMaxAttempts: "4",
		}, Config{
			Endpoint: "127.0.0.1:9000", Bucket: "artifacts", Prefix: "p/", Region: "eu-1",
			AccessKey: "AK", SecretKey: "SK", SessionToken: "TOK", UseSSL: true,
			InsecureSkipVerify: true, CreateBucket: true, PartSize: 32 << 20, MaxAttempts: 4,
		}, nil},
		{"transport", map[string]string{
			EnvCredentials: "chain", EnvProfile: "ci", EnvCredentialsFile: "/etc/aws/credentials",
			EnvSSE: "aws:kms", EnvSSEKMSKeyID: "alias/a", EnvStorageClass: "STANDARD_IA", EnvBucketLookup: "path",
			EnvConnectTimeout: "3s", EnvRequestTimeout: "1m30s",
		}, Config{
			Credentials: CredentialsChain, Profile: "ci", CredentialsFile: "/etc/aws/credentials",
			SSE: SSEKMS, SSEKMSKeyID: "alias/a", StorageClass: "STANDARD_IA", BucketLookup: BucketLookupPath,
			ConnectTimeout: 3 * time.Second, RequestTimeout: 90 * time.Second,
		}, nil},
		{"malformed timeouts", map[string]string{EnvConnectTimeout: "3", EnvRequestTimeout: "soon"},
			Config{}, []string{EnvConnectTimeout, EnvRequestTimeout}},
		{"https endpoint implies TLS", map[string]string{EnvEndpoint: "https://s3.example.com"},
			Config{Endpoint: "https://s3.example.com", UseSSL: true}, nil},
		{"explicit USE_SSL wins", map[string]string{EnvEndpoint: "https://s3.example.com", EnvUseSSL: "false"},
			Config{Endpoint: "https://s3.example.com"}, nil},
		{"malformed", map[string]string{EnvUseSSL: "yes please", EnvPartSize: "16MiB", EnvMaxAttempts: "x", EnvCreateBucket: "2"},
			Config{}, []string{EnvUseSSL, EnvPartSize, EnvMaxAttempts, EnvCreateBucket}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range all {
				t.Setenv(k, tc.env[k])
			}
			got, err := ConfigFromEnv(os.LookupEnv)
			if tc.wantErr != nil {
				if !errors.Is(err, backend.ErrInvalidArgument) {
					t.Fatalf("ConfigFromEnv() err = %v, want ErrInvalidArgument", err)
				}
				for _, name := range tc.wantErr {
					if !strings.Contains(err.Error(), name) {
						t.Errorf("error %v does not name %s", err, name)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromEnv() err = %v", err)
			}
			if got != tc.want {
				t.Errorf("ConfigFromEnv() = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestConfigRedaction(t *testing.T) {
	const access, secret, token = "AKIAEXAMPLEACCESS", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET", "FwoGZXIvYXdzEXAMPLETOKEN"
	c := validConfig()
	c.AccessKey, c.SecretKey, c.SessionToken = access, secret, token
	c.Transport = http.DefaultTransport

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", c)
	outputs := map[string]string{
		"String": c.String(),
		"%v":     fmt.Sprintf("%v", c),
		"%+v":    fmt.Sprintf("%+v", c),
		"%#v":    fmt.Sprintf("%#v", c),
		"%s":     fmt.Sprintf("%s", c),
		"%v ptr": fmt.Sprintf("%v", &c),
		"slog":   buf.String(),
	}
	for name, out := range outputs {
		for _, cred := range []string{access, secret, token} {
			if strings.Contains(out, cred) {
				t.Errorf("%s prints a credential: %s", name, out)
			}
		}
		if !strings.Contains(out, "127.0.0.1:9000") || !strings.Contains(out, redacted) {
			t.Errorf("%s = %s, want the endpoint and %s", name, out, redacted)
		}
	}
	// An empty credential is shown as empty, so that "not set" is visible.
	if s := validConfig().String(); strings.Contains(s, redacted) || !strings.Contains(s, `SecretKey:""`) {
		t.Errorf("String of a config without credentials = %s", s)
	}
}
