package s3backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/necrocode/artifactstore/pkg/backend"
)

var sentinels = []error{
	backend.ErrNotFound, backend.ErrPreconditionFailed, backend.ErrInvalidKey, backend.ErrInvalidArgument,
	backend.ErrPermissionDenied, backend.ErrStorageFull, backend.ErrTooLarge, backend.ErrSizeMismatch,
	backend.ErrTransient, backend.ErrClosed,
}

func TestMapErrorResponses(t *testing.T) {
	type resp = minio.ErrorResponse
	cases := []struct {
		name string
		op   string
		err  minio.ErrorResponse
		want []error // exactly these sentinels match
	}{
		{"NoSuchKey on get", opGet, resp{Code: "NoSuchKey", StatusCode: 404}, []error{backend.ErrNotFound}},
		{"NoSuchKey on stat (HEAD, no body)", opStat, resp{Code: "NoSuchKey", StatusCode: 404}, []error{backend.ErrNotFound}},
		{"NoSuchBucket on get", opGet, resp{Code: "NoSuchBucket", StatusCode: 404}, []error{backend.ErrNotFound}},
		{"NoSuchBucket on put", opPut, resp{Code: "NoSuchBucket", StatusCode: 404}, []error{backend.ErrNotFound}},
		{"NoSuchKey on put is If-Match on a missing key", opPut, resp{Code: "NoSuchKey", StatusCode: 404}, []error{backend.ErrPreconditionFailed}},
		{"unknown 404", opGet, resp{Code: "404 Not Found", StatusCode: 404}, []error{backend.ErrNotFound}},
		{"PreconditionFailed", opPut, resp{Code: "PreconditionFailed", StatusCode: 412}, []error{backend.ErrPreconditionFailed}},
		{"bare 412", opPut, resp{Code: "412 Precondition Failed", StatusCode: 412}, []error{backend.ErrPreconditionFailed}},
		{"ConditionalRequestConflict", opPut, resp{Code: "ConditionalRequestConflict", StatusCode: 409}, []error{backend.ErrTransient}},
		{"versitygw's parent directory removed under a put", opPut, resp{Code: "ExistingObjectIsDirectory", StatusCode: 409}, []error{backend.ErrTransient}},
		{"AccessDenied", opGet, resp{Code: "AccessDenied", StatusCode: 403}, []error{backend.ErrPermissionDenied}},
		{"SignatureDoesNotMatch", opPut, resp{Code: "SignatureDoesNotMatch", StatusCode: 403}, []error{backend.ErrPermissionDenied}},
		{"InvalidAccessKeyId", opList, resp{Code: "InvalidAccessKeyId", StatusCode: 403}, []error{backend.ErrPermissionDenied}},
		{"ExpiredToken", opGet, resp{Code: "ExpiredToken", StatusCode: 400}, []error{backend.ErrPermissionDenied}},
		{"versitygw unknown user (404)", opGet, resp{Code: "XAdminUserNotFound", StatusCode: 404}, []error{backend.ErrPermissionDenied}},
		{"bare 401", opGet, resp{Code: "401 Unauthorized", StatusCode: 401}, []error{backend.ErrPermissionDenied}},
		{"MinIO storage full", opPut, resp{Code: "XMinioStorageFull", StatusCode: 507}, []error{backend.ErrStorageFull}},
		{"MinIO bucket quota", opPut, resp{Code: "XMinioAdminBucketQuotaExceeded", StatusCode: 400}, []error{backend.ErrStorageFull}},
		{"versitygw quota (403)", opPut, resp{Code: "QuotaExceeded", StatusCode: 403}, []error{backend.ErrStorageFull}},
		{"versitygw disk full", opPut, resp{Code: "InsufficientStorage", StatusCode: 507}, []error{backend.ErrStorageFull}},
		{"bare 507", opPut, resp{Code: "507 Insufficient Storage", StatusCode: 507}, []error{backend.ErrStorageFull}},
		{"EntityTooLarge", opPut, resp{Code: "EntityTooLarge", StatusCode: 400}, []error{backend.ErrTooLarge}},
		{"bare 413", opPut, resp{Code: "413", StatusCode: 413}, []error{backend.ErrTooLarge}},
		{"SlowDown", opPut, resp{Code: "SlowDown", StatusCode: 503}, []error{backend.ErrTransient}},
		{"SlowDown with a 200 status", opPut, resp{Code: "SlowDown"}, []error{backend.ErrTransient}},
		{"InternalError", opGet, resp{Code: "InternalError", StatusCode: 500}, []error{backend.ErrTransient}},
		{"ServiceUnavailable", opGet, resp{Code: "ServiceUnavailable", StatusCode: 503}, []error{backend.ErrTransient}},
		{"RequestTimeout", opPut, resp{Code: "RequestTimeout", StatusCode: 400}, []error{backend.ErrTransient}},
		{"bare 502", opGet, resp{Code: "502 Bad Gateway", StatusCode: 502}, []error{backend.ErrTransient}},
		{"bare 429", opGet, resp{Code: "429", StatusCode: 429}, []error{backend.ErrTransient}},
		{"NoSuchUpload", opPut, resp{Code: "NoSuchUpload", StatusCode: 404}, []error{backend.ErrTransient}},
		{"invalid object name", opPut, resp{Code: "XMinioInvalidObjectName", StatusCode: 400}, []error{backend.ErrInvalidKey}},
		{"KeyTooLongError", opPut, resp{Code: "KeyTooLongError", StatusCode: 400}, []error{backend.ErrInvalidKey}},
		{"InvalidArgument", opPut, resp{Code: "InvalidArgument", StatusCode: 400}, []error{backend.ErrInvalidArgument}},
		{"wrong region", opGet, resp{Code: "AuthorizationHeaderMalformed", StatusCode: 400}, []error{backend.ErrInvalidArgument}},
		{"versitygw key below an object", opPut, resp{Code: "ObjectParentIsFile", StatusCode: 409}, nil},
		{"unknown 400", opPut, resp{Code: "Weird", StatusCode: 400}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := mapError(context.Background(), tc.op, "some/key", tc.err)
			for _, s := range sentinels {
				want := false
				for _, w := range tc.want {
					want = want || w == s
				}
				if got := errors.Is(err, s); got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
			// The provider error stays reachable through the wrapper.
			var er minio.ErrorResponse
			if !errors.As(err, &er) || er.Code != tc.err.Code {
				t.Errorf("errors.As(%v) = %+v, want code %q", err, er, tc.err.Code)
			}
			// Also when minio-go's error comes wrapped.
			err = mapError(context.Background(), tc.op, "some/key", fmt.Errorf("wrapped: %w", tc.err))
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("wrapped: errors.Is(%v, %v) = false", err, w)
				}
			}
			isTransient := false
			for _, w := range tc.want {
				isTransient = isTransient || w == backend.ErrTransient
			}
			if got := backend.IsTransient(err); got != isTransient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, isTransient)
			}
		})
	}
}

