package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	b := appendPayload(nil, 4000000000, 3, 17, 42, 123456789, 128)
	if len(b) != 128 {
		t.Fatalf("payload is %d bytes, want 128", len(b))
	}
	p, ok := parsePayload(b)
	if !ok {
		t.Fatalf("parsePayload(%q) failed", b)
	}
	want := payload{run: 4000000000, step: 3, poster: 17, seq: 42, sent: 123456789}
	if p != want {
		t.Errorf("parsePayload = %+v, want %+v", p, want)
	}
}

func TestParsePayloadRejectsOthers(t *testing.T) {
	for _, s := range []string{
		"",
		"hello",
		"cb1.",
		"cb1.1.2.3.4",
		"cb1.1.2.3.4.x.",
		"cb1.1.-2.3.4.5.",
		"cb1.99999999999.0.0.1.5.", // run over 32 bits
	} {
		if _, ok := parsePayload([]byte(s)); ok {
			t.Errorf("parsePayload(%q) accepted it", s)
		}
	}
}

// eventsReply is a /api/events reply shaped as the contract describes it,
// with a person's message whose text holds quotes and key-like words.
const eventsReply = `{"cursor":1043,"events":[` +
	`{"id":1041,"type":"join","ts":"2026-01-01T00:00:00.000Z","room":"r","user":"bench1"},` +
	`{"id":1042,"type":"message","ts":"2026-01-01T00:00:00.000Z","room":"r","user":"p","message":{"id":9,"room":"r","user":"p","text":"say \"type\":\"x\" and \"text\":\"y\"","html":"say","ts":"2026-01-01T00:00:00.000Z"}},` +
	`{"id":1043,"type":"message","ts":"2026-01-01T00:00:00.000Z","room":"r","user":"p","message":{"id":10,"room":"r","user":"p","text":"cb1.7.0.1.5.99.xxxx","html":"cb1.7.0.1.5.99.xxxx","ts":"2026-01-01T00:00:00.000Z"}}]}`

func TestScanEventsReply(t *testing.T) {
	body := []byte(eventsReply)
	cur, ok := scanCursor(body)
	if !ok || cur != 1043 {
		t.Errorf("scanCursor = %d, %v; want 1043, true", cur, ok)
	}
	if n := countEvents(body); n != 3 {
		t.Errorf("countEvents = %d, want 3", n)
	}
	var texts []string
	for off := 0; ; {
		text, next, ok := nextText(body, off)
		if !ok {
			break
		}
		texts = append(texts, string(text))
		off = next
	}
	if len(texts) != 2 || texts[1] != "cb1.7.0.1.5.99.xxxx" {
		t.Errorf("texts = %q, want two with the chatbench one last", texts)
	}
	if _, ok := scanCursor([]byte(`{"events":[]}`)); ok {
		t.Error("scanCursor found a cursor in a reply without one")
	}
	if cur, ok := scanCursor([]byte("{\"events\": [],\n  \"cursor\": 5}")); !ok || cur != 5 {
		t.Errorf("scanCursor on indented JSON = %d, %v; want 5, true", cur, ok)
	}
}

func TestListenerDeliverCountsGapsAndDuplicates(t *testing.T) {
	g := &group{}
	ph := &phase{run: 7, stats: &phaseStats{}}
	ph.setSteps(1)
	ph.curStep.Store(0)
	l := &listener{group: g, next: []uint32{1, 1}}
	for _, seq := range []uint32{1, 2, 2, 5, 6, 3} {
		l.deliver(appendPayload(nil, 7, 0, 1, seq, mono(), 64), mono(), ph)
	}
	l.deliver(appendPayload(nil, 8, 0, 1, 7, mono(), 64), mono(), ph) // another run
	if g, d, f := ph.stats.gaps.Load(), ph.stats.dups.Load(), ph.stats.foreign.Load(); g != 2 || d != 2 || f != 1 {
		t.Errorf("gaps, duplicates, foreign = %d, %d, %d; want 2, 2, 1", g, d, f)
	}
	if p := l.progress.Load(); p != 6 {
		t.Errorf("progress = %d, want 6 (seq 1..6 accounted for)", p)
	}
	if n := ph.stats.steps[0].lat.summarize().Count; n != 4 {
		t.Errorf("latencies recorded = %d, want 4", n)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(int64(i) * int64(time.Millisecond) / 10) // 0.1 ms .. 100 ms
	}
	s := h.summarize()
	check := func(name string, got, want time.Duration) {
		t.Helper()
		if d := got - want; d < -want/100-time.Microsecond || d > want/100+time.Microsecond {
			t.Errorf("%s = %v, want %v within 1%%", name, got, want)
		}
	}
	if s.Count != 1000 {
		t.Fatalf("count = %d", s.Count)
	}
	check("p50", s.P50, 50*time.Millisecond)
	check("p90", s.P90, 90*time.Millisecond)
	check("p99", s.P99, 99*time.Millisecond)
	check("max", s.Max, 100*time.Millisecond)
}

