//go:build !linux

package main

import "syscall"

// workerProcAttr: without a parent death signal, workers are killed by the
// parent on timeout or interrupt only.
func workerProcAttr() *syscall.SysProcAttr { return nil }
