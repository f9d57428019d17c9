package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// noticeExpr is an expression: a chatd notice line containing s is shown.
func noticeExpr(s string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#message-list .notice')].some((n) => n.textContent.includes(%s))`, jsQuote(s))
}

// TestBrowserChatFeatures walks through what a chat user does: commands,
// rooms, topics, unread counts and mentions in the title, actions, links,
// edits and deletes, direct messages, leaving, history paging, and the
// admin commands.
func TestBrowserChatFeatures(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1")
	register(t, srv, "alice", browserPassword) // the first account: an admin
	register(t, srv, "bob", browserPassword)
	carol := register(t, srv, "carol", browserPassword)
	c := startChrome(t)
	alice := c.newProfile(t, "alice").newTab("chat")
	bob := c.newProfile(t, "bob").newTab("chat")
	alice.signIn(srv, "alice", browserPassword)
	bob.signIn(srv, "bob", browserPassword)

	title := func(tb *browserTab) string { return pageEval[string](tb, `document.title`) }
	roomTitle := func(tb *browserTab) string {
		return pageEval[string](tb, `document.getElementById('room-title').textContent`)
	}

	t.Run("help and unknown commands", func(t *testing.T) {
		alice := alice.in(t)
		alice.say("/help")
		alice.waitJS("the help", 2*time.Second, noticeExpr("/join room"))
		alice.say("/frobnicate now")
		alice.waitJS("the unknown command notice", 2*time.Second, noticeExpr("Unknown command /frobnicate"))
		if v := pageEval[string](alice, `document.getElementById('composer-input').value`); v != "/frobnicate now" {
			t.Errorf("a refused command should stay in the composer for fixing, found %q", v)
		}
		alice.do("clear", jsAction(`document.getElementById('composer-input').value = ''`))
	})

	t.Run("join creates a room, topic sets it, others browse and join", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		alice.say("/join team-x")
		alice.waitJS("#team-x open", 3*time.Second, `document.getElementById('room-title').textContent === '#team-x'`)
		alice.say("/topic Ship it on Friday")
		alice.waitJS("the topic", 3*time.Second, `document.getElementById('room-topic').textContent === 'Ship it on Friday'`)
		bob.do("open the room directory", chromedp.Click(chromedp.ID("browse-rooms")))
		bob.waitJS("team-x listed", 3*time.Second, `document.querySelector('#room-directory button[data-room="team-x"]') !== null`)
		bob.do("join team-x", jsAction(`document.querySelector('#room-directory button[data-room="team-x"]').click()`))
		bob.waitJS("#team-x open with its topic", 3*time.Second,
			`document.getElementById('room-title').textContent === '#team-x' && document.getElementById('room-topic').textContent === 'Ship it on Friday'`)
		alice.waitJS("bob joined", 3*time.Second, `document.querySelector('#member-list li[data-user="bob"]') !== null`)

		bob.do("create a private room in the dialog",
			chromedp.Click(chromedp.ID("browse-rooms")),
			chromedp.SendKeys(chromedp.ID("new-room-name"), "team-x"),
			chromedp.Click(chromedp.CSS(`#create-room button[type=submit]`)),
		)
		bob.waitJS("the name clash explained", 3*time.Second, `/exists/.test(document.querySelector('#create-room .form-error').textContent)`)
		bob.do("pick a free name",
			jsAction(`document.getElementById('new-room-name').value = ''`),
			chromedp.SendKeys(chromedp.ID("new-room-name"), "bobs-den"),
			chromedp.SendKeys(chromedp.ID("new-room-topic"), "quiet please"),
			chromedp.Click(chromedp.CSS(`#create-room input[name=private]`)),
			chromedp.Click(chromedp.CSS(`#create-room button[type=submit]`)),
		)
		bob.waitJS("the private room open", 3*time.Second, `document.getElementById('room-title').textContent === '#bobs-den'
			&& document.getElementById('room-topic').textContent === 'quiet please' && !document.getElementById('room-dialog').open`)
	})

	t.Run("unread counts and mentions show in the sidebar and the title", func(t *testing.T) {
		alice := alice.in(t)
		carol.post("lobby", "just chatter")
		carol.post("lobby", "@alice can you look at this?")
		alice.waitJS("lobby unread", 3*time.Second, `document.querySelector('#room-list button[data-room="lobby"]')?.dataset.unread === '2'`)
		if got := title(alice); !strings.HasPrefix(got, "(2) @1 ") {
			t.Errorf("title %q, want it to start with (2) @1", got)
		}
		alice.do("open the lobby", chromedp.Click(chromedp.CSS(`#room-list button[data-room="lobby"]`)))
		alice.waitJS("the mention", 3*time.Second, `document.querySelector('#message-list li.mentions-me .mention-me') !== null`)
		if got := title(alice); strings.HasPrefix(got, "(") {
			t.Errorf("title %q after reading the lobby, want no counts", got)
		}
	})

	t.Run("actions and links", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		bob.do("back to the lobby", chromedp.Click(chromedp.CSS(`#room-list button[data-room="lobby"]`)))
		bob.say("/me waves")
		alice.waitJS("the action line", 3*time.Second, `[...document.querySelectorAll('#message-list li.message.action .message-body')]
			.some((n) => n.textContent.trim() === 'bob waves')`)
		carol.post("lobby", "spec at https://example.com/spec?x=1 for you")
		alice.waitJS("a link that opens a new tab", 3*time.Second,
			`[...document.querySelectorAll('#message-list a[href="https://example.com/spec?x=1"]')].some((a) => a.target === '_blank' && a.relList.contains('noopener'))`)
	})

	t.Run("edit and delete my own messages", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		alice.say("tpyo in this")
		bob.waitMessage("tpyo in this", 2*time.Second)
		alice.do("Up edits the last message",
			jsAction(`document.getElementById('composer-input').focus()`),
			chromedp.KeyEvent(kb.ArrowUp),
		)
		alice.waitJS("the edit box", 2*time.Second, `document.activeElement?.classList.contains('edit-input')`)
		alice.do("rewrite", jsAction(`document.activeElement.select()`))
		alice.do("type", chromedp.Func(insertTextAction("typo fixed")), pressEnter())
		bob.waitJS("the edit", 3*time.Second, `[...document.querySelectorAll('#message-list li.message')]
			.some((li) => li.querySelector('.message-body').textContent === 'typo fixed' && !li.querySelector('.edited').hidden)`)
		if n := shownMessageCount(bob, "tpyo"); n != 0 {
			t.Errorf("bob still sees the old text")
		}
		if n := pageEval[int](bob, `[...document.querySelectorAll('#message-list li.message')].filter((li) => li.querySelector('.message-body').textContent === 'typo fixed' && !li.querySelector('.edit').hidden).length`); n != 0 {
			t.Errorf("bob may edit alice's message")
		}
		del := `[...document.querySelectorAll('#message-list li.message')].find((li) => li.querySelector('.message-body').textContent === 'typo fixed').querySelector('button.delete')`
		alice.do("delete, and confirm", jsAction(del+`.click()`), jsAction(del+`.click()`))
		bob.waitJS("the message gone", 3*time.Second, `![...document.querySelectorAll('#message-list .message-body')].some((n) => n.textContent === 'typo fixed')`)
	})

	t.Run("msg opens a direct conversation", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		alice.say("/msg bob psst, a secret")
		alice.waitJS("the conversation open", 3*time.Second, `document.getElementById('room-title').textContent === '@bob'`)
		bob.waitJS("the conversation listed as unread", 3*time.Second, `document.querySelector('#dm-list button[data-room]')?.dataset.unread === '1'`)
		bob.do("open it", chromedp.Click(chromedp.CSS(`#dm-list button[data-room]`)))
		bob.waitMessage("psst, a secret", 2*time.Second)
		if got := roomTitle(bob); got != "@alice" {
			t.Errorf("bob's conversation is titled %q, want @alice", got)
		}
		bob.say("got it")
		alice.waitMessage("got it", time.Second)
	})

	t.Run("leave", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		alice.do("open team-x", chromedp.Click(chromedp.CSS(`#room-list button[data-room="team-x"]`)))
		alice.waitJS("#team-x open", 3*time.Second, `document.getElementById('room-title').textContent === '#team-x'`)
		bob.do("open team-x", chromedp.Click(chromedp.CSS(`#room-list button[data-room="team-x"]`)))
		bob.waitJS("#team-x open", 3*time.Second, `document.getElementById('room-title').textContent === '#team-x'`)
		alice.say("/leave")
		alice.waitJS("team-x gone from the list", 3*time.Second, `document.querySelector('#room-list button[data-room="team-x"]') === null`)
		bob.waitJS("alice gone from the members", 3*time.Second, `document.querySelector('#member-list li[data-user="alice"]') === null`)
		bob.waitJS("the leave notice", 3*time.Second, noticeExpr("alice left"))
	})

	t.Run("older history loads on scrolling up", func(t *testing.T) {
		alice := alice.in(t)
		carol.must(201, "POST", "/api/rooms", map[string]any{"name": "history", "topic": "", "private": false})
		const total = 130
		for i := 1; i <= total; i++ {
			carol.post("history", fmt.Sprintf("history line %03d", i))
		}
		alice.say("/join history")
		alice.waitMessage(fmt.Sprintf("history line %03d", total), 3*time.Second)
		shown := pageEval[int](alice, `document.querySelectorAll('#message-list li.message').length`)
		if shown >= total {
			t.Fatalf("all %d messages shown at once; expected a first page", shown)
		}
		alice.waitJS("the whole history", 10*time.Second, `(() => {
			const s = document.getElementById('messages');
			s.scrollTop = 0;
			s.dispatchEvent(new Event('scroll'));
			return /beginning of/.test(document.getElementById('history-status').textContent);
		})()`)
		lines := pageEval[[]string](alice, `[...document.querySelectorAll('#message-list li.message .message-body')].map((n) => n.textContent)`)
		if len(lines) != total {
			t.Fatalf("%d messages after paging, want %d", len(lines), total)
		}
		for i, l := range lines {
			if want := fmt.Sprintf("history line %03d", i+1); l != want {
				t.Fatalf("message %d reads %q, want %q (order or duplicates wrong)", i, l, want)
			}
		}
	})

	t.Run("admins kick and ban", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		alice.do("open the lobby", chromedp.Click(chromedp.CSS(`#room-list button[data-room="lobby"]`)))
		alice.waitJS("#lobby open", 3*time.Second, `document.getElementById('room-title').textContent === '#lobby'`)
		bob.say("/kick carol")
		bob.waitJS("admins only", 2*time.Second, noticeExpr("for admins only"))
		bob.do("clear", jsAction(`document.getElementById('composer-input').value = ''`))
		alice.say("/kick carol")
		alice.waitJS("carol removed", 3*time.Second, `document.querySelector('#member-list li[data-user="carol"]') === null`)
		alice.say("/ban carol")
		alice.waitJS("the ban notice", 3*time.Second, noticeExpr("carol is banned"))
		if r := carol.do("GET", "/api/me", nil); r.Status != 401 {
			t.Errorf("carol's session after the ban: %d, want 401", r.Status)
		}
	})
}

// insertTextAction types text into the focused element.
func insertTextAction(text string) func(ctx context.Context, t *chromedp.Target) error {
	return func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	}
}
