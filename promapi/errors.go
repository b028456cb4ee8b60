package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
)

// errorType is the errorType of a Prometheus API error response.
type errorType string

// The error types of the Prometheus HTTP API.
const (
	errorBadData     errorType = "bad_data"
	errorExec        errorType = "execution"
	errorTimeout     errorType = "timeout"
	errorCanceled    errorType = "canceled"
	errorInternal    errorType = "internal"
	errorUnavailable errorType = "unavailable"
	errorNotFound    errorType = "not_found"
)

// statusClientClosedConnection is what Prometheus answers a cancelled query
// with (nginx's 499).
const statusClientClosedConnection = 499

// apiError is a failed request: its errorType, its message and, when it is
// not the errorType's usual one, its HTTP status.
type apiError struct {
	typ    errorType
	err    error
	status int // 0: the default for typ
}

func (e *apiError) code() int {
	if e.status != 0 {
		return e.status
	}
	switch e.typ {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout, errorUnavailable:
		return http.StatusServiceUnavailable
	case errorNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

func badData(err error) apiResult {
	return apiResult{err: &apiError{typ: errorBadData, err: err}}
}

func invalidParam(err error, name string) apiResult {
	return badData(fmt.Errorf("invalid parameter %q: %w", name, err))
}

// engineError maps an error from query execution or storage to the error
// type Prometheus uses for it.
func engineError(err error) *apiError {
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
		storage  promql.ErrStorage
	)
	switch {
	case errors.As(err, &canceled):
		return &apiError{typ: errorCanceled, err: err}
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: errorTimeout, err: err}
	case errors.Is(err, context.Canceled):
		return &apiError{typ: errorCanceled, err: err}
	case errors.As(err, &storage):
		return &apiError{typ: errorInternal, err: err}
	}
	return &apiError{typ: errorExec, err: err}
}
