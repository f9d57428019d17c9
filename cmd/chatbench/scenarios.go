package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// result is what one scenario measured on one system.
type result struct {
	Scenario string  `json:"scenario"`
	System   string  `json:"system"`
	Load1    float64 `json:"load1"` // one-minute load average when it started
	// Fsync is the probe of the server's data directory before the
	// scenario; Commits the server's own commit times over the measured
	// steps, and Writes how long its writes' callers waited, queueing
	// behind other writes included (all only for a server that stores to
	// disk).
	Fsync   *fsyncProbe  `json:"fsync_probe,omitempty"`
	Commits *timeSummary `json:"commits,omitempty"`
	Writes  *timeSummary `json:"writes,omitempty"`
	Metrics []metric     `json:"metrics"`
	Steps   []stepResult `json:"steps,omitempty"`
	Errors  []string     `json:"errors,omitempty"`
	Failed  string       `json:"failed,omitempty"`
}

// metric is one figure of a result. Better says which way is good: +1
// higher, -1 lower, 0 neither (a count that must be zero, or context), and
// then the report gives no ratio.
type metric struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Better int     `json:"better"`
	Prefix string  `json:"prefix,omitempty"` // "> " for a lower bound
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
}

// stepResult is one posting step: the offered load and what came of it.
type stepResult struct {
	Rate        float64 `json:"rate"`          // offered messages/s
	Offered     float64 `json:"offered"`       // offered deliveries/s
	Delivered   float64 `json:"delivered"`     // deliveries/s received during the step
	Acked       float64 `json:"acked"`         // acknowledged messages/s
	P50         float64 `json:"p50_ms"`        // delivery latency
	P90         float64 `json:"p90_ms"`        //
	P99         float64 `json:"p99_ms"`        //
	Max         float64 `json:"max_ms"`        //
	AckP50      float64 `json:"ack_p50_ms"`    // send to acknowledgement
	AckP99      float64 `json:"ack_p99_ms"`    //
	ServerCPU   float64 `json:"server_cpu_s"`  // over the step
	HarnessCPU  float64 `json:"harness_cpu_s"` //
	ServerUS    float64 `json:"server_us_per_delivery"`
	HarnessUS   float64 `json:"harness_us_per_delivery"`
	ServerRSS   float64 `json:"server_rss_mib"`
	PostErrors  int64   `json:"post_errors"`
	Clean       bool    `json:"clean"`
	Seconds     float64 `json:"seconds"`
	Deliveries  int64   `json:"deliveries"`
	Listeners   int     `json:"listeners"`
	MessagesAck int64   `json:"messages_acked"`
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// atLeast sets the metric's target to a minimum of v, described by text,
// and judges it.
func (m metric) atLeast(v float64, text string) metric {
	ok := m.Value >= v
	m.Target, m.Met = text, &ok
	return m
}

// atMost sets the metric's target to a maximum of v, described by text,
// and judges it.
func (m metric) atMost(v float64, text string) metric {
	ok := m.Value <= v
	m.Target, m.Met = text, &ok
	return m
}

// zero builds a count that must be zero.
func zero(name string, v int64) metric {
	ok := v == 0
	return metric{Name: name, Value: float64(v), Better: 0, Target: "0", Met: &ok}
}

// scenarioNames lists the scenarios in the order they run. Idle goes first
// so its per-poll memory is measured on a server that has not yet grown
// and freed heap for other scenarios.
var scenarioNames = []string{"idle", "fanout", "large", "many", "durable", "storm"}

// botsNeeded returns how many chatd bot accounts the selected scenarios use
// (each client, listener or poster, is its own bot).
func botsNeeded(cfg *config) int {
	n := 0
	for _, s := range cfg.scenarios {
		switch s {
		case "idle":
			n += cfg.idleClients
		case "fanout":
			n += cfg.fanListeners + cfg.fanPosters
		case "large":
			n += cfg.largeListeners + cfg.largePosters
		case "many":
			n += cfg.manyRooms * (cfg.manyMembers + 1)
		case "durable":
			n += cfg.durPosters
		case "storm":
			n += cfg.stormClients + cfg.stormPosters
		case "smoke":
			n += cfg.smokeClients + cfg.smokeRooms*cfg.smokePosters
		}
	}
	return n
}

// runScenario runs one scenario on one system and never panics the run: a
// failure is recorded in the result.
func runScenario(ctx context.Context, cfg *config, sys system, name string, log *slog.Logger) result {
	waitQuiet(ctx, cfg, log)
	res := result{Scenario: name, System: sys.name(), Load1: loadAvg()}
	if dir := sys.dataDir(); dir != "" && cfg.fsyncProbe > 0 {
		p, err := probeFsync(ctx, dir, cfg.fsyncProbe)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		} else {
			res.Fsync = &p
			log.Info("fsync probe", "dir", dir, "p50_ms", p.P50Ms, "p99_ms", p.P99Ms, "max_ms", p.MaxMs)
		}
	}
	log.Info("scenario start", "scenario", name, "system", sys.name(), "load1", res.Load1)
	start := time.Now()
	var err error
	switch name {
	case "idle":
		err = runIdle(ctx, cfg, sys, &res, log)
	case "fanout":
		err = runFanout(ctx, cfg, sys, &res, log)
	case "large":
		err = runSteady(ctx, cfg, sys, &res, log, "large",
			[]groupSpec{{listeners: cfg.largeListeners, posters: cfg.largePosters}},
			cfg.largeRate, cfg.largeDur, cfg.largeP99)
	case "many":
		specs := make([]groupSpec, cfg.manyRooms)
		for i := range specs {
			specs[i] = groupSpec{listeners: cfg.manyMembers, posters: 1}
		}
		err = runSteady(ctx, cfg, sys, &res, log, "many", specs, cfg.manyRate, cfg.manyDur, cfg.manyP99)
	case "durable":
		err = runDurable(ctx, cfg, sys, &res, log)
	case "storm":
		err = runStorm(ctx, cfg, sys, &res, log)
	case "smoke":
		err = runSmoke(ctx, cfg, sys, &res, log)
	default:
		err = fmt.Errorf("unknown scenario %q", name)
	}
	if err != nil {
		res.Failed = err.Error()
		log.Error("scenario failed", "scenario", name, "system", sys.name(), "err", err)
	}
	log.Info("scenario done", "scenario", name, "system", sys.name(), "took", time.Since(start).Round(time.Second))
	return res
}

