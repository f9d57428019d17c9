// Command chatbench measures chatd under load, side by side with nchan.
//
// It drives a running chatd only through its public HTTP API, as browsers
// do: many simulated clients, each with one connection and one long-poll
// at a time following its cursor, and posters that send messages at a set
// rate. Every message carries its send time, its poster and a sequence
// number, so chatbench reports deliveries per second, delivery latency
// percentiles, gaps and duplicates (both must be zero), errors, and the
// CPU time and memory of the server and of the harness itself over each
// measured window.
//
// The same scenarios run against nginx with the nchan module (long-poll
// subscribers on channels, configured by bench/nchan.conf) in the same
// invocation, so every comparable figure comes with a chatd/nchan ratio
// measured on the same machine at the same time.
//
// By default chatbench builds ./cmd/chatd, starts it on a free loopback
// port with a fresh database and no posting limit (-post-rate -1), creates
// bot accounts in bulk with `chatd bots`, starts nginx with a temporary
// prefix, runs the scenarios, writes a Markdown report and an SVG chart,
// and stops both servers by their pids. All traffic goes to 127.0.0.0/8.
//
// Scenarios (-scenarios, comma separated):
//
//	idle     N clients hold long-polls for a while: errors, memory per poll
//	fanout   one room, many listeners, rising message rate: the knee
//	large    one big room at a modest rate: latency
//	many     many small rooms: latency
//	durable  concurrent posters as fast as acknowledgements come
//	storm    N clients return at once, each many messages behind
//
// With -smoke it runs a few hundred clients for a few seconds against a
// chatd it starts itself, and exits non-zero on any gap, duplicate, error
// or missing delivery; no timing is judged. CI runs it.
//
// Usage:
//
//	go build -o /tmp/chatd ./cmd/chatd
//	go run ./cmd/chatbench -chatd-bin /tmp/chatd -md report.md -svg docs/benchmarks.svg
//	go run ./cmd/chatbench -smoke
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is every knob of a run, filled from flags.
type config struct {
	systems   []string
	scenarios []string
	smoke     bool

	chatdBin  string
	chatdAddr string
	chatdPID  int
	tokens    string
	chatdArgs string
	chatdEnv  []string

	nginxBin     string
	nchanModule  string
	nchanConf    string
	nchanWorkers int
	keep         bool

	payload       int
	pollTimeout   time.Duration
	connConc      int
	settleTimeout time.Duration
	drain         time.Duration

	idleClients int
	idleHold    time.Duration
	idlePoll    time.Duration

	fanListeners int
	fanPosters   int
	fanRates     []float64
	fanStep      time.Duration
	fanP99       time.Duration

	largeListeners int
	largePosters   int
	largeRate      float64
	largeDur       time.Duration
	largeP99       time.Duration

	manyRooms   int
	manyMembers int
	manyRate    float64
	manyDur     time.Duration
	manyP99     time.Duration

	durPosters int
	durRooms   int
	durDur     time.Duration

	stormClients int
	stormBacklog int
	stormPosters int
	stormTimeout time.Duration

	smokeClients int
	smokeRooms   int
	smokePosters int
	smokeRate    float64
	smokeDur     time.Duration

	mdOut      string
	svgOut     string
	jsonOut    string
	quietLoad  float64
	quietWait  time.Duration
	fsyncProbe time.Duration
	cpuProfile string
	note       string
	replot     string

	stdout io.Writer // where the report goes
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (*config, error) {
	cfg := &config{stdout: os.Stdout}
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	systems := fs.String("systems", "chatd,nchan", "systems to measure, comma separated: chatd, nchan")
	scenarios := fs.String("scenarios", strings.Join(scenarioNames, ","), "scenarios to run, comma separated")
	fs.BoolVar(&cfg.smoke, "smoke", false, "run the small CI check against chatd and exit non-zero on any gap, duplicate or error")

	fs.StringVar(&cfg.chatdBin, "chatd-bin", "", "chatd binary to start (default: go build ./cmd/chatd into a temp dir)")
	fs.StringVar(&cfg.chatdAddr, "chatd-addr", "", "measure a chatd already running at this loopback address instead of starting one")
	fs.IntVar(&cfg.chatdPID, "chatd-pid", 0, "pid of the running chatd of -chatd-addr, for its CPU and memory")
	fs.StringVar(&cfg.tokens, "tokens", "", "bot tokens for -chatd-addr: a file of name<TAB>token lines, as `chatd bots` prints")
	fs.StringVar(&cfg.chatdArgs, "chatd-args", "", "extra flags for the chatd that chatbench starts, e.g. \"-debug-addr 127.0.0.1:6060\"")

	fs.StringVar(&cfg.nginxBin, "nginx", "/usr/sbin/nginx", "nginx binary")
	fs.StringVar(&cfg.nchanModule, "nchan-module", "/usr/lib/nginx/modules/ngx_nchan_module.so", "nchan dynamic module")
	fs.StringVar(&cfg.nchanConf, "nchan-conf", "", "nchan configuration template (default: bench/nchan.conf of the module)")
	fs.IntVar(&cfg.nchanWorkers, "nchan-workers", runtime.NumCPU(), "nginx worker processes")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the servers' temporary directories (databases, logs)")

	fs.IntVar(&cfg.payload, "payload", 128, "message size in bytes")
	fs.DurationVar(&cfg.pollTimeout, "poll-timeout", 25*time.Second, "long-poll timeout the clients ask for")
	fs.IntVar(&cfg.connConc, "connect-concurrency", 200, "clients connecting at once while a scenario starts")
	fs.DurationVar(&cfg.settleTimeout, "settle-timeout", 3*time.Minute, "longest wait for the server to hold every client's poll before measuring")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "how long to wait for deliveries after posting stops")

	fs.IntVar(&cfg.idleClients, "idle-clients", 18000, "idle: held long-polls")
	fs.DurationVar(&cfg.idleHold, "idle-hold", 2*time.Minute, "idle: how long to hold them")
	fs.DurationVar(&cfg.idlePoll, "idle-poll-timeout", 55*time.Second, "idle: long-poll timeout")

	fs.IntVar(&cfg.fanListeners, "fanout-listeners", 1000, "fanout: listeners in the room")
	fs.IntVar(&cfg.fanPosters, "fanout-posters", 8, "fanout: posters sharing the rate")
	fanRates := fs.String("fanout-rates", "10,25,50,75,100,125,150,200,250,300,400,500", "fanout: messages/s of each step")
	fs.DurationVar(&cfg.fanStep, "fanout-step", 5*time.Second, "fanout: duration of each step")
	fs.DurationVar(&cfg.fanP99, "fanout-p99", 20*time.Millisecond, "fanout: a step is clean only with p99 up to this")

	fs.IntVar(&cfg.largeListeners, "large-listeners", 5000, "large: listeners in the room")
	fs.IntVar(&cfg.largePosters, "large-posters", 5, "large: posters sharing the rate")
	fs.Float64Var(&cfg.largeRate, "large-rate", 10, "large: messages/s")
	fs.DurationVar(&cfg.largeDur, "large-duration", 20*time.Second, "large: measured duration")
	fs.DurationVar(&cfg.largeP99, "large-p99", 100*time.Millisecond, "large: p99 target")

	fs.IntVar(&cfg.manyRooms, "many-rooms", 100, "many: rooms")
	fs.IntVar(&cfg.manyMembers, "many-members", 10, "many: listeners per room (each room also has one poster)")
	fs.Float64Var(&cfg.manyRate, "many-rate", 500, "many: messages/s over all rooms")
	fs.DurationVar(&cfg.manyDur, "many-duration", 20*time.Second, "many: measured duration")
	fs.DurationVar(&cfg.manyP99, "many-p99", 5*time.Millisecond, "many: p99 target")

	fs.IntVar(&cfg.durPosters, "durable-posters", 128, "durable: concurrent posters")
	fs.IntVar(&cfg.durRooms, "durable-rooms", 16, "durable: rooms they post to")
	fs.DurationVar(&cfg.durDur, "durable-duration", 10*time.Second, "durable: measured duration")

	fs.IntVar(&cfg.stormClients, "storm-clients", 5000, "storm: clients returning at once")
	fs.IntVar(&cfg.stormBacklog, "storm-backlog", 1000, "storm: messages each client is behind")
	fs.IntVar(&cfg.stormPosters, "storm-posters", 8, "storm: posters writing the backlog")
	fs.DurationVar(&cfg.stormTimeout, "storm-timeout", 4*time.Minute, "storm: give up waiting for catch-up after this")

	fs.IntVar(&cfg.smokeClients, "smoke-clients", 300, "smoke: listeners")
	fs.IntVar(&cfg.smokeRooms, "smoke-rooms", 3, "smoke: rooms")
	fs.IntVar(&cfg.smokePosters, "smoke-posters", 2, "smoke: posters per room")
	fs.Float64Var(&cfg.smokeRate, "smoke-rate", 60, "smoke: messages/s over all rooms")
	fs.DurationVar(&cfg.smokeDur, "smoke-duration", 3*time.Second, "smoke: posting duration")

	fs.StringVar(&cfg.mdOut, "md", "", "write the Markdown report to this file (it always goes to stdout)")
	fs.StringVar(&cfg.svgOut, "svg", "", "write the latency chart to this SVG file")
	fs.StringVar(&cfg.jsonOut, "json", "", "write all results as JSON to this file")
	fs.Float64Var(&cfg.quietLoad, "quiet-load", 0, "before each scenario, wait for the 1-minute load average to fall below this (0: don't wait)")
	fs.DurationVar(&cfg.quietWait, "quiet-wait", 2*time.Minute, "longest wait for -quiet-load")
	fs.DurationVar(&cfg.fsyncProbe, "fsync-probe", 3*time.Second, "before each scenario on a server that stores to disk, time fsyncs in its data directory for this long (0: don't)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the harness's own CPU profile here")
	fs.StringVar(&cfg.replot, "replot", "", "make the report and chart again from a run recorded with -json, without measuring")
	fs.StringVar(&cfg.note, "note", "", "a line to print under the report's heading, e.g. the chatd commit measured")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.systems = splitList(*systems)
	cfg.scenarios = splitList(*scenarios)
	for _, s := range cfg.systems {
		if s != "chatd" && s != "nchan" {
			return nil, fmt.Errorf("-systems: unknown system %q", s)
		}
	}
	for _, s := range cfg.scenarios {
		if !contains(scenarioNames, s) {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (have %s)", s, strings.Join(scenarioNames, ", "))
		}
	}
	for _, f := range splitList(*fanRates) {
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("-fanout-rates: bad rate %q", f)
		}
		cfg.fanRates = append(cfg.fanRates, r)
	}
	if cfg.smoke {
		cfg.scenarios = []string{"smoke"}
		if !flagSet(fs, "systems") {
			cfg.systems = []string{"chatd"}
		}
	}
	if cfg.payload < 64 || cfg.payload > 4000 {
		return nil, fmt.Errorf("-payload must be between 64 and 4000 bytes")
	}
	if cfg.smokeRooms < 1 || cfg.smokeClients < cfg.smokeRooms {
		return nil, fmt.Errorf("-smoke-clients must be at least -smoke-rooms")
	}
	if cfg.pollTimeout < time.Second || cfg.pollTimeout > 55*time.Second || cfg.idlePoll > 55*time.Second {
		return nil, fmt.Errorf("poll timeouts must be between 1s and 55s")
	}
	return cfg, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// raiseFDLimit lifts the soft limit on open files to the hard limit: each
