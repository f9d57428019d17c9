package chatd

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the server's Prometheus registry. It is per server (no global
// registry), so tests can run several servers in one process.
type metrics struct {
	reg      *prometheus.Registry
	events   prometheus.Counter
	delivery prometheus.Histogram
	commit   prometheus.Histogram
	write    prometheus.Histogram
}

// latencyBuckets are the bounds, in seconds, of the latency histograms:
// from half a millisecond to the seconds of an overloaded server or disk.
var latencyBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chatd_events_total",
		Help: "Events committed to the log and published.",
	})
	m.delivery = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chatd_delivery_latency_seconds",
		Help:    "Time from an event's publication to the poll answer that carries it.",
		Buckets: latencyBuckets,
	})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chatd_store_commit_seconds",
		Help:    "Time each write transaction's COMMIT took: the WAL append and its fsync, the disk's share of a write's latency.",
		Buckets: latencyBuckets,
	})
	m.write = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chatd_store_write_seconds",
		Help:    "Time each write (a post, a join, a presence change) waited from its caller's side: for the writer, its work, and the commit it shares.",
		Buckets: latencyBuckets,
	})
	m.reg.MustRegister(m.events, m.delivery, m.commit, m.write,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeDelivery(d time.Duration) { m.delivery.Observe(d.Seconds()) }

func (m *metrics) observeCommit(d time.Duration) { m.commit.Observe(d.Seconds()) }

func (m *metrics) observeWrite(d time.Duration) { m.write.Observe(d.Seconds()) }

// watch registers the gauges read from the server's live state.
func (m *metrics) watch(s *Server) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chatd_long_polls_pending",
			Help: "Long-polls waiting for events.",
		}, func() float64 { return float64(s.hub.Pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chatd_clients_connected",
			Help: "Clients (browsers, bot tokens) that polled within the presence timeout.",
		}, func() float64 { return float64(s.presence.Count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chatd_queues",
			Help: "User queues held in memory.",
		}, func() float64 { q, _ := s.hub.Queues(); return float64(q) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chatd_queued_events",
			Help: "Event references held in user queues.",
		}, func() float64 { _, e := s.hub.Queues(); return float64(e) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chatd_store_commits_total",
			Help: "Write transactions committed (each one fsync).",
		}, func() float64 { c, _ := s.db.Stats(); return float64(c) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chatd_store_writes_total",
			Help: "Writes committed; writes/commits is the group-commit factor.",
		}, func() float64 { _, w := s.db.Stats(); return float64(w) }),
	)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