// waitQuiet waits, up to cfg.quietWait, for the machine's load average to
// drop below cfg.quietLoad: other people's builds share these cores.
func waitQuiet(ctx context.Context, cfg *config, log *slog.Logger) {
	if cfg.quietLoad <= 0 {
		return
	}
	deadline := time.Now().Add(cfg.quietWait)
	for l := loadAvg(); l >= cfg.quietLoad && time.Now().Before(deadline) && ctx.Err() == nil; l = loadAvg() {
		log.Info("waiting for a quieter machine", "load1", l, "want_below", cfg.quietLoad)
		pause(ctx, 5*time.Second)
	}
}

// startFleet provisions specs, brings every client online and into its
// room, starts the poll loops and waits until the server holds every poll
// and no reply has come for a moment.
func startFleet(ctx context.Context, cfg *config, sys system, scenario string, specs []groupSpec, opts provisionOpts, pollTimeout time.Duration, log *slog.Logger) (*phase, error) {
	return startFleetWith(ctx, cfg, sys, scenario, specs, opts, pollTimeout, log, nil)
}

// startFleetWith is startFleet with a hook that adjusts the clients before
// they start.
func startFleetWith(ctx context.Context, cfg *config, sys system, scenario string, specs []groupSpec, opts provisionOpts, pollTimeout time.Duration, log *slog.Logger, adjust func(*fleet)) (*phase, error) {
	f, err := sys.provision(ctx, scenario, specs, opts)
	if err != nil {
		return nil, err
	}
	if adjust != nil {
		adjust(f)
	}
	c := *cfg
	c.pollTimeout = pollTimeout
	ph := newPhase(ctx, sys, f, &c)
	t := time.Now()
	if err := ph.online(cfg.connConc, log); err != nil {
		ph.stop()
		return nil, err
	}
	if err := ph.startListeners(); err != nil {
		ph.stop()
		return nil, err
	}
	if err := ph.settle(len(f.listeners), cfg.settleTimeout); err != nil {
		ph.stop()
		return nil, err
	}
	log.Info("polls held", "listeners", len(f.listeners), "took", time.Since(t).Round(time.Millisecond))
	return ph, nil
}

