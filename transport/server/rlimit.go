package server

import (
	"errors"
	"syscall"
)

// raiseFDLimit lifts the open-files soft limit to the hard limit (a TLS
// connection costs one descriptor) and returns the limit in force.
func raiseFDLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return r.Cur, err
		}
	}
	return r.Cur, nil
}

// isFDExhausted reports whether an accept failed for want of descriptors.
func isFDExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
