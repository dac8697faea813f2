package pgtest

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Credential: cred,
		// If the test process dies, the server goes with it. The runtime
		// sets it after changing the credentials (which would clear it),
		// just before exec.
		Pdeathsig: syscall.SIGQUIT,
	}
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone already
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out, nil
}

// stopAndWait stops pid (SIGSTOP) and waits until it has stopped: signals
// are delivered asynchronously.
func stopAndWait(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	for range 1000 {
		switch state(pid) {
		case "R", "S", "D": // running, sleeping, in the kernel: not yet
		default:
			return nil // stopped (T), or gone
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("postmaster did not stop within 1 s of SIGSTOP")
}

// state is pid's state letter in /proc ("" when it is gone).
func state(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// exited reports whether pid has exited: gone, or a zombie left for its new
// parent to reap (which holds no memory any more).
func exited(pid int) bool {
	st := state(pid)
	return st == "" || st == "Z" || st == "X"
}