// finish adds the counts every scenario reports.
func finish(res *result, ph *phase) {
	s := ph.stats
	var postErrs int64
	for _, st := range s.steps {
		postErrs += st.postErrors.Load()
	}
	res.Metrics = append(res.Metrics,
		zero("gaps", s.gaps.Load()),
		zero("duplicates", s.dups.Load()),
		zero("missing after the drain", s.missing.Load()),
		zero("errors", s.pollErrs.Load()+postErrs),
	)
	res.Errors = append(res.Errors, s.errorSamples(8)...)
	var all storeHists
	timed := false
	for k, st := range s.steps {
		if k >= int(ph.lastStep.Load()) {
			break
		}
		if st.store != nil {
			all, timed = all.plus(*st.store), true
		}
	}
	if timed {
		c := all.commits.summary()
		res.Commits = &c
		if all.writes.n > 0 {
			w := all.writes.summary()
			res.Writes = &w
		}
	}
}

// stepResults turns a phase's step counters into results.
func stepResults(ph *phase, steps []step) []stepResult {
	n := len(ph.fleet.listeners)
	var out []stepResult
	for k, st := range ph.stats.steps {
		if k >= int(ph.lastStep.Load()) {
			break
		}
		secs := st.win.Elapsed.Seconds()
		if secs <= 0 {
			continue
		}
		lat := st.lat.summarize()
		ack := st.ackLat.summarize()
		recv := st.byRecv.Load()
		r := stepResult{
			Rate:        steps[k].rate,
			Delivered:   float64(recv) / secs,
			Acked:       float64(st.acked.Load()) / secs,
			P50:         ms(lat.P50),
			P90:         ms(lat.P90),
			P99:         ms(lat.P99),
			Max:         ms(lat.Max),
			AckP50:      ms(ack.P50),
			AckP99:      ms(ack.P99),
			ServerCPU:   st.win.ServerCPU.Seconds(),
			HarnessCPU:  st.win.HarnessCPU.Seconds(),
			ServerRSS:   float64(st.win.Server.RSS) / (1 << 20),
			PostErrors:  st.postErrors.Load(),
			Seconds:     secs,
			Deliveries:  recv,
			Listeners:   n,
			MessagesAck: st.acked.Load(),
		}
		// The offered load is what the posters managed to have
		// acknowledged, times the listeners of each message's room.
		r.Offered = r.Acked * float64(n) / float64(max(len(ph.fleet.groups), 1))
		if recv > 0 {
			r.ServerUS = st.win.ServerCPU.Seconds() * 1e6 / float64(recv)
			r.HarnessUS = st.win.HarnessCPU.Seconds() * 1e6 / float64(recv)
		}
		out = append(out, r)
	}
	return out
}

