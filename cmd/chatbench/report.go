package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// runRecord is one invocation's results with what a report needs to
// describe them. -json writes it and -replot reads it back, so a report and
// its chart can be made again from the recorded run.
type runRecord struct {
	Started   time.Time         `json:"started"`
	Seconds   float64           `json:"seconds"`
	Host      string            `json:"host"`
	CPUs      int               `json:"cpus"`
	Systems   []string          `json:"systems"`
	Scenarios []string          `json:"scenarios"`
	Titles    map[string]string `json:"titles"`
	Payload   int               `json:"payload"`
	FanP99MS  float64           `json:"fanout_p99_ms"`
	Nchan     string            `json:"nchan,omitempty"`
	Note      string            `json:"note,omitempty"`
	Results   []result          `json:"results"`
}

// newRecord describes a finished invocation.
func newRecord(cfg *config, results []result, started time.Time, took time.Duration) *runRecord {
	host, _ := os.Hostname()
	rec := &runRecord{
		Started: started.UTC(), Seconds: took.Seconds(), Host: host, CPUs: runtime.NumCPU(),
		Systems: cfg.systems, Scenarios: cfg.scenarios, Titles: map[string]string{},
		Payload: cfg.payload, FanP99MS: ms(cfg.fanP99), Note: cfg.note, Results: results,
	}
	for _, sc := range cfg.scenarios {
		rec.Titles[sc] = scenarioTitle(cfg, sc)
	}
	if contains(cfg.systems, "nchan") {
		if out, err := exec.Command(cfg.nginxBin, "-v").CombinedOutput(); err == nil {
			rec.Nchan = fmt.Sprintf("%s with %d worker processes", strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: ")), cfg.nchanWorkers)
		}
	}
	return rec
}

// report renders a run.
type report struct {
	rec *runRecord
}

// allMet reports whether every judged metric of r met its target.
func (r result) allMet() bool {
	for _, m := range r.Metrics {
		if m.Met != nil && !*m.Met {
			return false
		}
	}
	return true
}

// find returns the result of scenario sc on system sys.
func (rp *report) find(sc, sys string) (result, bool) {
	for _, r := range rp.rec.Results {
		if r.Scenario == sc && r.System == sys {
			return r, true
		}
	}
	return result{}, false
}

// scenarioTitle returns the recorded description of a scenario.
func (rp *report) scenarioTitle(sc string) string {
	if t := rp.rec.Titles[sc]; t != "" {
		return t
	}
	return sc
}

// scenarioTitle describes a scenario with its actual scale.
func scenarioTitle(c *config, sc string) string {
	switch sc {
	case "idle":
		return fmt.Sprintf("idle: %s held long-polls, %v", num(float64(c.idleClients)), c.idleHold)
	case "fanout":
		return fmt.Sprintf("fan-out: 1 room × %s listeners, rising rate", num(float64(c.fanListeners)))
	case "large":
		return fmt.Sprintf("large room: %s listeners, %g msg/s", num(float64(c.largeListeners)), c.largeRate)
	case "many":
		return fmt.Sprintf("many rooms: %d × %d listeners, %g msg/s in all", c.manyRooms, c.manyMembers, c.manyRate)
	case "durable":
		return fmt.Sprintf("durable writes: %d posters", c.durPosters)
	case "storm":
		return fmt.Sprintf("reconnect storm: %s clients × %s behind", num(float64(c.stormClients)), num(float64(c.stormBacklog)))
	case "smoke":
		return fmt.Sprintf("smoke: %d listeners in %d rooms", c.smokeClients, c.smokeRooms)
	}
	return sc
}

// markdown renders the summary table, the fan-out steps and any errors.
func (rp *report) markdown() string {
	var b strings.Builder
	r := rp.rec
	fmt.Fprintf(&b, "## chatbench results\n\n")
	fmt.Fprintf(&b, "Run %s UTC on %s (%d cores), %v in all. Systems: %s. Payload %d bytes. ",
		r.Started.Format("2006-01-02 15:04"), r.Host, r.CPUs,
		(time.Duration(r.Seconds) * time.Second).Round(time.Second), strings.Join(r.Systems, ", "), r.Payload)
	if r.Nchan != "" {
		fmt.Fprintf(&b, "nchan: %s. ", r.Nchan)
	}
	fmt.Fprintf(&b, "↑ higher is better, ↓ lower is better; the ratio is chatd ÷ nchan; *met* judges chatd against the issue's target.\n\n")
	if r.Note != "" {
		fmt.Fprintf(&b, "%s\n\n", r.Note)
	}

	both := contains(rp.rec.Systems, "chatd") && contains(rp.rec.Systems, "nchan")
	if both {
		b.WriteString("| scenario | figure | chatd | nchan | chatd/nchan | target | met |\n|---|---|--:|--:|--:|---|---|\n")
	} else {
		b.WriteString("| scenario | system | figure | value | target | met |\n|---|---|---|--:|---|---|\n")
	}
	for _, sc := range rp.rec.Scenarios {
		if both {
			rp.pairRows(&b, sc)
			continue
		}
		for _, sys := range rp.rec.Systems {
			r, ok := rp.find(sc, sys)
			if !ok {
				continue
			}
			if r.Failed != "" {
				fmt.Fprintf(&b, "| %s | %s | **failed** | %s | | |\n", rp.scenarioTitle(sc), sys, cell(r.Failed))
			}
			for _, m := range r.Metrics {
				fmt.Fprintf(&b, "| %s | %s | %s%s | %s | %s | %s |\n", rp.scenarioTitle(sc), sys, m.Name, arrow(m.Better),
					m.Prefix+withUnit(m.Value, m.Unit), m.Target, met(m))
			}
		}
	}

	for _, sc := range []string{"fanout", "large", "many", "durable", "smoke"} {
		if !contains(rp.rec.Scenarios, sc) {
			continue
		}
		fmt.Fprintf(&b, "\n### %s: steps\n\n", rp.scenarioTitle(sc))
		b.WriteString("| system | msg/s asked | msg/s acked | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | ack p99 ms | server CPU s | µs/delivery (server) | µs/delivery (harness) | server RSS MiB | clean |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, sys := range rp.rec.Systems {
			r, ok := rp.find(sc, sys)
			if !ok {
				continue
			}
			for _, s := range r.Steps {
				asked := "max"
				if s.Rate > 0 {
					asked = num(s.Rate)
				}
				clean := ""
				if sc == "fanout" {
					clean = map[bool]string{true: "yes", false: "no"}[s.Clean]
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					sys, asked, num(s.Acked), num(s.Delivered), num(s.P50), num(s.P90), num(s.P99), num(s.Max),
					num(s.AckP99), num(s.ServerCPU), num(s.ServerUS), num(s.HarnessUS), num(s.ServerRSS), clean)
			}
		}
	}

	b.WriteString("\n### Conditions\n\n")
	for _, r := range rp.rec.Results {
		fmt.Fprintf(&b, "- %s on %s: load average %.2f at start", r.Scenario, r.System, r.Load1)
		if p := r.Fsync; p != nil {
			fmt.Fprintf(&b, "; fsync probe before it (64 KiB every 2 ms): p50 %s ms, p99 %s ms, max %s ms, %s of %s over 5 ms",
				num(p.P50Ms), num(p.P99Ms), num(p.MaxMs), thousands(int64(p.Over5)), thousands(int64(p.Syncs)))
		}
		if c := r.Commits; c != nil && c.Count > 0 {
			fmt.Fprintf(&b, "; its commits while measured: %s", c.describe())
		}
		if w := r.Writes; w != nil && w.Count > 0 {
			fmt.Fprintf(&b, "; its writes (the caller's wait, queueing included): %s", w.describe())
		}
		if r.Failed != "" {
			fmt.Fprintf(&b, "; **failed**: %s", oneLine(r.Failed))
		}
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "; %s", oneLine(e))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// pairRows writes one row per figure of scenario sc with both systems side
// by side.
func (rp *report) pairRows(b *strings.Builder, sc string) {
	cr, cok := rp.find(sc, "chatd")
	nr, nok := rp.find(sc, "nchan")
	title := rp.scenarioTitle(sc)
	for _, fr := range []struct {
		r  result
		ok bool
	}{{cr, cok}, {nr, nok}} {
		if fr.ok && fr.r.Failed != "" {
			fmt.Fprintf(b, "| %s | **%s failed** | %s | | | | |\n", title, fr.r.System, cell(oneLine(fr.r.Failed)))
		}
	}
	var names []string
	seen := map[string]bool{}
	first, second := cr, nr
	if len(nr.Metrics) > len(cr.Metrics) {
		first, second = nr, cr // the fuller list sets the order
	}
	for _, r := range []result{first, second} {
		for _, m := range r.Metrics {
			if !seen[m.Name] {
				seen[m.Name] = true
				names = append(names, m.Name)
			}
		}
	}
	for _, name := range names {
		cm, cfound := metricByName(cr, name)
		nm, nfound := metricByName(nr, name)
		m := cm
		if !cfound {
			m = nm
		}
		cv, nv, ratio := "—", "—", ""
		if cfound {
			cv = cm.Prefix + withUnit(cm.Value, cm.Unit)
		}
		if nfound {
			nv = nm.Prefix + withUnit(nm.Value, nm.Unit)
		}
		if cfound && nfound && m.Better != 0 && nm.Value != 0 && cm.Prefix == "" && nm.Prefix == "" {
			ratio = fmt.Sprintf("%.2f", cm.Value/nm.Value)
		}
		target, ok := "", ""
		if cfound {
			target, ok = cm.Target, met(cm)
		}
		fmt.Fprintf(b, "| %s | %s%s | %s | %s | %s | %s | %s |\n", title, name, arrow(m.Better), cv, nv, ratio, target, ok)
	}
}

// metricByName finds a metric of r.
func metricByName(r result, name string) (metric, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return metric{}, false
}

// arrow marks which way a figure is better.
func arrow(better int) string {
	switch {
	case better > 0:
		return " ↑"
	case better < 0:
		return " ↓"
	}
	return ""
}

// met renders whether a metric met its target.
func met(m metric) string {
	if m.Met == nil {
		return ""
	}
	if *m.Met {
		return "yes"
	}
	return "**no**"
}

// withUnit formats a value with its unit.
func withUnit(v float64, unit string) string {
	s := num(v)
	switch unit {
	case "":
		return s
	case "/s", "%":
		return s + unit
	}
	return s + " " + unit
}

// num formats a figure with sensible precision and thousands separators.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return thousands(int64(math.Round(v)))
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a == 0:
		return "0"
	case a >= 0.1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", "\\|")
}

// oneLine keeps the first line of s, shortened.
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH                 = 960, 560
	padL, padR, padT, padB float64 = 80, 190, 56, 64
)

