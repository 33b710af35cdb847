// otelcol-guard runs the collector and keeps its remote-write WAL recoverable.
//
//	otelcol-guard /otelcol-otelpower --config /etc/otelcol/config.yaml
//
// The prometheusremotewrite exporter's WAL (tidwall/wal) has no size bound, is corrupted by a
// write that hits a full disk (the collector then panics and never opens it again), and the
// collector's health check stays 200 while nothing reaches VictoriaMetrics. The guard:
//
//   - bounds the WAL: at PRW_WAL_MAX_BYTES it restarts the collector with its OTLP receivers
//     on an unreachable loopback port ("refusing": the clients keep their data, counted there),
//     the WAL keeps draining to VictoriaMetrics, and below half the bound it takes data again.
//     So the disk never fills and the WAL is never corrupted by it.
//   - sets a WAL the collector cannot open aside (prom_remotewrite.damaged-<time>, the newest
//     one kept) with a log line, and starts again with an empty one: no crash loop.
//   - restarts a collector that exits by itself (backoff 1 s .. 30 s).
//   - serves GUARD_HEALTH_ENDPOINT: / is 200 only while the collector is up and accepting and
//     the WAL head moved within GUARD_EXPORT_FAIL_AFTER of the WAL growing (503 says why);
//     /ready is 200 while the collector accepts data; /metrics has otelcol_guard_* gauges.
//
// Environment (default): PRW_WAL_DIR (/var/lib/otelcol/prw-wal), PRW_WAL_MAX_BYTES (80%: a
// byte count or a percentage of the WAL's filesystem), GUARD_HEALTH_ENDPOINT (127.0.0.1:13134),
// GUARD_EXPORT_FAIL_AFTER (2m), GUARD_CHECK_INTERVAL (200ms).
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const walName = "prom_remotewrite" // the exporter's directory inside PRW_WAL_DIR

// Lines of the collector's log that say its WAL is broken.
var walBroken = []string{"failed to open WAL", "unable to re-start write-ahead log"}

var passThrough = map[string]bool{"--version": true, "-v": true, "--help": true, "-h": true}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func duration(key, def string) time.Duration {
	d, err := time.ParseDuration(env(key, def))
	if err != nil || d <= 0 {
		log.Fatalf("otelcol-guard: %s=%q: not a positive duration", key, os.Getenv(key))
	}
	return d
}

// maxBytes parses PRW_WAL_MAX_BYTES: bytes, or N% of the filesystem holding dir. The result
// leaves room for the WAL's truncation, which copies the rest of its first segment (up to
// 20 MiB) before it deletes anything: at most half a small filesystem, else all but 24 MiB.
func maxBytes(spec, dir string) (n int64, capped bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	size := int64(st.Blocks) * int64(st.Bsize)
	if pct, ok := strings.CutSuffix(spec, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p <= 0 || p > 95 {
			return 0, false, fmt.Errorf("PRW_WAL_MAX_BYTES=%q: a percentage in (0, 95]", spec)
		}
		n = int64(float64(size) * p / 100)
	} else if n, err = strconv.ParseInt(spec, 10, 64); err != nil || n <= 0 {
		return 0, false, fmt.Errorf("PRW_WAL_MAX_BYTES=%q: a positive byte count or a percentage", spec)
	}
	if limit := size - min(size/2, 24<<20); n > limit {
		return limit, true, nil
	}
	return n, false, nil
}

// walState is what the WAL directory shows: bytes, and the names of its first and last
// segments (each named after its first entry's index; truncation renames the first).
type walState struct {
	bytes       int64
	first, last string
}

func readWAL(dir string) walState {
	var s walState
	entries, err := os.ReadDir(dir)
	if err != nil {
		return s
	}
	var names []string
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			s.bytes += info.Size()
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		s.first, s.last = names[0], names[len(names)-1]
	}
	return s
}

type guard struct {
	cmd        []string
	walDir     string // PRW_WAL_DIR/prom_remotewrite
	max        int64
	failAfter  time.Duration
	collHealth string // the collector's own health URL

	mu        sync.Mutex
	child     *exec.Cmd
	exited    chan struct{}
	refusing  bool
	brokenWAL atomic.Bool
	wal       walState
	headSince time.Time // when the WAL head last moved (or the WAL was last empty)
	grewSince bool      // the WAL grew since the head last moved
	failing   bool
	restarts  int64
	refusals  int64
	setAside  int64
	setAsideB int64
	childUp   bool
	stopping  atomic.Bool
}

func (g *guard) logf(format string, args ...any) { log.Printf("otelcol-guard: "+format, args...) }