// runIdle holds cfg.idleClients long-polls for cfg.idleHold and measures
// what each costs the server. chatd clients are bots in no room; nchan
// clients each subscribe to a channel of their own.
func runIdle(ctx context.Context, cfg *config, sys system, res *result, log *slog.Logger) error {
	n := cfg.idleClients
	specs := make([]groupSpec, n)
	for i := range specs {
		specs[i] = groupSpec{listeners: 1}
	}
	before, err := readProc(sys.procs())
	if err != nil {
		return err
	}
	ph, err := startFleetWith(ctx, cfg, sys, "idle", specs, provisionOpts{noRoom: true}, cfg.idlePoll, log, func(f *fleet) {
		// Spread the first timeouts over 5 s..idlePoll, as if the clients
		// had arrived at random times; afterwards each polls for idlePoll.
		spread := cfg.idlePoll - 5*time.Second
		for i, l := range f.listeners {
			l.firstTimeout = 5*time.Second + spread*time.Duration(i)/time.Duration(max(len(f.listeners), 1))
		}
	})
	if err != nil {
		return err
	}
	w := openWindow(sys.procs())
	minHeld, minPending := n, int64(n)
	var heldSamples []int
	var memSum, memMax int64
	samples := 0
	end := time.Now().Add(cfg.idleHold)
	for time.Now().Before(end) && ctx.Err() == nil {
		pause(ctx, min(5*time.Second, time.Until(end)))
		held, err := sys.held(ctx)
		if err == nil && held >= 0 {
			minHeld = min(minHeld, held)
			heldSamples = append(heldSamples, held)
		}
		minPending = min(minPending, ph.stats.pending.Load())
		p, err := readProc(sys.procs())
		if err == nil {
			memSum += p.PSS
			memMax = max(memMax, p.PSS)
			samples++
		}
		log.Info("holding", "held", held, "pending", ph.stats.pending.Load(), "pss_mib", p.PSS>>20, "errors", ph.stats.pollErrs.Load())
	}
	win, werr := w.close()
	ph.stop()
	if werr != nil {
		return werr
	}
	medianHeld := minHeld
	if len(heldSamples) > 0 {
		slices.Sort(heldSamples)
		medianHeld = heldSamples[len(heldSamples)/2]
	} else {
		minHeld, medianHeld = int(minPending), int(minPending) // no server-side count: use the harness's own
	}
	avg := float64(memSum) / float64(max(samples, 1))
	perPoll := (avg - float64(before.PSS)) / float64(n) / 1024
	res.Metrics = append(res.Metrics,
		metric{Name: "held long-polls (median of 5 s samples)", Value: float64(medianHeld), Better: +1}.atLeast(18000, "≥ 18,000"),
		metric{Name: "held long-polls (lowest sample)", Value: float64(minHeld), Better: +1},
		metric{Name: "hold time", Value: win.Elapsed.Seconds(), Unit: "s"},
		metric{Name: "server memory per held poll", Value: perPoll, Unit: "KiB", Better: -1}.atMost(20, "≤ 20 KiB"),
		metric{Name: "server memory while holding", Value: avg / (1 << 20), Unit: "MiB", Better: -1},
		metric{Name: "server CPU while holding", Value: win.ServerCPU.Seconds(), Unit: "s", Better: -1},
		metric{Name: "harness CPU while holding", Value: win.HarnessCPU.Seconds(), Unit: "s"},
		metric{Name: "heartbeats (empty replies)", Value: float64(ph.stats.empty.Load())},
	)
	finish(res, ph)
	return nil
}

// runFanout raises the message rate into one room step by step and finds
// the knee: the highest delivery rate that stays clean (everything offered
// delivered, p99 within cfg.fanP99, no error).
func runFanout(ctx context.Context, cfg *config, sys system, res *result, log *slog.Logger) error {
	specs := []groupSpec{{listeners: cfg.fanListeners, posters: cfg.fanPosters}}
	ph, err := startFleet(ctx, cfg, sys, "fanout", specs, provisionOpts{}, cfg.pollTimeout, log)
	if err != nil {
		return err
	}
	steps := make([]step, len(cfg.fanRates))
	for i, r := range cfg.fanRates {
		steps[i] = step{rate: r, dur: cfg.fanStep}
	}
	// The sweep goes on past the knee, for the chart, until two steps in a
	// row are plainly overloaded: deliveries or posts falling behind the
	// offered rate, or p99 beyond fifty times the limit.
	overloaded := 0
	judge := func(k int) bool {
		st := ph.stats.steps[k]
		lat := st.lat.summarize()
		offered := float64(st.acked.Load()) * float64(cfg.fanListeners)
		recv := float64(st.byRecv.Load())
		clean := st.postErrors.Load() == 0 && recv >= 0.95*offered && lat.P99 <= cfg.fanP99 &&
			ph.stats.gaps.Load() == 0 && ph.stats.dups.Load() == 0
		log.Info("step", "rate", steps[k].rate, "delivered/s", recv/cfg.fanStep.Seconds(),
			"p50", lat.P50, "p99", lat.P99, "server_cpu", st.win.ServerCPU, "harness_cpu", st.win.HarnessCPU, "clean", clean)
		if recv < 0.9*offered || lat.P99 > 50*cfg.fanP99 || float64(st.acked.Load()) < 0.9*steps[k].rate*cfg.fanStep.Seconds() {
			overloaded++
		} else {
			overloaded = 0
		}
		return overloaded < 2
	}
	ph.post(steps, judge)
	ph.drain(cfg.drain)
	ph.stop()
	res.Steps = stepResults(ph, steps)
	knee := -1
	for i := range res.Steps {
		s := &res.Steps[i]
		s.Clean = s.PostErrors == 0 && s.Delivered >= 0.95*s.Offered && s.P99 <= ms(cfg.fanP99) &&
			ph.stats.gaps.Load() == 0 && ph.stats.dups.Load() == 0
		if s.Clean && (knee < 0 || s.Delivered > res.Steps[knee].Delivered) {
			knee = i
		}
	}
	if knee >= 0 {
		k := res.Steps[knee]
		res.Metrics = append(res.Metrics,
			metric{Name: "knee: clean deliveries/s", Value: k.Delivered, Unit: "/s", Better: +1}.atLeast(85000, "≥ 85,000"),
			metric{Name: "knee: messages/s into the room", Value: k.Acked, Unit: "/s", Better: +1},
			metric{Name: "knee: p50 latency", Value: k.P50, Unit: "ms", Better: -1},
			metric{Name: "knee: p99 latency", Value: k.P99, Unit: "ms", Better: -1}.atMost(ms(cfg.fanP99), fmt.Sprintf("≤ %v", cfg.fanP99)),
			metric{Name: "knee: server CPU per delivery", Value: k.ServerUS, Unit: "µs", Better: -1},
			metric{Name: "knee: harness CPU per delivery", Value: k.HarnessUS, Unit: "µs"},
		)
	} else {
		res.Metrics = append(res.Metrics, metric{Name: "knee: clean deliveries/s", Value: 0, Unit: "/s", Better: +1}.atLeast(85000, "≥ 85,000"))
	}
	addFanoutPeak(res)
	finish(res, ph)
	return nil
}