func TestMapErrorOthers(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	errRead := errors.New("disk on fire")
	reset := &url.Error{Op: "Put", URL: "http://127.0.0.1:1/b/k", Err: &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}}
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b/k", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	// net/http wraps the caller's reader error in a *url.Error, which is a
	// net.Error: the contentError mark keeps it from looking transient.
	readerFailed := &url.Error{Op: "Put", URL: "http://127.0.0.1:1/b/k", Err: &contentError{fmt.Errorf("read content: %w", errRead)}}

	cases := []struct {
		name      string
		ctx       context.Context
		err       error
		is        []error
		transient bool
	}{
		{"connection reset", context.Background(), reset, []error{backend.ErrTransient, syscall.ECONNRESET}, true},
		{"connection refused", context.Background(), refused, []error{backend.ErrTransient, syscall.ECONNREFUSED}, true},
		{"body cut short", context.Background(), io.ErrUnexpectedEOF, []error{backend.ErrTransient}, true},
		{"dial timeout", context.Background(), &url.Error{Op: "Get", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}}, []error{backend.ErrTransient}, true},
		{"cancelled context", cancelled, reset, []error{context.Canceled}, false},
		{"cancelled context, context error", cancelled, fmt.Errorf("x: %w", context.Canceled), []error{context.Canceled}, false},
		{"reader failed", context.Background(), readerFailed, []error{errRead}, false},
		{"size mismatch", context.Background(), &url.Error{Op: "Put", Err: &contentError{fmt.Errorf("%w: short", backend.ErrSizeMismatch)}}, []error{backend.ErrSizeMismatch}, false},
		{"stream too long", context.Background(), &contentError{fmt.Errorf("%w: long", backend.ErrTooLarge)}, []error{backend.ErrTooLarge}, false},
		{"closed", context.Background(), backend.ErrClosed, []error{backend.ErrClosed}, false},
		{"plain error", context.Background(), errors.New("odd"), nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := mapError(tc.ctx, opPut, "k", tc.err)
			for _, w := range tc.is {
				if !errors.Is(err, w) {
					t.Errorf("errors.Is(%v, %v) = false", err, w)
				}
			}
			if got := backend.IsTransient(err); got != tc.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, tc.transient)
			}
			var ce *contentError
			if errors.As(err, &ce) {
				t.Errorf("the contentError mark leaks: %v", err)
			}
		})
	}
	if mapError(context.Background(), opGet, "k", nil) != nil {
		t.Error("mapError(nil) != nil")
	}
}
