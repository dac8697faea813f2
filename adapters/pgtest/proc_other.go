//go:build !linux

package pgtest

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

// childrenOf lists the processes whose parent is pid, with pgrep.
func childrenOf(pid int) ([]int, error) {
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
	if err != nil {
		if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() == 1 {
			return nil, nil // none
		}
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// exited reports whether pid has exited (a zombie counts as running here).
func exited(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// stopAndWait stops pid (SIGSTOP) and gives the signal a moment to land.
func stopAndWait(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond)
	return nil
}
