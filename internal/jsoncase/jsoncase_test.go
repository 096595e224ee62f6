package jsoncase

import (
	"slices"
	"testing"
)

func TestNotSnake(t *testing.T) {
	type inner struct {
		Good int `json:"good_key"`
		Bad  int `json:"badKey"`
	}
	v := struct {
		A []inner `json:"a"`
		B int     `json:"b-c"`
	}{A: []inner{{}}}
	bad, err := NotSnake(v)
	slices.Sort(bad)
	if err != nil || !slices.Equal(bad, []string{"/a[]/badKey", "/b-c"}) {
		t.Fatalf("%q %v", bad, err)
	}
	if _, err := NotSnake(func() {}); err == nil {
		t.Fatal("a func marshalled")
	}
}
