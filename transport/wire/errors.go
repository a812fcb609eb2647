package wire

import (
	"errors"
	"strconv"
)

// ErrCode is a stable error code from the catalogue in docs/PROTOCOL.md §7.
// Never renumber or rename one, only add.
type ErrCode uint16

// The error catalogue.
const (
	CodeBadFrame          ErrCode = 1
	CodeFrameTooLarge     ErrCode = 2
	CodeUnsupportedVer    ErrCode = 3
	CodeNotAuthenticated  ErrCode = 4
	CodeAuthFailed        ErrCode = 5
	CodeReplayed          ErrCode = 6
	CodeInstallerInvalid  ErrCode = 7
	CodeOverloaded        ErrCode = 8
	CodeUnknownClient     ErrCode = 9
	CodeBadKind           ErrCode = 10
	CodeBadVersion        ErrCode = 11
	CodeBadPlatform       ErrCode = 12
	CodeForbidden         ErrCode = 13
	CodeTimeout           ErrCode = 14
	CodeInternal          ErrCode = 15
	CodeNotUpgrading      ErrCode = 16
	CodeBadRange          ErrCode = 17
	CodeUnknownRelease    ErrCode = 18
	CodeClockSkew         ErrCode = 19
	CodeUnexpectedMessage ErrCode = 20
	CodeBadRequest        ErrCode = 21
	CodeKindMismatch      ErrCode = 22
	CodeShuttingDown      ErrCode = 23

	// Upgrade failures a client reports in Fail.
	CodeDownloadFailed ErrCode = 32
	CodeSizeMismatch   ErrCode = 33
	CodeHashMismatch   ErrCode = 34
	CodeBadSignature   ErrCode = 35
	CodeInstallFailed  ErrCode = 36
	CodeNoSpace        ErrCode = 37
	CodeCancelled      ErrCode = 38
)

type codeInfo struct {
	name   string
	closes bool // the server closes the connection after sending it
}

var codes = map[ErrCode]codeInfo{
	CodeBadFrame:          {"bad_frame", true},
	CodeFrameTooLarge:     {"frame_too_large", true},
	CodeUnsupportedVer:    {"unsupported_version", true},
	CodeNotAuthenticated:  {"not_authenticated", true},
	CodeAuthFailed:        {"auth_failed", true},
	CodeReplayed:          {"replayed", true},
	CodeInstallerInvalid:  {"installer_invalid", true},
	CodeOverloaded:        {"overloaded", true},
	CodeUnknownClient:     {"unknown_client", true},
	CodeBadKind:           {"bad_kind", true},
	CodeBadVersion:        {"bad_version", false},
	CodeBadPlatform:       {"bad_platform", false},
	CodeForbidden:         {"forbidden", true},
	CodeTimeout:           {"timeout", true},
	CodeInternal:          {"internal", true},
	CodeNotUpgrading:      {"not_upgrading", false},
	CodeBadRange:          {"bad_range", false},
	CodeUnknownRelease:    {"unknown_release", false},
	CodeClockSkew:         {"clock_skew", true},
	CodeUnexpectedMessage: {"unexpected_message", true},
	CodeBadRequest:        {"bad_request", false},
	CodeKindMismatch:      {"kind_mismatch", true},
	CodeShuttingDown:      {"shutting_down", true},
	CodeDownloadFailed:    {"download_failed", false},
	CodeSizeMismatch:      {"size_mismatch", false},
	CodeHashMismatch:      {"hash_mismatch", false},
	CodeBadSignature:      {"bad_signature", false},
	CodeInstallFailed:     {"install_failed", false},
	CodeNoSpace:           {"no_space", false},
	CodeCancelled:         {"cancelled", false},
}

// String returns the snake_case name, or "code(N)" for codes this version
// does not know (a newer peer may send them; they stay representable).
func (c ErrCode) String() string {
	if i, ok := codes[c]; ok {
		return i.name
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// Known reports whether c is in this version's catalogue.
func (c ErrCode) Known() bool { _, ok := codes[c]; return ok }

// Closes reports whether the server closes the connection after sending an
// Error with this code.
func (c ErrCode) Closes() bool { return codes[c].closes }

// Error is both the Go error every decode failure returns and the Error
// message (type 0x03) on the wire, so a decode failure can be sent to the
// peer unchanged. Cause is local only (never encoded); Unwrap exposes it.
type Error struct {
	Code         ErrCode
	RetryAfterMs uint32 // with overloaded / shutting_down: when to come back
	Msg          string // human text, at most MaxMessage bytes on the wire
	Cause        error  // local cause, e.g. io.ErrUnexpectedEOF; not sent
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf-style helpers are deliberately absent: decode paths build errors
// from constant strings so a hostile peer cannot make us format much.
func newErr(c ErrCode, msg string) *Error { return &Error{Code: c, Msg: msg} }

// CodeOf returns err's stable code: the code of an *Error found through
// wrapping, or internal for anything else.
func CodeOf(err error) ErrCode {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}
