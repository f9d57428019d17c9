package events

import (
	"slices"
	"testing"
)

func TestParseIDs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int64
	}{
		{"", nil},
		{"7", []int64{7}},
		{"3,1,2", []int64{3, 1, 2}},
		{"1000000,42", []int64{1000000, 42}},
	} {
		got, err := parseIDs([]byte(tc.in))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseIDs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{",", "1,", ",1", "1,,2", "1;2", "-1", "1234567890123456789"} {
		if got, err := parseIDs([]byte(bad)); err == nil {
			t.Errorf("parseIDs(%q) = %v, want an error", bad, got)
		}
	}
}
