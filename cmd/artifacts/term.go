package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether v is an *os.File on a character device other
// than the null device: a terminal, as far as the standard library can
// tell without a terminal ioctl.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// canConfirm checks, before any work, that a destructive command either
// has --yes or can ask on a terminal.
func (a *app) canConfirm(cmd string, yes bool) error {
	if yes || a.isTerminal(a.stdin) {
		return nil
	}
	return usageErr(cmd, "stdin is not a terminal, so the confirmation cannot be asked; pass --yes to proceed")
}

// confirm asks question on stderr and reads the answer from stdin; only
// "y" or "yes" proceeds. With yes it proceeds without asking.
func (a *app) confirm(cmd, question string, yes bool) error {
	if yes {
		return nil
	}
	if err := a.canConfirm(cmd, yes); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: read the answer: %w", cmd, err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	if err == io.EOF && line == "" {
		fmt.Fprintln(a.stderr)
	}
	return &exitError{code: exitFailure, msg: cmd + ": aborted, nothing changed"}
}

// progress reports the advance of a long operation on w: a redrawn bar on
// a terminal, otherwise a plain line at most once a second (and always the
// last one).
type progress struct {
	w     io.Writer
	tty   bool
	label string
	now   func() time.Time
	last  time.Time
	width int // length of the last bar drawn, to blank it
}

func (a *app) newProgress(label string) *progress {
	return &progress{w: a.stderr, tty: a.isTerminal(a.stderr), label: label, now: a.now}
}

// update reports done of total items and bytes; final forces the output
// (and ends the bar's line).
func (p *progress) update(doneN, totalN int, doneB, totalB int64, final bool) {
	now := p.now()
	every := time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if !final && !p.last.IsZero() && now.Sub(p.last) < every {
		return
	}
	p.last = now
	counts := fmt.Sprintf("%d/%d artifacts, %s/%s", doneN, totalN, humanSize(doneB), humanSize(totalB))
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", p.label, counts)
		return
	}
	frac := 1.0
	switch {
	case totalB > 0:
		frac = float64(doneB) / float64(totalB)
	case totalN > 0:
		frac = float64(doneN) / float64(totalN)
	}
	frac = min(max(frac, 0), 1)
	const barWidth = 30
	filled := int(frac * barWidth)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)
	if filled > 0 && filled < barWidth {
		bar = strings.Repeat("=", filled-1) + ">" + strings.Repeat(" ", barWidth-filled)
	}
	line := fmt.Sprintf("%s [%s] %3.0f%% %s", p.label, bar, frac*100, counts)
	pad := ""
	if p.width > len(line) {
		pad = strings.Repeat(" ", p.width-len(line))
	}
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	if final {
		fmt.Fprintln(p.w)
	}
}