func TestBucketsAreMonotonic(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<24; us = us*9/8 + 1 {
		b := bucketOf(us)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", us, b, prev)
		}
		if lo := bucketLow(b); lo > us {
			t.Fatalf("bucketLow(bucketOf(%d)) = %d", us, lo)
		}
		prev = b
	}
}

func TestHTTPConnBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("Etag", "3")
			w.Header().Set("Last-Modified", "Sat, 21 Nov 2026 16:56:42 GMT")
			fmt.Fprint(w, "hello")
		case "/chunked":
			f := w.(http.Flusher)
			for i := range 5 {
				fmt.Fprint(w, strings.Repeat(fmt.Sprint(i), 3000))
				f.Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := newHTTPConn(addr, 1)
	defer c.close()
	get := func(path string) *reply {
		t.Helper()
		r, err := c.roundTrip(appendRequest(nil, "GET", path, addr, nil, "", nil), 5*time.Second)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return r
	}
	if r := get("/small"); r.status != 200 || string(r.body) != "hello" || string(r.etag) != "3" || len(r.lastModified) == 0 {
		t.Errorf("/small: %d %q etag %q", r.status, r.body, r.etag)
	}
	if r := get("/chunked"); r.status != 200 || len(r.body) != 15000 || r.body[14999] != '4' {
		t.Errorf("/chunked: %d, %d bytes", r.status, len(r.body))
	}
	if r := get("/empty"); r.status != 204 || len(r.body) != 0 {
		t.Errorf("/empty: %d %q", r.status, r.body)
	}
	if r := get("/close"); r.status != 200 || string(r.body) != "bye" {
		t.Errorf("/close: %d %q", r.status, r.body)
	}
	if r := get("/small"); r.status != 200 || c.dials != 2 {
		t.Errorf("after Connection: close: status %d, %d dials; want a second dial", r.status, c.dials)
	}
	// The server drops the idle kept-alive connection; a GET redials.
	srv.CloseClientConnections()
	if r := get("/small"); r.status != 200 || c.dials != 3 {
		t.Errorf("after the server closed the idle connection: status %d, %d dials; want a redial", r.status, c.dials)
	}
}

func TestMetricValue(t *testing.T) {
	text := []byte("# HELP chatd_long_polls_pending x\n# TYPE chatd_long_polls_pending gauge\nchatd_long_polls_pending_total 3\nchatd_long_polls_pending 18000\n")
	if v, ok := metricValue(text, "chatd_long_polls_pending"); !ok || v != 18000 {
		t.Errorf("metricValue = %v, %v", v, ok)
	}
}

func TestNumberFormats(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.0123: "0.012", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 85123.4: "85,123", 1234567: "1,234,567"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	rp := &report{rec: newRecord(cfg, []result{
		{Scenario: "fanout", System: "chatd", Steps: []stepResult{{Delivered: 10000, P50: 1, P90: 2, P99: 4}, {Delivered: 50000, P50: 2, P90: 5, P99: 15}}},
		{Scenario: "fanout", System: "nchan", Steps: []stepResult{{Delivered: 10000, P50: 2, P90: 3, P99: 5}}},
	}, time.Now(), time.Minute)}
	svg := rp.svg()
	if !strings.HasPrefix(svg, "<svg") || !strings.HasSuffix(svg, "</svg>\n") || strings.Count(svg, "<polyline") != 6 {
		t.Errorf("unexpected SVG:\n%s", svg)
	}
	if bytes.ContainsAny([]byte(svg), "\x00") {
		t.Error("SVG holds a NUL byte")
	}
}

func TestReplotRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parseFlags([]string{"-json", dir + "/run.json", "-md", dir + "/run.md", "-svg", dir + "/run.svg"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.stdout = io.Discard
	rec := newRecord(cfg, []result{
		{Scenario: "fanout", System: "chatd", Steps: []stepResult{{Rate: 10, Delivered: 10000, P50: 1, P90: 2, P99: 4}}},
		{Scenario: "fanout", System: "nchan", Steps: []stepResult{{Rate: 10, Delivered: 10000, P50: 2, P90: 3, P99: 5}}},
	}, time.Now(), time.Minute)
	if err := writeOutputs(cfg, rec); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(dir + "/run.md")

	again, err := parseFlags([]string{"-replot", dir + "/run.json", "-md", dir + "/again.md", "-svg", dir + "/again.svg"})
	if err != nil {
		t.Fatal(err)
	}
	again.stdout = io.Discard
	if code, err := run(context.Background(), again, slog.New(slog.NewTextHandler(io.Discard, nil))); code != 0 || err != nil {
		t.Fatalf("replot exited %d: %v", code, err)
	}
	second, _ := os.ReadFile(dir + "/again.md")
	if !bytes.Equal(first, second) {
		t.Errorf("replotted report differs:\n%s\n---\n%s", first, second)
	}
	svg1, _ := os.ReadFile(dir + "/run.svg")
	svg2, _ := os.ReadFile(dir + "/again.svg")
	if !bytes.Equal(svg1, svg2) {
		t.Error("replotted chart differs")
	}
}

func TestCommitHistogram(t *testing.T) {
	read := func(c1, c5, c20, cInf, sum float64) timeHist {
		text := fmt.Sprintf("# TYPE chatd_store_commit_seconds histogram\n"+
			"chatd_store_commit_seconds_bucket{le=\"0.001\"} %g\n"+
			"chatd_store_commit_seconds_bucket{le=\"0.005\"} %g\n"+
			"chatd_store_commit_seconds_bucket{le=\"0.02\"} %g\n"+
			"chatd_store_commit_seconds_bucket{le=\"+Inf\"} %g\n"+
			"chatd_store_commit_seconds_sum %g\nchatd_store_commit_seconds_count %g\n", c1, c5, c20, cInf, sum, cInf)
		h, ok := parseHist([]byte(text), commitMetric)
		if !ok {
			t.Fatalf("histogram not found in\n%s", text)
		}
		return h
	}
	before := read(10, 10, 10, 10, 0.005)
	after := read(900, 985, 1001, 1010, 2.005)
	s := after.minus(before).summary()
	if s.Count != 1000 || s.Over5 != 25 || s.Over20 != 9 || s.P99Ms != 20 || s.MeanMs != 2 || s.SlowestMs != -1 {
		t.Errorf("summary of 1,000 commits = %+v, want 25 over 5 ms, 9 over 20 ms, p99 ≤ 20 ms, mean 2 ms, slowest beyond the buckets", s)
	}
	if s := read(900, 985, 989, 1000, 2).summary(); s.P99Ms != -1 {
		t.Errorf("p99 beyond the last bucket reads %v ms, want -1", s.P99Ms)
	}
	if s := read(900, 1000, 1000, 1000, 2).summary(); s.SlowestMs != 5 || s.P99Ms != 5 {
		t.Errorf("all within 5 ms: p99 %v ms, slowest %v ms, want both ≤ 5", s.P99Ms, s.SlowestMs)
	}
	if s2 := after.minus(before).plus(after.minus(before)).summary(); s2.Count != 2000 || s2.Over5 != 50 {
		t.Errorf("two windows added = %+v, want 2,000 commits, 50 over 5 ms", s2)
	}
	if _, ok := parseHist([]byte("chatd_long_polls_pending 3\n"), commitMetric); ok {
		t.Error("found a histogram where there is none")
	}
}

func TestStoreHistograms(t *testing.T) {
	text := func(metric string, fast, all float64) string {
		return fmt.Sprintf("%[1]s_bucket{le=\"0.005\"} %[2]g\n%[1]s_bucket{le=\"+Inf\"} %[3]g\n%[1]s_sum 1\n%[1]s_count %[3]g\n", metric, fast, all)
	}
	h, ok := parseStoreHists([]byte(text(commitMetric, 90, 100) + text(writeMetric, 150, 200)))
	if !ok {
		t.Fatal("store histograms not found")
	}
	if c, w := h.commits.summary(), h.writes.summary(); c.Count != 100 || c.Over5 != 10 || w.Count != 200 || w.Over5 != 50 {
		t.Errorf("commits %+v, writes %+v: want 100 commits (10 over 5 ms) and 200 writes (50 over 5 ms)", c, w)
	}
	// A chatd from before the writes were timed: the commits alone.
	h, ok = parseStoreHists([]byte(text(commitMetric, 90, 100)))
	if !ok || h.commits.n != 100 || h.writes.n != 0 {
		t.Errorf("commits only: ok %v, %v commits, %v writes; want 100 and none", ok, h.commits.n, h.writes.n)
	}
}
