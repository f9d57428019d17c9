package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"chatd"
	"chatd/admin"
	"chatd/auth"
)

// operatorHelp describes the operator commands, for chatd help and for
// each command's -h.
const operatorHelp = `
  chatd user create NAME [-admin] [-password-stdin] [-lobby=false]
        create a person's account (a user, or an admin with -admin). With
        -password-stdin the password is the first line of standard input;
        otherwise a random one is made and printed once.
  chatd user passwd NAME
        set NAME's password to the first line of standard input (asked for
        twice, without echo, on a terminal) and sign them out everywhere.
  chatd user role NAME user|admin
        make NAME a user or an admin. The last admin cannot be made a user.
  chatd bot create NAME [-lobby=false]
        create a bot and print its token on standard output, this once.
  chatd bot token NAME
        replace NAME's token with a new one, printed this once; the old one
        stops working.

These commands write to the database file directly, and may run while the
server does; none needs a restart. New accounts and tokens work at once; a
password reset, a role change or a replaced token reaches the running
server within seconds. Everything lands in the audit log as done by
"(command line)". Two things the running server learns only later: a new
account's or bot's arrival in the lobby reaches chat pages already open
when they reload, and a long-poll that was already waiting with a reset
password or a replaced token ends at its timeout (within a minute) rather
than at once. Use the admin page to cut someone off at once.
`

// operatorFlags parses args, whose flags may come before or after the
// positional arguments ("user create ada -admin"), and returns the
// positional ones.
func operatorFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, envFlags(fs)
}

// openForOperator opens the server's database for a command. Commands that
// change an existing account refuse to create a new, empty database.
func openForOperator(path string, mustExist bool) (*chatd.Server, error) {
	if mustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no database at %s (give -db or set CHATD_DB): %w", path, err)
		}
	}
	return chatd.New(context.Background(), chatd.Config{DB: path})
}

func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "chatd.db", "SQLite database file")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage of %s:\n%s\nflags:\n", name, operatorHelp)
		fs.PrintDefaults()
	}
	return fs, db
}

// userCommand runs "chatd user create|passwd|role".
func userCommand(args []string, stdin *os.File, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("chatd user: say create, passwd or role; see chatd help")
	}
	sub, args := args[0], args[1:]
	fs, db := newFlagSet("chatd user "+sub, stderr)
	ctx := context.Background()
	switch sub {
	case "create":
		isAdmin := fs.Bool("admin", false, "make the account an admin")
		fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
		lobby := fs.Bool("lobby", true, "put the account in the lobby")
		pos, err := operatorFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: chatd user create NAME [-admin] [-password-stdin]")
		}
		name := pos[0]
		if err := auth.ValidName(name); err != nil {
			return err
		}
		password, shown := "", false
		if *fromStdin {
			if password, err = readPassword(stdin, stderr, name); err != nil {
				return err
			}
		} else {
			if password, err = randomPassword(); err != nil {
				return err
			}
			shown = true
		}
		role := auth.RoleUser
		if *isAdmin {
			role = auth.RoleAdmin
		}
		srv, err := openForOperator(*db, false)
		if err != nil {
			return err
		}
		defer srv.Close()
		u, err := srv.Admin().CreateUser(ctx, admin.Operator, name, password, role, *lobby)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "Created the %s %s.\n", u.Role, u.Name)
		if shown {
			fmt.Fprintf(stdout, "Password (shown this once): %s\n", password)
		}
		return nil
	case "passwd":
		pos, err := operatorFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: chatd user passwd NAME (the password is read from standard input)")
		}
		password, err := readPassword(stdin, stderr, pos[0])
		if err != nil {
			return err
		}
		srv, err := openForOperator(*db, true)
		if err != nil {
			return err
		}
		defer srv.Close()
		if err := srv.Admin().SetPassword(ctx, admin.Operator, pos[0], password); err != nil {
			return fmt.Errorf("set the password of %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "Set the password of %s; their sessions have ended.\n", pos[0])
		return nil
	case "role":
		pos, err := operatorFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 2 {
			return fmt.Errorf("usage: chatd user role NAME user|admin")
		}
		srv, err := openForOperator(*db, true)
		if err != nil {
			return err
		}
		defer srv.Close()
		if err := srv.Admin().SetRole(ctx, admin.Operator, pos[0], pos[1]); err != nil {
			return fmt.Errorf("change the role of %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "The role of %s is now %s.\n", pos[0], pos[1])
		return nil
	}
	return fmt.Errorf("chatd user: unknown command %q; say create, passwd or role", sub)
}

// botCommand runs "chatd bot create|token". The token alone goes to
// standard output, so that TOKEN=$(chatd bot create NAME) works.
func botCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("chatd bot: say create or token; see chatd help")
	}
	sub, args := args[0], args[1:]
	fs, db := newFlagSet("chatd bot "+sub, stderr)
	ctx := context.Background()
	switch sub {
	case "create":
		lobby := fs.Bool("lobby", true, "put the bot in the lobby")
		pos, err := operatorFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: chatd bot create NAME")
		}
		srv, err := openForOperator(*db, false)
		if err != nil {
			return err
		}
		defer srv.Close()
		u, token, err := srv.Admin().CreateBot(ctx, admin.Operator, pos[0], *lobby)
		if err != nil {
			return fmt.Errorf("create bot %s: %w", pos[0], err)
		}
		fmt.Fprintf(stderr, "Created the bot %s. Its token, shown this once:\n", u.Name)
		fmt.Fprintln(stdout, token)
		return nil
	case "token":
		pos, err := operatorFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: chatd bot token NAME")
		}
		srv, err := openForOperator(*db, true)
		if err != nil {
			return err
		}
		defer srv.Close()
		u, token, err := srv.Admin().NewBotToken(ctx, admin.Operator, pos[0])
		if err != nil {
			return fmt.Errorf("new token for %s: %w", pos[0], err)
		}
		fmt.Fprintf(stderr, "%s has a new token (the old one no longer works), shown this once:\n", u.Name)
		fmt.Fprintln(stdout, token)
		return nil
	}
	return fmt.Errorf("chatd bot: unknown command %q; say create or token", sub)
}

// readPassword reads a password: on a terminal it asks twice without echo;
// otherwise it takes the first line of in.
func readPassword(in *os.File, prompt io.Writer, name string) (string, error) {
	r := bufio.NewReader(in)
	restore, tty := noEcho(in)
	if !tty {
		line, err := r.ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("read the password from the first line of standard input: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	defer restore()
	ask := func(label string) (string, error) {
		fmt.Fprintf(prompt, "%s: ", label)
		line, err := r.ReadString('\n')
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	first, err := ask("New password for " + name)
	if err != nil {
		return "", err
	}
	second, err := ask("Again")
	if err != nil {
		return "", err
	}
	if first != second {
		return "", errors.New("the two passwords differ")
	}
	return first, nil
}

// noEcho turns off the echo of the terminal f with stty, and returns what
// turns it back on. It reports false when f is not a terminal (stty fails
// on anything else), or when there is no stty to ask.
func noEcho(f *os.File) (restore func(), tty bool) {
	off := exec.Command("stty", "-echo")
	off.Stdin = f
	if off.Run() != nil {
		return nil, false
	}
	return func() {
		on := exec.Command("stty", "echo")
		on.Stdin = f
		on.Run()
	}, true
}

// randomPassword makes a password for an account created without one.
func randomPassword() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
