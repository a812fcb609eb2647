package engine

import "fmt"

// Code is a stable error code. Codes are part of the admin API and the wire
// protocol: never renumber or rename one, only add.
type Code string

// The error catalogue.
const (
	CodeBadRequest        Code = "bad_request"
	CodeBadKind           Code = "bad_kind"
	CodeBadVersion        Code = "bad_version"
	CodeBadPlatform       Code = "bad_platform"
	CodeBadSetting        Code = "bad_setting"
	CodeUnknownClient     Code = "unknown_client"
	CodeUnknownRelease    Code = "unknown_release"
	CodeDuplicateRelease  Code = "duplicate_release"
	CodeDependencyMissing Code = "dependency_missing"
	CodeNotUpgrading      Code = "not_upgrading"
	CodeKindMismatch      Code = "kind_mismatch"
	CodeOverloaded        Code = "overloaded"
	CodeClosed            Code = "closed"
	CodeStorage           Code = "storage"
)

// Error is the typed error every engine entry point returns for bad input.
// Nothing is applied when an Error is returned.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Msg }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the stable code of err, or "internal" for foreign errors.
func CodeOf(err error) Code {
	if e, ok := err.(*Error); ok {
		return e.Code
	}
	return "internal"
}
