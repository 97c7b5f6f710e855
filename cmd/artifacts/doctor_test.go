package main

import (
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/internal/testenv"
)

// TestDoctor: doctor says what is wrong, one line per check, and exits
// with the status of the first failure's kind.
func TestDoctor(t *testing.T) {
	c := newCLI(t)
	r := c.fails(exitNotFound, "doctor")
	if !strings.Contains(r.stdout, "backend") || !strings.Contains(r.stdout, "does not exist (put creates it)") {
		t.Errorf("doctor on a missing directory:\n%s", r.stdout)
	}
	c.ok("put", readOnlyURI, writeFile(t, "v.log", []byte("v")), "--tag", "green")
	c.ok("compact") // the put's process builds the catalog only if it has the time
	r = c.ok("doctor")
	for _, want := range []string{"configuration       ok", "backend             ok", "lock service        ok",
		"conditional writes  ok  a writer verified them", "layout              ok", "catalog             ok", "tag index           ok"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor on a healthy store lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := c.ok("doctor", "--write"); !strings.Contains(r.stdout, "conditional writes  ok  verified now") {
		t.Errorf("doctor --write:\n%s", r.stdout)
	}
	var rep doctorJSON
	decode(t, c.ok("doctor", "--json").stdout, &rep)
	if !rep.OK || len(rep.Checks) != 7 {
		t.Errorf("doctor --json = %+v", rep)
	}

	// A lock service that does not answer: the backend is still checked.
	c.env["ARTIFACTSTORE_LOCK"] = "redis"
	c.env["ARTIFACTSTORE_REDIS_ADDRS"] = testenv.Addr(testenv.FreePort(t))
	r = c.fails(exitUnavailable, "doctor")
	if !strings.Contains(r.stdout, "lock service        FAIL") || !strings.Contains(r.stdout, "0 of 1 masters answered") ||
		!strings.Contains(r.stdout, "backend             ok") {
		t.Errorf("doctor with Redis down:\n%s", r.stdout)
	}
	decode(t, c.run("doctor", "--json").stdout, &rep)
	if rep.OK {
		t.Errorf("doctor --json with Redis down says ok: %+v", rep)
	}

	c.env["ARTIFACTSTORE_BACKEND"] = "s3"
	if r := c.fails(exitUsage, "doctor"); !strings.Contains(r.stdout, "configuration  FAIL") {
		t.Errorf("doctor with an invalid configuration:\n%s", r.stdout)
	}
}
