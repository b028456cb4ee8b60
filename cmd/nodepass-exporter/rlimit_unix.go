//go:build unix

package main

import "syscall"

// openFilesLimit raises the soft limit on open files to the hard limit (Go
// does so at start since 1.19; this makes it explicit and survives a
// changed default) and returns the limit in force, 0 when unknown.
func openFilesLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		raised := l
		raised.Cur = raised.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			l = raised
		}
	}
	return uint64(l.Cur) //nolint:unconvert // int64 on some platforms
}