// addFanoutPeak adds the fan-out's peak: the highest delivery rate at which
// the listeners still received what the server acknowledged (95% within
// the step), whatever the latency. It says how far a system goes when the
// knee, bound by the latency limit, says nothing. Results recorded before
// it existed get it when replotted.
func addFanoutPeak(res *result) {
	if res.Scenario != "fanout" {
		return
	}
	if _, ok := metricByName(*res, "peak: deliveries/s"); ok {
		return
	}
	peak := -1
	for i, s := range res.Steps {
		if s.Delivered >= 0.95*s.Offered && s.Offered > 0 && (peak < 0 || s.Delivered > res.Steps[peak].Delivered) {
			peak = i
		}
	}
	if peak < 0 {
		return
	}
	p := res.Steps[peak]
	add := []metric{
		{Name: "peak: deliveries/s", Value: p.Delivered, Unit: "/s", Better: +1},
		{Name: "peak: p99 latency", Value: p.P99, Unit: "ms", Better: -1},
		{Name: "peak: server CPU per delivery", Value: p.ServerUS, Unit: "µs", Better: -1},
		{Name: "peak: harness CPU per delivery", Value: p.HarnessUS, Unit: "µs"},
	}
	at := len(res.Metrics) // before the counts that must be zero, if present
	if i := slices.IndexFunc(res.Metrics, func(m metric) bool { return m.Name == "gaps" }); i >= 0 {
		at = i
	}
	res.Metrics = slices.Insert(res.Metrics, at, add...)
}

// runSteady posts at one rate for dur over the groups of specs: the large
// room and the many rooms.
func runSteady(ctx context.Context, cfg *config, sys system, res *result, log *slog.Logger, name string, specs []groupSpec, rate float64, dur, p99 time.Duration) error {
	ph, err := startFleet(ctx, cfg, sys, name, specs, provisionOpts{}, cfg.pollTimeout, log)
	if err != nil {
		return err
	}
	steps := []step{{rate: rate, dur: dur}}
	ph.post(steps, nil)
	ph.drain(cfg.drain)
	ph.stop()
	res.Steps = stepResults(ph, steps)
	if len(res.Steps) == 0 {
		return fmt.Errorf("%s: no measurement", name)
	}
	s := res.Steps[0]
	log.Info("measured", "delivered/s", s.Delivered, "p50", s.P50, "p99", s.P99, "max", s.Max, "server_us", s.ServerUS)
	res.Metrics = append(res.Metrics,
		metric{Name: "messages/s posted", Value: s.Acked, Unit: "/s"},
		metric{Name: "deliveries/s", Value: s.Delivered, Unit: "/s", Better: +1},
		metric{Name: "p50 latency", Value: s.P50, Unit: "ms", Better: -1},
		metric{Name: "p90 latency", Value: s.P90, Unit: "ms", Better: -1},
		metric{Name: "p99 latency", Value: s.P99, Unit: "ms", Better: -1}.atMost(ms(p99), fmt.Sprintf("≤ %v", p99)),
		metric{Name: "max latency", Value: s.Max, Unit: "ms", Better: -1},
		metric{Name: "server CPU per delivery", Value: s.ServerUS, Unit: "µs", Better: -1},
		metric{Name: "harness CPU per delivery", Value: s.HarnessUS, Unit: "µs"},
		metric{Name: "server RSS", Value: s.ServerRSS, Unit: "MiB", Better: -1},
	)
	finish(res, ph)
	return nil
}

