package store

import (
	"context"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

func TestSizeUnknownUpload(t *testing.T) {
	if SizeUnknown != backend.SizeUnknown {
		t.Fatalf("SizeUnknown = %d, backend.SizeUnknown = %d", SizeUnknown, backend.SizeUnknown)
	}
	f := newFixture(t, memEnv(), Config{}, nil)
	md, err := f.s.Upload(context.Background(), "artifact://s/t/log", strings.NewReader("streamed"), SizeUnknown, UploadOptions{})
	if err != nil || md.Size != 8 {
		t.Fatalf("Upload of unknown size = %+v, %v", md, err)
	}
}
