package api

import (
	"encoding/json"
	"testing"
)

var stringCases = []string{
	"", "plain", `quote " and backslash \`, "<script>alert('x')</script> & more",
	"line\nbreak\r\ttab\b\f", "\x00\x01\x1f\x7f", "héllo wörld ☃ 𝄞", "\u2028\u2029",
	"bad \xff utf-8 \xe2\x82", "\xed\xa0\x80 surrogate", "emoji 👋🏽 and zwj 👩‍💻",
}

// AppendString writes what json.Marshal writes, for every string.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range stringCases {
		checkAppendString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(checkAppendString)
}

func checkAppendString(t *testing.T, s string) {
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
		t.Errorf("AppendString(%q) = %s, want %s", s, got[1:], want)
	}
}
