package messages

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"
)

// A message's JSON, written by hand for the event and the reply, is what
// json.Marshal writes for its view.
func TestViewJSONMatchesEncodingJSON(t *testing.T) {
	ts := time.UnixMilli(1790000000123)
	for _, m := range []Message{
		{ID: 1, Room: "lobby", User: "ada", UserID: 1, Content: Content{Text: "hi", HTML: "hi"}, TS: ts},
		{ID: 1 << 40, Room: "dm:ada:bob", User: "bob", Content: Content{Text: `<b>"x"</b> & \ y`, HTML: "&lt;b&gt;&#34;x&#34;&lt;/b&gt; &amp; \\ y"}, TS: ts, Edited: ts.Add(time.Minute)},
		{ID: 7, Room: "r", User: "u", Content: Content{Text: "line\nbreak \u2028 \xff ☃", HTML: "line<br>break \u2028 ☃"}, TS: ts},
	} {
		want, err := json.Marshal(m.View())
		if err != nil {
			t.Fatal(err)
		}
		if got := m.View().appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON:\n got %s\nwant %s", got, want)
		}

		rec := httptest.NewRecorder()
		writeMessage(rec, 201, m)
		reply, err := json.Marshal(struct {
			Message JSON `json:"message"`
		}{m.View()})
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.Body.String(); got != string(reply)+"\n" || rec.Code != 201 {
			t.Errorf("reply %d:\n got %s\nwant %s", rec.Code, got, reply)
		}
	}
}
