package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"jumpfleet/engine"
	"jumpfleet/identity"
	"jumpfleet/packages"
)

// Codes of the admin API beyond the engine's catalogue (engine/errors.go).
// Stable: never rename one, only add.
const (
	CodeBadJSON          engine.Code = "bad_json"
	CodeUnknownField     engine.Code = "unknown_field"
	CodeBadType          engine.Code = "bad_type"
	CodeTooLarge         engine.Code = "too_large"
	CodeBadCursor        engine.Code = "bad_cursor"
	CodeBadSignature     engine.Code = "bad_signature"
	CodeBadPackage       engine.Code = "bad_package"
	CodeUnauthorized     engine.Code = "unauthorized"
	CodeNotFound         engine.Code = "not_found"
	CodeMethodNotAllowed engine.Code = "method_not_allowed"
	CodeInternal         engine.Code = "internal"
)

// httpStatus maps every code to its HTTP status (docs/API.md, "Errors").
var httpStatus = map[engine.Code]int{
	CodeBadJSON:                  http.StatusBadRequest,
	CodeUnknownField:             http.StatusBadRequest,
	CodeBadType:                  http.StatusBadRequest,
	CodeTooLarge:                 http.StatusRequestEntityTooLarge,
	CodeBadCursor:                http.StatusBadRequest,
	CodeBadSignature:             http.StatusBadRequest,
	CodeBadPackage:               http.StatusBadRequest,
	CodeUnauthorized:             http.StatusUnauthorized,
	CodeNotFound:                 http.StatusNotFound,
	CodeMethodNotAllowed:         http.StatusMethodNotAllowed,
	CodeInternal:                 http.StatusInternalServerError,
	engine.CodeBadRequest:        http.StatusBadRequest,
	engine.CodeBadKind:           http.StatusBadRequest,
	engine.CodeBadVersion:        http.StatusBadRequest,
	engine.CodeBadPlatform:       http.StatusBadRequest,
	engine.CodeBadSetting:        http.StatusBadRequest,
	engine.CodeUnknownClient:     http.StatusNotFound,
	engine.CodeUnknownRelease:    http.StatusNotFound,
	engine.CodeDuplicateRelease:  http.StatusConflict,
	engine.CodeDependencyMissing: http.StatusConflict,
	engine.CodeNotUpgrading:      http.StatusConflict,
	engine.CodeKindMismatch:      http.StatusConflict,
	engine.CodeOverloaded:        http.StatusServiceUnavailable,
	engine.CodeClosed:            http.StatusServiceUnavailable,
	engine.CodeStorage:           http.StatusInternalServerError,
}

func errorf(code engine.Code, format string, args ...any) *engine.Error {
	return engine.Errorf(code, format, args...)
}

// apiError turns any error into an *engine.Error with a catalogued code.
func apiError(err error) *engine.Error {
	var ee *engine.Error
	var ie *identity.Error
	switch {
	case errors.As(err, &ee):
		if _, ok := httpStatus[ee.Code]; ok {
			return ee
		}
		return errorf(CodeInternal, "%s", ee.Msg)
	case errors.As(err, &ie):
		if ie.Code == identity.CodeBadRequest {
			return errorf(engine.CodeBadRequest, "%s", ie.Msg)
		}
		return errorf(CodeInternal, "%s", ie.Error())
	case errors.Is(err, packages.ErrBadSignature):
		return errorf(CodeBadSignature, "%v", err)
	case errors.Is(err, packages.ErrMismatch), errors.Is(err, packages.ErrBadManifest), errors.Is(err, packages.ErrNotFound):
		return errorf(CodeBadPackage, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errorf(engine.CodeOverloaded, "the engine did not answer in time: %v", err)
	}
	return errorf(CodeInternal, "%v", err)
}

// errorBody is the JSON form of every error.
type errorBody struct {
	Error struct {
		Code    engine.Code `json:"code"`
		Message string      `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	e := apiError(err)
	status := httpStatus[e.Code]
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	var b errorBody
	b.Error.Code, b.Error.Message = e.Code, e.Msg
	writeJSON(w, status, &b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":{"code":"internal","message":"encoding the answer failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// decode reads exactly one JSON object into dst, strictly: unknown fields,
// wrong types, trailing data and oversized bodies are refused with their
// own codes. An empty body is allowed only when optional.
func decode(w http.ResponseWriter, r *http.Request, limit int64, dst any, optional bool) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(CodeTooLarge, "request body is above the %d-byte limit", limit)
		}
		return errorf(CodeBadJSON, "reading the request body: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		if optional {
			return nil
		}
		return errorf(CodeBadJSON, "request body is empty; want a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(CodeBadJSON, "request body has data after the JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var ee *engine.Error
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ee):
		return ee // a field's own parser (platform, version, duration, ...)
	case errors.As(err, &te):
		if te.Field == "" {
			return errorf(CodeBadType, "request body must be a JSON object, not %s", te.Value)
		}
		return errorf(CodeBadType, "field %q: got %s, want %s", te.Field, te.Value, jsonType(te.Type.String()))
	case errors.As(err, &se):
		return errorf(CodeBadJSON, "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errorf(CodeBadJSON, "malformed JSON: unexpected end of body")
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return errorf(CodeUnknownField, "unknown field %s", strings.TrimPrefix(msg, "json: unknown field "))
	}
	return errorf(CodeBadJSON, "malformed JSON: %v", err)
}

// jsonType names a Go type as the JSON type a client should send.
func jsonType(goType string) string {
	t := strings.TrimLeft(goType, "*")
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string", strings.HasPrefix(t, "engine."), strings.HasPrefix(t, "events.Duration"):
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	}
	return "a " + t
}

func itoa(n int) string { return strconv.Itoa(n) }

func sortStrings(s []string) []string { sort.Strings(s); return s }