// start runs the collector; refusing moves its OTLP receivers to an unreachable port.
func (g *guard) start() error {
	c := exec.Command(g.cmd[0], g.cmd[1:]...)
	c.Env = os.Environ()
	if g.refusing {
		c.Env = append(c.Env, "OTLP_GRPC_ENDPOINT=127.0.0.1:0", "OTLP_HTTP_ENDPOINT=127.0.0.1:0")
	}
	c.Stdout = os.Stdout
	pipe, err := c.StderrPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	g.brokenWAL.Store(false)
	done := make(chan struct{})
	go func() {
		r := bufio.NewReaderSize(pipe, 64*1024)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				_, _ = io.WriteString(os.Stderr, line)
				for _, s := range walBroken {
					if strings.Contains(line, s) {
						g.brokenWAL.Store(true)
					}
				}
			}
			if err != nil {
				break
			}
		}
		_ = c.Wait()
		close(done)
	}()
	g.mu.Lock()
	g.child, g.exited = c, done
	g.mu.Unlock()
	return nil
}

// stop sends SIGTERM (SIGKILL after 25 s) and waits.
func (g *guard) stop(sig os.Signal) {
	g.mu.Lock()
	c, done := g.child, g.exited
	g.mu.Unlock()
	if c == nil {
		return
	}
	_ = c.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		_ = c.Process.Kill()
		<-done
	}
}

// setAsideWAL renames a WAL the collector cannot use; only the newest such copy is kept.
func (g *guard) setAsideWAL() {
	st := readWAL(g.walDir)
	if _, err := os.Stat(g.walDir); err != nil {
		return
	}
	old, _ := filepath.Glob(g.walDir + ".damaged-*")
	for _, o := range old {
		_ = os.RemoveAll(o)
	}
	to := g.walDir + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(g.walDir, to); err != nil {
		g.logf("could not set the WAL aside (%v); removing it", err)
		_ = os.RemoveAll(g.walDir)
		to = "(removed)"
	}
	g.mu.Lock()
	g.setAside++
	g.setAsideB += st.bytes
	g.mu.Unlock()
	g.logf("the collector cannot use its WAL %s: set aside as %s (%d bytes not delivered);"+
		" starting with an empty WAL", g.walDir, to, st.bytes)
}

// check updates the WAL figures and decides whether the collector must change mode.
func (g *guard) check(now time.Time) (switchMode bool) {
	st := readWAL(g.walDir)
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.wal
	if st.first != prev.first || st.bytes == 0 || g.headSince.IsZero() {
		g.headSince, g.grewSince = now, false
	} else if st.bytes > prev.bytes || st.last != prev.last {
		g.grewSince = true
	}
	g.wal = st
	failing := g.grewSince && now.Sub(g.headSince) > g.failAfter
	if failing != g.failing {
		if failing {
			g.logf("remote write failing: the WAL has not drained for %s (%d bytes waiting)",
				now.Sub(g.headSince).Round(time.Second), st.bytes)
		} else {
			g.logf("remote write works again (%d bytes waiting)", st.bytes)
		}
		g.failing = failing
	}
	if !g.refusing && st.bytes >= g.max {
		g.refusing = true
		g.refusals++
		g.logf("WAL full (%d >= %d bytes): refusing new data until it drains below %d bytes"+
			" (the clients keep theirs)", st.bytes, g.max, g.max/2)
		return true
	}
	if g.refusing && st.bytes < g.max/2 {
		g.refusing = false
		g.logf("WAL below half its bound (%d bytes): taking data again", st.bytes)
		return true
	}
	return false
}

func (g *guard) healthy() (ready bool, why string) {
	up := false
	if resp, err := (&http.Client{Timeout: time.Second}).Get(g.collHealth); err == nil {
		up = resp.StatusCode == http.StatusOK
		_ = resp.Body.Close()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.childUp = up
	switch {
	case g.refusing:
		return false, fmt.Sprintf("WAL full (%d bytes, bound %d): refusing new data", g.wal.bytes, g.max)
	case !up:
		return false, "collector not running or not healthy"
	}
	return true, ""
}

func (g *guard) serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := g.healthy(); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		ok, why := g.healthy()
		g.mu.Lock()
		if ok && g.failing {
			ok, why = false, fmt.Sprintf("remote write failing for %s (%d bytes in the WAL)",
				time.Since(g.headSince).Round(time.Second), g.wal.bytes)
		}
		g.mu.Unlock()
		if !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		g.healthy() // otelcol_guard_collector_up as of now
		g.mu.Lock()
		defer g.mu.Unlock()
		age := 0.0
		if g.grewSince {
			age = time.Since(g.headSince).Seconds()
		}
		b := func(v bool) int {
			if v {
				return 1
			}
			return 0
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for _, m := range []struct {
			name, typ, help string
			v               float64
		}{
			{"otelcol_guard_wal_bytes", "gauge", "Bytes in the remote-write WAL", float64(g.wal.bytes)},
			{"otelcol_guard_wal_max_bytes", "gauge", "The WAL's bound (PRW_WAL_MAX_BYTES)", float64(g.max)},
			{"otelcol_guard_wal_stalled_seconds", "gauge", "How long the WAL grew without its head moving", age},
			{"otelcol_guard_remote_write_failing", "gauge", "1 while the WAL has not drained for GUARD_EXPORT_FAIL_AFTER", float64(b(g.failing))},
			{"otelcol_guard_refusing", "gauge", "1 while the WAL is full and new data is refused", float64(b(g.refusing))},
			{"otelcol_guard_collector_up", "gauge", "1 while the collector's health check answers 200", float64(b(g.childUp))},
			{"otelcol_guard_refusals_total", "counter", "Times the WAL filled up", float64(g.refusals)},
			{"otelcol_guard_wal_set_aside_total", "counter", "WALs set aside because the collector could not use them", float64(g.setAside)},
			{"otelcol_guard_wal_set_aside_bytes_total", "counter", "Bytes of those WALs (not delivered)", float64(g.setAsideB)},
			{"otelcol_guard_collector_restarts_total", "counter", "Collector exits the guard restarted it after", float64(g.restarts)},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", m.name, m.help, m.name, m.typ, m.name,
				strconv.FormatFloat(m.v, 'f', -1, 64))
		}
	})
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

