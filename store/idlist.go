package store

import (
	"bytes"
	"fmt"
)

// IDList scans the comma-separated ids that SQLite's group_concat writes,
// so that a query can return a whole list of ids as one row: fetching a
// row costs a trip across cgo, and the writer reads lists of thousands.
// NULL (group_concat of no rows) scans as an empty list; a scanned list is
// never nil.
type IDList []int64

// Scan implements sql.Scanner.
func (l *IDList) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*l = IDList{}
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	case int64:
		*l = append((*l)[:0], v)
		return nil
	default:
		return fmt.Errorf("store: scan %T as a list of ids", src)
	}
	ids, err := parseIDs(b)
	if err != nil {
		return fmt.Errorf("store: scan a list of ids: %w", err)
	}
	*l = ids
	return nil
}

// parseIDs reads a comma-separated list of ids of up to 18 digits.
func parseIDs(list []byte) ([]int64, error) {
	if len(list) == 0 {
		return []int64{}, nil
	}
	ids := make([]int64, 0, bytes.Count(list, []byte{','})+1)
	var id int64
	digits := 0
	for i := 0; i <= len(list); i++ {
		if i == len(list) || list[i] == ',' {
			if digits == 0 {
				return nil, fmt.Errorf("empty id in %q", list)
			}
			ids = append(ids, id)
			id, digits = 0, 0
			continue
		}
		c := list[i]
		if c < '0' || c > '9' || digits == 18 {
			return nil, fmt.Errorf("bad id in %q", list)
		}
		id = id*10 + int64(c-'0')
		digits++
	}
	return ids, nil
}
