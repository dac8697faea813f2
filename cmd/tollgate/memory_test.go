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
	gcBefore := debug.SetGCPercent(100)
	t.Cleanup(func() {
		debug.SetMemoryLimit(before)
		debug.SetGCPercent(gcBefore)
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("unset GOMEMLIMIT: live heap plus headroom, GOGC untouched", func(t *testing.T) {
		unsetenv(t, "GOMEMLIMIT")
		unsetenv(t, "GOGC")
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(100)
		limitMemory(logger, true)
		got := debug.SetMemoryLimit(-1)
		if got == math.MaxInt64 {
			t.Fatal("no memory limit set")
		}
		if gc := debug.SetGCPercent(100); gc != 100 {
			t.Errorf("GOGC %d under serve's memory limit, want Go's default (100): more holds too much memory with 10,000 projects", gc)
		}
		if got < minHeadroom {
			t.Errorf("limit %d MiB is below the headroom alone (%d MiB)", got>>20, minHeadroom>>20)
		}
		if got > 1<<30 {
			t.Errorf("limit %d MiB for a test binary's heap: not derived from the live heap", got>>20)
		}
	})
	t.Run("GOMEMLIMIT set: left to Go, GOGC too", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "off")
		unsetenv(t, "GOGC")
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(100)
		limitMemory(logger, true)
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("limit %d set although GOMEMLIMIT is", got)
		}
		if gc := debug.SetGCPercent(100); gc != 100 {
			t.Errorf("GOGC %d with no limit of serve's, want it left as it was (100): nothing else would bound the heap", gc)
		}
	})
	t.Run("GOGC set: the limit, GOGC as set", func(t *testing.T) {
		unsetenv(t, "GOMEMLIMIT")
		t.Setenv("GOGC", "200")
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(200) // what the runtime read from GOGC at start
		limitMemory(logger, true)
		if got := debug.SetMemoryLimit(-1); got == math.MaxInt64 {
			t.Error("no memory limit set")
		}
		if gc := debug.SetGCPercent(100); gc != 200 {
			t.Errorf("GOGC %d, want 200 as the environment sets it", gc)
		}
	})
}

// unsetenv unsets key for the test, restoring it after.
func unsetenv(t *testing.T, key string) {
	if v, ok := os.LookupEnv(key); ok {
		os.Unsetenv(key)
		t.Cleanup(func() { os.Setenv(key, v) })
	}
}
