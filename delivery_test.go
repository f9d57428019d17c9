package chatd

import (
	"net/url"
	"testing"
	"time"

	"chatd/api"
	"chatd/comet"
)

func TestParsePoll(t *testing.T) {
	tests := []struct {
		query   string
		want    PollParams
		wantErr bool
	}{
		{"", PollParams{Timeout: 25 * time.Second}, false},
		{"cursor=7", PollParams{Cursor: 7, HasCursor: true, Timeout: 25 * time.Second}, false},
		{"cursor=0&timeout=5", PollParams{Cursor: 0, HasCursor: true, Timeout: 5 * time.Second}, false},
		{"cursor=1&timeout=0.5", PollParams{Cursor: 1, HasCursor: true, Timeout: 500 * time.Millisecond}, false},
		{"cursor=1&timeout=999", PollParams{Cursor: 1, HasCursor: true, Timeout: 55 * time.Second}, false},
		{"cursor=1&wait=0", PollParams{Cursor: 1, HasCursor: true}, false},
		{"cursor=1&timeout=9&wait=0", PollParams{Cursor: 1, HasCursor: true}, false},
		{"cursor=-1", PollParams{}, true},
		{"cursor=1.5", PollParams{}, true},
		{"cursor=9223372036854775808", PollParams{}, true},
		{"timeout=-3", PollParams{}, true},
		{"timeout=Inf", PollParams{Timeout: 55 * time.Second}, false},
		{"timeout=NaN", PollParams{}, true},
		{"wait=2", PollParams{}, true},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := ParsePoll(q)
		if tt.wantErr {
			if !api.IsCode(err, api.InvalidArgument) {
				t.Errorf("ParsePoll(%q) err = %v, want invalid_argument", tt.query, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePoll(%q) = %+v, %v; want %+v", tt.query, got, err, tt.want)
		}
	}
}

// FuzzParsePoll checks that any query string gives either valid poll
// parameters (timeout within bounds, cursor not negative) or a 400.
func FuzzParsePoll(f *testing.F) {
	for _, s := range []string{"cursor=1&timeout=5", "wait=0", "cursor=&timeout=", "timeout=1e308", "cursor=0x10", "%zz"} {
		f.Add(s)
	}
	f.Add("cursor=1&cursor=2&wait=0&&timeout")
	f.Add("curs%6Fr=3&wait=0;x")
	f.Fuzz(func(t *testing.T, raw string) {
		// The handler's reading of the raw query is ParsePoll of what
		// r.URL.Query() gives.
		all, _ := url.ParseQuery(raw)
		want, werr := ParsePoll(all)
		got, gerr := parsePollQuery(raw)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Fatalf("parsePollQuery(%q) = %+v, %v; ParsePoll gives %+v, %v", raw, got, gerr, want, werr)
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := ParsePoll(q)
		if err != nil {
			if !api.IsCode(err, api.InvalidArgument) {
				t.Fatalf("ParsePoll(%q): %v", raw, err)
			}
			return
		}
		if p.Cursor < 0 || p.Timeout < 0 || p.Timeout > maxPollTimeout*time.Second {
			t.Fatalf("ParsePoll(%q) = %+v out of bounds", raw, p)
		}
	})
}

func TestEncodePoll(t *testing.T) {
	// The answer is assembled from pre-encoded events; it must be the JSON
	// the contract describes.
	got := string(encodePoll(pollResult(3, `{"id":2}`, `{"id":3}`)))
	if got != `{"cursor":3,"events":[{"id":2},{"id":3}]}` {
		t.Fatalf("encodePoll = %s", got)
	}
	if got := string(encodePoll(pollResult(9))); got != `{"cursor":9,"events":[]}` {
		t.Fatalf("empty encodePoll = %s", got)
	}
}

func pollResult(cursor int64, events ...string) comet.Result {
	r := comet.Result{Cursor: cursor}
	for _, e := range events {
		r.Events = append(r.Events, &comet.Event{JSON: []byte(e)})
	}
	return r
}
