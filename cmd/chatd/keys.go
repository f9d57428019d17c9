package main

import (
	"context"
	"fmt"
	"io"
)

// keysHelp describes "chatd keys", for chatd help and its -h.
const keysHelp = `
  chatd keys rotate [-retire]
        add a new session cookie key pair. The server signs and encrypts new
        cookies with it from its next start; cookies made with older pairs
        keep working, so nobody is signed out. With -retire every older pair
        is deleted and every browser session ends at once (everyone signs
        in again; bot tokens are not affected): the answer to a key that
        may have leaked. Restart the server afterwards.
`

// keysCommand runs "chatd keys rotate".
func keysCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return fmt.Errorf("chatd keys: say rotate; see chatd help")
	}
	fs, db := newFlagSet("chatd keys rotate", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage of chatd keys rotate:\n%s\nflags:\n", keysHelp)
		fs.PrintDefaults()
	}
	retire := fs.Bool("retire", false, "delete the older key pairs and end every browser session")
	pos, err := operatorFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("usage: chatd keys rotate [-retire]")
	}
	srv, err := openForOperator(*db, true)
	if err != nil {
		return err
	}
	defer srv.Close()
	ended, err := srv.RotateCookieKeys(context.Background(), *retire)
	if err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	if *retire {
		fmt.Fprintf(stdout, "Added a new cookie key pair and retired the older ones; %d browser sessions ended. Restart the server to use the new keys.\n", ended)
		return nil
	}
	fmt.Fprintln(stdout, "Added a new cookie key pair. Restart the server to sign new cookies with it; existing cookies keep working.")
	return nil
}
