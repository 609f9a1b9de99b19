//go:build !unix

package auditlog

func cpuTime() int64 { return 0 }
