// Package log builds the zerolog loggers entrasync's services pass around.
//
// There is no global logger: each service makes one with New at start-up and
// hands it (or a child with tenant/run/page fields) to everything it starts.
package log

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// New returns a JSON logger on stderr tagged with the service name. The level
// comes from LOG_LEVEL (trace, debug, info, warn, error; default info).
func New(service string) zerolog.Logger {
	return NewWriter(service, os.Stderr, os.Getenv("LOG_LEVEL"))
}

// NewWriter is New with an explicit destination and level, for tests and for
// the all-in-one fleet, which may prefer console output.
func NewWriter(service string, w io.Writer, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(level)))
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", service).Logger()
}

// Console returns a human-friendly logger for interactive use (make run).
func Console(service string, level string) zerolog.Logger {
	w := zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}
	return NewWriter(service, w, level)
}
