package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// versionLine describes the build from its build info (debug.ReadBuildInfo;
// nil when the binary has none): the module version ("(devel)" for a build
// from a checkout), the VCS revision and commit time with "+dirty" when the
// work tree had changes, the Go version and the platform.
//
//	artifacts v1.4.0 (rev 1e2e075b1c3d, 2026-12-01T18:03:11Z) go1.26.8 linux/amd64
func versionLine(info *debug.BuildInfo) string {
	version, goVersion := "unknown", runtime.Version()
	var vcs []string
	if info != nil {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if settings["vcs.modified"] == "true" {
				rev += "+dirty"
			}
			vcs = append(vcs, "rev "+rev)
		}
		if t := settings["vcs.time"]; t != "" {
			vcs = append(vcs, t)
		}
	}
	line := progName + " " + version
	if len(vcs) > 0 {
		line += " (" + strings.Join(vcs, ", ") + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", line, goVersion, runtime.GOOS, runtime.GOARCH)
}