// runDurable has cfg.durPosters posters post as fast as each gets its
// acknowledgement, for cfg.durDur. In chatd an acknowledgement is a
// committed, synced SQLite transaction; nchan keeps messages in memory.
func runDurable(ctx context.Context, cfg *config, sys system, res *result, log *slog.Logger) error {
	rooms := max(1, min(cfg.durRooms, cfg.durPosters))
	specs := make([]groupSpec, rooms)
	for i := range cfg.durPosters {
		specs[i%rooms].posters++
	}
	ph, err := startFleet(ctx, cfg, sys, "durable", specs, provisionOpts{}, cfg.pollTimeout, log)
	if err != nil {
		return err
	}
	steps := []step{{rate: 0, dur: cfg.durDur}}
	ph.post(steps, nil)
	ph.stop()
	res.Steps = stepResults(ph, steps)
	if len(res.Steps) == 0 {
		return fmt.Errorf("durable: no measurement")
	}
	s := res.Steps[0]
	perAck := 0.0
	if s.MessagesAck > 0 {
		perAck = s.ServerCPU * 1e6 / float64(s.MessagesAck)
	}
	log.Info("measured", "acked/s", s.Acked, "ack_p50", s.AckP50, "ack_p99", s.AckP99)
	res.Metrics = append(res.Metrics,
		metric{Name: "acknowledged messages/s", Value: s.Acked, Unit: "/s", Better: +1}.atLeast(10000, "≥ 10,000"),
		metric{Name: "acknowledgement p50", Value: s.AckP50, Unit: "ms", Better: -1},
		metric{Name: "acknowledgement p99", Value: s.AckP99, Unit: "ms", Better: -1},
		metric{Name: "server CPU per message", Value: perAck, Unit: "µs", Better: -1},
		metric{Name: "harness CPU", Value: s.HarnessCPU, Unit: "s"},
	)
	finish(res, ph)
	return nil
}

