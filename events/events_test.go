package events

import (
	"encoding/json"
	"reflect"
	"testing"
)

// A body encodes to JSON that decodes to the same body, with or without a
// message, whatever else is set.
func TestBodyEncode(t *testing.T) {
	topic := "a \"topic\""
	for _, b := range []Body{
		{Type: "message", Room: "lobby", User: "ann", Message: json.RawMessage(`{"id":1,"text":"<hi> & \"bye\""}`)},
		{Type: "message_deleted", Room: "lobby", MessageID: 7, By: "root"},
		{Type: "room_updated", Room: "lobby", Kind: "public", Topic: &topic},
		{Type: "message_edited", Room: "r", User: "bo", Message: json.RawMessage(`{}`), MessageID: 3, Kicked: true},
		{Type: "logout"},
	} {
		data, err := b.encode()
		if err != nil {
			t.Fatal(err)
		}
		var got Body
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("%s decodes to %+v, want %+v", data, got, b)
		}
		want, _ := json.Marshal(b)
		var a, c map[string]any
		json.Unmarshal(want, &a)
		json.Unmarshal(data, &c)
		if !reflect.DeepEqual(a, c) {
			t.Errorf("%s, want the fields of %s", data, want)
		}
	}
}
