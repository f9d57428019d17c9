package chatd

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"chatd/auth"
	"chatd/messages"
)

// BenchmarkPost measures durable posting without HTTP in the way: 128
// posters at once in 16 rooms, each Post returning once its message is on
// disk (FULL sync, a database file on the test's temporary directory), as
// chatbench's durable scenario does through the API. It reports messages
// per second, how many writes each commit carried, and the process's CPU
// time per message.
func BenchmarkPost(b *testing.B) {
	const posters, nrooms = 128, 16
	ctx := context.Background()
	srv, err := New(ctx, Config{DB: filepath.Join(b.TempDir(), "chatd.db"), PostRate: -1, Hashes: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	users := make([]auth.User, posters)
	for i := range users {
		if users[i], _, err = srv.Auth().CreateBot(ctx, fmt.Sprintf("poster%d", i), false); err != nil {
			b.Fatal(err)
		}
	}
	room := func(i int) string { return fmt.Sprintf("room%d", i%nrooms) }
	for i, u := range users {
		if i < nrooms {
			_, err = srv.rooms.Create(ctx, u, room(i), "", false)
		} else {
			_, err = srv.rooms.Join(ctx, u, room(i))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	c, err := messages.FromText("a message of about the length people write, with a link: https://example.org/x")
	if err != nil {
		b.Fatal(err)
	}
	commits0, writes0 := srv.db.Stats()
	cpu0 := processCPU(b)
	var next atomic.Int64
	b.SetParallelism(max(1, posters/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % posters
		for pb.Next() {
			if _, err := srv.messages.Post(ctx, users[i], room(i), c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu := processCPU(b) - cpu0
	commits, writes := srv.db.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(writes-writes0)/float64(max(1, commits-commits0)), "writes/commit")
	// CPU per message moves less than throughput when other work shares
	// the machine: compare changes by both.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
