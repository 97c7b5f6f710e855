package main

import "syscall"

// workerProcAttr makes a worker die with the parent (Linux: the parent
// death signal), so that an interrupted demo leaves no process behind.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
