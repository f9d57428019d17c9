// Command chatd is a self-hosted chat server: rooms, direct messages and
// presence for browsers (one long-poll per browser) and bots (HTTP API with
// bearer tokens), in one binary with an embedded SQLite database.
//
// Usage:
//
//	chatd [flags]                                  serve (the default)
//	chatd bots [flags]                             create bot accounts in bulk and print their tokens
//	chatd user create NAME [-admin] [-password-stdin]  create a person's account
//	chatd user passwd NAME                         set a password, read from standard input
//	chatd user role NAME user|admin                change a person's role
//	chatd bot create NAME                          create a bot and print its token
//	chatd bot token NAME                           replace a bot's token and print the new one
//	chatd keys rotate [-retire]                    add a new session cookie key pair
//
// Every flag can also be set in the environment as CHATD_<NAME>, with
// dashes as underscores (CHATD_ADDR, CHATD_PRESENCE_TIMEOUT, ...).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on the opt-in -debug-addr listener
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"chatd"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "bots":
		err = bots(args, os.Stdout)
	case "user":
		err = userCommand(args, os.Stdin, os.Stdout, os.Stderr)
	case "bot":
		err = botCommand(args, os.Stdout, os.Stderr)
	case "keys":
		err = keysCommand(args, os.Stdout, os.Stderr)
	case "help":
		usage(os.Stdout)
	default:
		usage(os.Stderr)
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "chatd:", err)
		}
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `chatd: a self-hosted chat server

  chatd [flags]          serve the chat (see chatd -h for flags)
  chatd bots [flags]     create bot accounts in bulk and print "name<TAB>token"
  chatd help             this text

Operator commands (each takes -db FILE, default chatd.db or $CHATD_DB):
`+operatorHelp+keysHelp+`
Every flag may also be given in the environment as CHATD_<NAME>.
`)
}

// envFlags sets every flag of fs not given on the command line from
// CHATD_<NAME> in the environment.
func envFlags(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		key := "CHATD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", key, v, serr)
			}
		}
	})
	return err
}

type serveFlags struct {
	addr, debugAddr, logLevel string
	cfg                       chatd.Config
}

func parseServe(args []string) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&f.cfg.DB, "db", "chatd.db", "SQLite database file")
	fs.DurationVar(&f.cfg.PresenceTimeout, "presence-timeout", 60*time.Second, "a client that has not polled for this long is gone")
	fs.DurationVar(&f.cfg.ReplayWindow, "replay-window", 168*time.Hour, "how far back a cursor may replay")
	fs.Float64Var(&f.cfg.PostRate, "post-rate", 5, "messages per second a user may post on average (-1: unlimited)")
	fs.IntVar(&f.cfg.PostBurst, "post-burst", 20, "messages a user may post at once before the rate applies")
	fs.IntVar(&f.cfg.QueueSize, "queue-size", 512, "recent events kept in memory per user")
	fs.IntVar(&f.cfg.Hashes, "hashes", 0, "password hashes that may run at once (0: half the CPUs, at least 1)")
	fs.BoolVar(&f.cfg.TrustProxy, "trust-proxy", false, "take client addresses from X-Forwarded-For and the scheme from X-Forwarded-Proto (behind a reverse proxy)")
	fs.StringVar(&f.debugAddr, "debug-addr", "", "serve pprof on this address (off when empty)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := envFlags(fs); err != nil {
		return nil, err
	}
	return f, nil
}

func serve(args []string) error {
	f, err := parseServe(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	f.cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := chatd.New(ctx, f.cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: chatd.ReadHeaderTimeout,
		IdleTimeout:       chatd.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         srv.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if f.debugAddr != "" {
		go func() {
			log.Info("pprof listening", "addr", f.debugAddr)
			if err := http.ListenAndServe(f.debugAddr, http.DefaultServeMux); err != nil {
				log.Error("pprof listener", "err", err)
			}
		}()
	}
	errc := make(chan error, 1)
	// Wrapped here rather than in the serving goroutine: the shutdown below
	// reads what Listen sets up.
	rl := srv.Listen(ln)
	go func() { errc <- hs.Serve(rl) }()
	log.Info("chatd serving", "addr", ln.Addr().String(), "db", f.cfg.DB)

	select {
	case err := <-errc:
		srv.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Answer the pending polls first, so Shutdown does not wait out their
	// timeouts; then let in-flight requests (and their writes) finish.
	srv.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	if err := srv.Close(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// bots creates bot accounts in bulk: the fast path for load tests, which
// need thousands of accounts without weakening password hashing.
func bots(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("chatd bots", flag.ContinueOnError)
	db := fs.String("db", "chatd.db", "SQLite database file")
	prefix := fs.String("prefix", "bot", "bot names are PREFIX1, PREFIX2, ...")
	n := fs.Int("n", 1, "how many bots to create")
	lobby := fs.Bool("lobby", false, "put the bots in the lobby (only while the server is stopped: the join events are written here)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs); err != nil {
		return err
	}
	if *n < 1 || *n > 1_000_000 {
		return fmt.Errorf("-n must be from 1 to 1000000")
	}
	ctx := context.Background()
	srv, err := chatd.New(ctx, chatd.Config{DB: *db})
	if err != nil {
		return err
	}
	defer srv.Close()
	for i := 1; i <= *n; i++ {
		name := fmt.Sprintf("%s%d", *prefix, i)
		_, token, err := srv.Auth().CreateBot(ctx, name, *lobby)
		if err != nil {
			return fmt.Errorf("create bot %s: %w", name, err)
		}
		if _, err := fmt.Fprintf(out, "%s\t%s\n", name, token); err != nil {
			return err
		}
	}
	return nil
}
