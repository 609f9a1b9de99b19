package main

import "syscall"

// childAttr makes the kernel kill a sidecar if the harness dies first, so an
// interrupted run leaves no process behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