// runStorm puts cfg.stormBacklog messages into a room whose
// cfg.stormClients listeners are away, then lets them all return at once
// and times how long until every one has every message. In chatd each
// client resumes from its own cursor; nchan subscribers start at the oldest
// buffered message and fetch one message per request.
func runStorm(ctx context.Context, cfg *config, sys system, res *result, log *slog.Logger) error {
	specs := []groupSpec{{listeners: cfg.stormClients, posters: cfg.stormPosters}}
	f, err := sys.provision(ctx, "storm", specs, provisionOpts{behind: true})
	if err != nil {
		return err
	}
	ph := newPhase(ctx, sys, f, cfg)
	if err := ph.online(cfg.connConc, log); err != nil {
		ph.stop()
		return err
	}
	t := time.Now()
	ph.post([]step{{rate: 0, dur: 5 * time.Minute, count: int64(cfg.stormBacklog)}}, nil)
	posted := int64(0)
	for _, p := range f.posters {
		posted += p.acked.Load()
	}
	log.Info("backlog posted", "messages", posted, "took", time.Since(t).Round(time.Millisecond))
	for _, l := range f.listeners {
		l.target = expected(l)
	}
	w := openWindow(sys.procs())
	t0 := mono()
	if err := ph.startListeners(); err != nil {
		w.close()
		ph.stop()
		return err
	}
	caught := ph.drain(cfg.stormTimeout)
	win, werr := w.close()
	ph.stop()
	if werr != nil {
		return werr
	}
	var times []float64
	for _, l := range f.listeners {
		if d := l.done.Load(); d > 0 {
			times = append(times, float64(d-t0)/1e9)
		}
	}
	slices.Sort(times)
	all, allPrefix := 0.0, ""
	if len(times) > 0 {
		all = times[len(times)-1]
	}
	if len(times) < len(f.listeners) {
		all, allPrefix = win.Elapsed.Seconds(), "> " // not everyone made it
	}
	medianPrefix := ""
	if len(times) <= len(f.listeners)/2 {
		medianPrefix = "> "
	}
	deliveries := ph.stats.delivered.Load()
	log.Info("storm", "caught_up", len(times), "of", len(f.listeners), "all_s", all, "polls", ph.stats.polls.Load())
	if !caught {
		res.Errors = append(res.Errors, fmt.Sprintf("only %d of %d clients caught up within %v", len(times), len(f.listeners), cfg.stormTimeout))
	}
	res.Metrics = append(res.Metrics,
		metric{Name: "clients caught up", Value: float64(len(times)), Better: +1}.atLeast(float64(len(f.listeners)), fmt.Sprintf("all %d", len(f.listeners))),
		metric{Name: "messages behind", Value: float64(posted)},
		metric{Name: "backlog delivered", Value: 100 * float64(deliveries) / float64(max(int64(len(f.listeners))*posted, 1)), Unit: "%", Better: +1},
		metric{Name: "time until all caught up", Value: all, Prefix: allPrefix, Unit: "s", Better: -1},
		metric{Name: "median client caught up after", Value: medianOr(times, len(f.listeners), win.Elapsed.Seconds()), Prefix: medianPrefix, Unit: "s", Better: -1},
		metric{Name: "deliveries/s during the storm", Value: float64(deliveries) / max(win.Elapsed.Seconds(), 1e-9), Unit: "/s", Better: +1},
		metric{Name: "requests per client", Value: float64(ph.stats.polls.Load()) / float64(len(f.listeners)), Better: -1},
		metric{Name: "server CPU per delivery", Value: win.ServerCPU.Seconds() * 1e6 / float64(max(deliveries, 1)), Unit: "µs", Better: -1},
		metric{Name: "harness CPU per delivery", Value: win.HarnessCPU.Seconds() * 1e6 / float64(max(deliveries, 1)), Unit: "µs"},
	)
	finish(res, ph)
	return nil
}

// medianOr returns the median of n clients' catch-up times, of which
// times holds those that finished, or instead if fewer than half did.
func medianOr(times []float64, n int, instead float64) float64 {
	if len(times) <= n/2 {
		return instead
	}
	return times[n/2]
}

// runSmoke is the CI check: a few hundred clients in a few rooms for a
// few seconds, where every message must reach every member exactly once.
// No timing is judged.
func runSmoke(ctx context.Context, cfg *config, sys system, res *result, log *slog.Logger) error {
	specs := make([]groupSpec, cfg.smokeRooms)
	for i := range specs {
		specs[i] = groupSpec{listeners: cfg.smokeClients / cfg.smokeRooms, posters: cfg.smokePosters}
	}
	ph, err := startFleet(ctx, cfg, sys, "smoke", specs, provisionOpts{}, cfg.pollTimeout, log)
	if err != nil {
		return err
	}
	steps := []step{{rate: cfg.smokeRate, dur: cfg.smokeDur}}
	ph.post(steps, nil)
	caught := ph.drain(cfg.drain)
	ph.stop()
	res.Steps = stepResults(ph, steps)
	var want, acked int64
	for _, l := range ph.fleet.listeners {
		want += expected(l)
	}
	for _, p := range ph.fleet.posters {
		acked += p.acked.Load()
	}
	got := ph.stats.delivered.Load()
	res.Metrics = append(res.Metrics,
		metric{Name: "listeners", Value: float64(len(ph.fleet.listeners))},
		metric{Name: "messages acknowledged", Value: float64(acked)},
		metric{Name: "deliveries expected", Value: float64(want)},
		metric{Name: "deliveries received", Value: float64(got)},
	)
	finish(res, ph)
	if acked == 0 {
		return fmt.Errorf("smoke: no message was acknowledged")
	}
	if !caught || got != want {
		return fmt.Errorf("smoke: %d of %d deliveries arrived", got, want)
	}
	return nil
}