// svg draws latency percentiles against deliveries per second for the
// fan-out steps of every system: log-scale latency, linear throughput.
func (rp *report) svg() string {
	type series struct {
		sys, pct string
		pts      [][2]float64
		rates    []float64 // offered messages/s of each point
	}
	colors := map[string]string{"chatd": "#1f6feb", "nchan": "#d1242f"}
	dashes := map[string]string{"p50": "2 4", "p90": "8 4", "p99": ""}
	var all []series
	maxX, minY, maxY := 0.0, math.Inf(1), 0.0
	for _, sys := range rp.rec.Systems {
		r, ok := rp.find("fanout", sys)
		if !ok {
			continue
		}
		for _, pct := range []string{"p50", "p90", "p99"} {
			s := series{sys: sys, pct: pct}
			for _, st := range r.Steps {
				y := map[string]float64{"p50": st.P50, "p90": st.P90, "p99": st.P99}[pct]
				if st.Delivered <= 0 || y <= 0 {
					continue
				}
				// Points stay in step order: past saturation the delivered
				// rate falls back while latency climbs, and the line shows it.
				s.pts = append(s.pts, [2]float64{st.Delivered, y})
				s.rates = append(s.rates, st.Rate)
				maxX = max(maxX, st.Delivered)
				minY, maxY = min(minY, y), max(maxY, y)
			}
			all = append(all, s)
		}
	}
	target := rp.rec.FanP99MS
	if maxY == 0 {
		minY, maxY, maxX = 0.1, 100, 1000
	}
	maxY = max(maxY, target)
	lo := math.Pow(10, math.Floor(math.Log10(max(minY, 0.01))))
	hi := math.Pow(10, math.Ceil(math.Log10(maxY)))
	xMax := niceCeil(maxX)

	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	px := func(x float64) float64 { return padL + x/xMax*plotW }
	py := func(y float64) float64 {
		return padT + plotH - (math.Log10(y)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*plotH
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%g" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", padL, xmlEscape("Delivery latency vs deliveries/s — "+rp.scenarioTitle("fanout")))
	fmt.Fprintf(&b, `<text x="%g" y="42" fill="#555">%s</text>`+"\n", padL, xmlEscape(fmt.Sprintf("chatbench, %s UTC, %d cores shared by servers and harness; %d-byte messages", rp.rec.Started.Format("2006-01-02 15:04"), rp.rec.CPUs, rp.rec.Payload)))

	// Grid and axes.
	for d := lo; d <= hi*1.0001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			y := d * m
			if y > hi*1.0001 {
				break
			}
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", padL, py(y), padL+plotW, py(y), stroke)
			label := trimNum(y)
			if y >= 1000 {
				label = thousands(int64(y))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", padL-6, py(y), label)
		}
	}
	for i := 0; i <= 5; i++ {
		x := xMax * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", px(x), padT, px(x), padT+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), padT+plotH+18, thousands(int64(x)))
	}
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", padL, padT, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">deliveries per second (messages × listeners); labels: messages/s offered</text>`+"\n", padL+plotW/2, chartH-18.0)
	fmt.Fprintf(&b, `<text transform="translate(22 %.1f) rotate(-90)" text-anchor="middle">delivery latency, ms (log scale)</text>`+"\n", padT+plotH/2)

	// The p99 target.
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="6 3"/>`+"\n", padL, py(target), padL+plotW, py(target))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#666" text-anchor="end">p99 target %s ms</text>`+"\n", padL+plotW-4, py(target)-4, trimNum(target))

	// Series.
	for _, s := range all {
		if len(s.pts) == 0 {
			continue
		}
		var pts []string
		for _, p := range s.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		dash := ""
		if d := dashes[s.pct]; d != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, d)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), colors[s.sys], dash)
		for i, p := range s.pts {
			fill := colors[s.sys]
			if s.pct != "p99" {
				fill = "#fff"
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s" stroke="%s"/>`+"\n", px(p[0]), py(p[1]), fill, colors[s.sys])
			if s.pct == "p99" {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s">%s/s</text>`+"\n", px(p[0])+5, py(p[1])-5, colors[s.sys], trimNum(s.rates[i]))
			}
		}
	}

	// Legend.
	lx, ly := padL+plotW+20, padT+10
	for _, sys := range rp.rec.Systems {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-weight="bold" fill="%s">%s</text>`+"\n", lx, ly, colors[sys], sys)
		ly += 18
		for _, pct := range []string{"p50", "p90", "p99"} {
			dash := ""
			if d := dashes[pct]; d != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, d)
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly-4, lx+36, ly-4, colors[sys], dash)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+44, ly, pct)
			ly += 18
		}
		ly += 10
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// trimNum formats an axis value without trailing zeros.
func trimNum(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// xmlEscape escapes text for SVG.
func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