func run() error {
	if len(os.Args) < 2 {
		return errors.New("usage: otelcol-guard COLLECTOR [ARGS...]")
	}
	if a := os.Args[2:]; len(a) > 0 && (!strings.HasPrefix(a[0], "-") || passThrough[a[0]]) {
		// validate, components, --version, ...: the collector alone, in this process
		path, err := exec.LookPath(os.Args[1])
		if err != nil {
			return err
		}
		return syscall.Exec(path, os.Args[1:], os.Environ())
	}
	walParent := env("PRW_WAL_DIR", "/var/lib/otelcol/prw-wal")
	if err := os.MkdirAll(walParent, 0o750); err != nil {
		return err
	}
	max, capped, err := maxBytes(env("PRW_WAL_MAX_BYTES", "80%"), walParent)
	if err != nil {
		return err
	}
	if capped {
		log.Printf("otelcol-guard: PRW_WAL_MAX_BYTES lowered to %d bytes: the WAL's"+
			" truncation needs room of its own on %s", max, walParent)
	}
	health := env("HEALTH_ENDPOINT", "127.0.0.1:13133")
	if strings.HasPrefix(health, "0.0.0.0:") || strings.HasPrefix(health, ":") {
		health = "127.0.0.1:" + health[strings.LastIndex(health, ":")+1:]
	}
	g := &guard{
		cmd:        os.Args[1:],
		walDir:     filepath.Join(walParent, walName),
		max:        max,
		failAfter:  duration("GUARD_EXPORT_FAIL_AFTER", "2m"),
		collHealth: "http://" + health + "/",
	}
	if err := g.serve(env("GUARD_HEALTH_ENDPOINT", "127.0.0.1:13134")); err != nil {
		return err
	}
	g.logf("WAL %s bounded at %d bytes", g.walDir, g.max)
	g.check(time.Now())
	if g.refusing {
		g.logf("starting in refusing mode: the WAL is over its bound")
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(duration("GUARD_CHECK_INTERVAL", "200ms"))
	defer tick.Stop()
	backoff := time.Second
	for {
		if err := g.start(); err != nil {
			return fmt.Errorf("starting %s: %w", g.cmd[0], err)
		}
		started := time.Now()
		exited := g.exited
	watch:
		for {
			select {
			case s := <-sigs:
				g.stopping.Store(true)
				g.stop(s)
				code := g.child.ProcessState.ExitCode()
				g.logf("collector stopped (%s, exit %d)", s, code)
				os.Exit(max0(code))
			case <-exited:
				break watch
			case now := <-tick.C:
				if g.brokenWAL.Load() {
					g.logf("the collector reports a broken WAL: restarting it")
					g.stop(syscall.SIGTERM)
					break watch
				}
				if g.check(now) {
					g.stop(syscall.SIGTERM)
					if err := g.start(); err != nil {
						return err
					}
					exited = g.exited
				}
			}
		}
		state := g.child.ProcessState
		if g.brokenWAL.Load() {
			g.setAsideWAL()
			backoff = time.Second
		} else {
			if time.Since(started) > time.Minute {
				backoff = time.Second
			}
			g.logf("collector exited (%s); starting it again in %s", state, backoff)
			select {
			case s := <-sigs:
				g.logf("stopping (%s)", s)
				os.Exit(0)
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
		g.mu.Lock()
		g.restarts++
		g.mu.Unlock()
	}
}

func max0(code int) int {
	if code < 0 {
		return 1
	}
	return code
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	if err := run(); err != nil {
		log.Fatalf("otelcol-guard: %v", err)
	}
}
