// Package api holds what every chatd HTTP handler shares: the error type
// whose code maps to a status, and the JSON encoding and decoding rules of
// the wire contract. It is the one place where errors become responses.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"chatd/store"
)

// Code is an error code of the wire contract.
type Code string

// The error codes of the contract, and the extension Unavailable.
const (
	InvalidArgument Code = "invalid_argument"
	Unauthenticated Code = "unauthenticated"
	Forbidden       Code = "forbidden"
	NotFound        Code = "not_found"
	Superseded      Code = "superseded"
	Conflict        Code = "conflict"
	ResyncRequired  Code = "resync_required"
	TooLarge        Code = "too_large"
	RateLimited     Code = "rate_limited"
	Internal        Code = "internal"
	// Unavailable (503) means the database cannot take writes (disk full,
	// read-only file); the request changed nothing and may be retried.
	Unavailable Code = "unavailable"
	// MethodNotAllowed (405, with an Allow header) means the path exists
	// but does not take the request's method.
	MethodNotAllowed Code = "method_not_allowed"
)

// Status returns the HTTP status of the code.
func (c Code) Status() int {
	switch c {
	case InvalidArgument:
		return http.StatusBadRequest
	case Unauthenticated:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case Superseded, Conflict:
		return http.StatusConflict
	case ResyncRequired:
		return http.StatusGone
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case RateLimited:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	case MethodNotAllowed:
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}

// Error is an error with a contract code and a message meant for people.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsCode reports whether err is an *Error with the code.
func IsCode(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// WriteError answers the request with err in the contract's error shape.
// Errors that are not *Error become 500 internal (and are logged), except
// store unavailability, which becomes 503.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, store.ErrUnavailable):
		log.Error("storage unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Code: Unavailable, Message: "the database cannot take writes right now; nothing was changed, try again later", RetryAfter: 5 * time.Second}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e = &Error{Code: Unavailable, Message: "the request was cancelled"}
	default:
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Code: Internal, Message: "internal error"}
	}
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	var body struct {
		Error struct {
			Code    Code   `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code = e.Code
	body.Error.Message = e.Message
	WriteJSON(w, e.Code.Status(), body)
}

// WriteJSON writes v as the JSON body with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"encoding failed"}}`, http.StatusInternalServerError)
		return
	}
	WriteRaw(w, status, b)
}

// WriteRaw writes already-encoded JSON with the status.
func WriteRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// BodyTimeout is how long reading a request body may take.
const BodyTimeout = 30 * time.Second

// MaxBody is the largest request body the API reads (16 KiB).
const MaxBody = 16 << 10

// ReadBody reads the whole request body, refusing bodies over limit with
// TooLarge.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, Errorf(TooLarge, "the request body is over %d bytes", limit)
	}
	// A body is small: a client trickling one in is given BodyTimeout, not
	// forever (the server sets no ReadTimeout, which would cut long-polls).
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(BodyTimeout))
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, Errorf(TooLarge, "the request body is over %d bytes", limit)
		}
		return nil, Errorf(InvalidArgument, "reading the request body: %v", err)
	}
	return b, nil
}

// DecodeJSON reads a JSON object of at most MaxBody bytes into v. Unknown
// fields are refused, so a typo in a field name is an error rather than a
// silently ignored value.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := ReadBody(w, r, MaxBody)
	if err != nil {
		return err
	}
	return Unmarshal(b, v)
}

// Unmarshal decodes one JSON value from b into v with the API's rules.
func Unmarshal(b []byte, v any) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		return Errorf(InvalidArgument, "the request body is empty; expected a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(InvalidArgument, "the request body is not valid JSON for this request: %v", err)
	}
	// Decoder.More says nothing of a stray '}' or ']' after the value, so
	// look at what is left: only JSON white space may follow.
	if rest := b[dec.InputOffset():]; len(bytes.Trim(rest, " \t\r\n")) > 0 {
		return Errorf(InvalidArgument, "the request body has data after the JSON object")
	}
	return nil
}

// IsJSON reports whether the request declares a JSON body.
func IsJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// Time formats t as the contract's RFC 3339 UTC with milliseconds.
func Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// TimeMillis formats unix milliseconds like Time.
func TimeMillis(ms int64) string { return Time(time.UnixMilli(ms)) }

// Handler adapts a function that returns an error to http.Handler, writing
// the error in the contract's shape.
func Handler(log *slog.Logger, fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// PathID parses a positive integer path value.
func PathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, Errorf(InvalidArgument, "%s must be a positive integer, not %q", name, v)
	}
	return id, nil
}
