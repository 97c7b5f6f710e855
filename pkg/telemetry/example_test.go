package telemetry_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
	"github.com/necrocode/artifactstore/pkg/store"
	"github.com/necrocode/artifactstore/pkg/telemetry"
)

func Example() {
	ctx := context.Background()
	reg := prometheus.NewRegistry() // serve it with promhttp.HandlerFor(reg, ...)
	locker, err := memlock.New(lock.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := store.Config{Telemetry: telemetry.Config{Registerer: reg}}
	s, err := store.New(ctx, membackend.New(), locker, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := s.UploadBytes(ctx, "artifact://spec-1/task-7/log", []byte("build ok\n"), store.UploadOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	_, _, err = s.Download(ctx, "artifact://spec-1/task-7/diff")
	fmt.Println("missing:", err != nil)

	mfs, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "artifactstore_operation") || mf.GetType().String() != "COUNTER" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			fmt.Printf("%s{%s} %v\n", mf.GetName(), strings.Join(labels, ","), m.GetCounter().GetValue())
		}
	}
	// Output:
	// missing: true
	// artifactstore_operation_errors_total{kind=not_found,op=download} 1
	// artifactstore_operations_total{op=download} 1
	// artifactstore_operations_total{op=upload} 1
}