// simulated client holds a connection.
func raiseFDLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("set RLIMIT_NOFILE: %w", err)
	}
	return lim.Cur, nil
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatbench:", err)
	}
	os.Exit(code)
}

// run does the whole invocation and returns the exit code: 0, or 1 when
// the smoke check failed or a scenario could not run.
func run(ctx context.Context, cfg *config, log *slog.Logger) (int, error) {
	if cfg.replot != "" {
		if err := replot(cfg); err != nil {
			return 1, err
		}
		return 0, nil
	}
	// The harness allocates little per delivery; a lazy GC keeps its own
	// CPU cost down while it measures the servers.
	debug.SetGCPercent(400)
	limit, err := raiseFDLimit()
	if err != nil {
		return 1, err
	}
	need := 0
	if contains(cfg.scenarios, "idle") {
		need = cfg.idleClients
	}
	need = max(need, cfg.stormClients*boolInt(contains(cfg.scenarios, "storm")), cfg.largeListeners*boolInt(contains(cfg.scenarios, "large")))
	if uint64(need)+200 > limit {
		return 1, fmt.Errorf("file descriptor limit %d is too low for %d clients; lower the client counts", limit, need)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return 1, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 1, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	var systems []system
	defer func() {
		for _, s := range systems {
			if err := s.stop(); err != nil {
				log.Error("stop server", "system", s.name(), "err", err)
			}
		}
	}()
	for _, name := range cfg.systems {
		var s system
		var err error
		switch name {
		case "chatd":
			if cfg.chatdAddr != "" {
				s, err = attachChatd(ctx, cfg)
			} else {
				s, err = startChatd(ctx, cfg, botsNeeded(cfg))
			}
		case "nchan":
			s, err = startNchan(ctx, cfg)
		}
		if err != nil {
			return 1, err
		}
		log.Info("server ready", "system", name, "pids", s.procs())
		systems = append(systems, s)
	}

	started := time.Now()
	var results []result
	failed := false
	for _, sc := range cfg.scenarios {
		for _, s := range systems {
			if ctx.Err() != nil {
				return 1, ctx.Err()
			}
			r := runScenario(ctx, cfg, s, sc, log)
			failed = failed || r.Failed != ""
			results = append(results, r)
		}
	}
	if err := writeOutputs(cfg, newRecord(cfg, results, started, time.Since(started))); err != nil {
		return 1, err
	}
	if cfg.smoke {
		for _, r := range results {
			if r.Failed != "" || !r.allMet() {
				return 1, fmt.Errorf("smoke check failed on %s", r.System)
			}
		}
		log.Info("smoke check passed")
	}
	if failed {
		return 1, errors.New("some scenarios failed; see the report")
	}
	return 0, nil
}

// writeOutputs prints the Markdown report and writes the files asked for.
func writeOutputs(cfg *config, rec *runRecord) error {
	rep := &report{rec: rec}
	md := rep.markdown()
	fmt.Fprint(cfg.stdout, md)
	if cfg.mdOut != "" {
		if err := os.WriteFile(cfg.mdOut, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if cfg.svgOut != "" {
		if err := os.WriteFile(cfg.svgOut, []byte(rep.svg()), 0o644); err != nil {
			return fmt.Errorf("write chart: %w", err)
		}
	}
	if cfg.jsonOut != "" && cfg.replot == "" {
		b, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			return fmt.Errorf("encode results: %w", err)
		}
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	return nil
}

// replot makes the report and chart again from a run recorded with -json.
func replot(cfg *config) error {
	b, err := os.ReadFile(cfg.replot)
	if err != nil {
		return fmt.Errorf("replot: %w", err)
	}
	var rec runRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("replot %s: %w", cfg.replot, err)
	}
	if len(rec.Results) == 0 {
		return fmt.Errorf("replot %s: no results (not written by chatbench -json?)", cfg.replot)
	}
	if cfg.note != "" {
		rec.Note = cfg.note // a correction or addition to the recorded note
	}
	for i := range rec.Results {
		addFanoutPeak(&rec.Results[i])
	}
	return writeOutputs(cfg, &rec)
}

// boolInt is 1 for true and 0 for false.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
