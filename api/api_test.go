package api

import (
	"encoding/json"
	"testing"
)

// request has the shapes of field the API's request bodies use: strings,
// a pointer that tells absent from empty, a bool and a number.
type request struct {
	Name    string  `json:"name"`
	Topic   *string `json:"topic"`
	Private bool    `json:"private"`
	Limit   int     `json:"limit"`
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"name":"a"}`, true},
		{" \n{\"name\":\"a\"}\r\n\t", true},
		{`{"name":"a","topic":null}`, true},
		{``, false},
		{`   `, false},
		{`{"name":`, false},
		{`{"name":"a"} {}`, false},
		{`{"name":"a"}x`, false},
		// A stray closing bracket after the object is data too.
		{`{"name":"a"}}`, false},
		{`{"name":"a"}]`, false},
		{`{"name":"a"} }`, false},
		{"{\"name\":\"a\"}\u00a0", false},
		{`{"nmae":"a"}`, false},
		{`{"name":1}`, false},
		{`{"limit":1e400}`, false},
		{`[]`, false},
		{`null`, true},
	}
	for _, tt := range tests {
		var v request
		err := Unmarshal([]byte(tt.body), &v)
		if tt.ok && err != nil || !tt.ok && !IsCode(err, InvalidArgument) {
			t.Errorf("Unmarshal(%q) = %v, want ok=%v", tt.body, err, tt.ok)
		}
	}
}

// FuzzUnmarshal checks the decoder every JSON endpoint shares: any body
// either decodes, and then is exactly one valid JSON value with known
// fields, or gives a 400 invalid_argument; never a panic.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","topic":"t","private":true,"limit":5}`, `{"name":"a"}}`, `{"topic":null}`,
		`{"name":"\ud800"}`, `{"limit":-0}`, `{"name":"a"}` + "\x00", `{"Name":"case"}`, `[`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v request
		err := Unmarshal(b, &v)
		if err != nil {
			if !IsCode(err, InvalidArgument) {
				t.Fatalf("Unmarshal(%q): %v, want invalid_argument", b, err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("Unmarshal accepted %q, which is not one valid JSON value", b)
		}
	})
}
