package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"
)

func TestLimitMemory(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("unset GOMEMLIMIT: live heap plus headroom", func(t *testing.T) {
		if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
			os.Unsetenv("GOMEMLIMIT")
			t.Cleanup(func() { os.Setenv("GOMEMLIMIT", v) })
		}
		debug.SetMemoryLimit(math.MaxInt64)
		limitMemory(logger, true)
		got := debug.SetMemoryLimit(-1)
		if got == math.MaxInt64 {
			t.Fatal("no memory limit set")
		}
		if got < minHeadroom {
			t.Errorf("limit %d MiB is below the headroom alone (%d MiB)", got>>20, minHeadroom>>20)
		}
		if got > 1<<30 {
			t.Errorf("limit %d MiB for a test binary's heap: not derived from the live heap", got>>20)
		}
	})
	t.Run("GOMEMLIMIT set: left to Go", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "off")
		debug.SetMemoryLimit(math.MaxInt64)
		limitMemory(logger, true)
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("limit %d set although GOMEMLIMIT is", got)
		}
	})
}
