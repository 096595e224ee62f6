// Package jsoncase checks that JSON documents name their fields in
// snake_case, the convention of poai's API and reports.
package jsoncase

import (
	"encoding/json"
	"strings"
)

// NotSnake marshals v and returns the path (/a/b[]/c) of every object key
// in it that is not snake_case: one with an upper-case letter, a hyphen
// or a space. It returns marshalling errors as they come.
func NotSnake(v any) ([]string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var bad []string
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				if strings.ToLower(k) != k || strings.ContainsAny(k, "- ") {
					bad = append(bad, path+"/"+k)
				}
				walk(path+"/"+k, v)
			}
		case []any:
			for _, v := range x {
				walk(path+"[]", v)
			}
		}
	}
	walk("", doc)
	return bad, nil
}
