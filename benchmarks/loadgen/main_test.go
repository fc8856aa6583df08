package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A server that answers 503 to odd user numbers and 401 without the key.
func flakyServer(t *testing.T) *httptest.Server {
	t.Helper()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var user int
		fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/users/"), "%d", &user)
		if user%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"items": []}`)
	}))
	t.Cleanup(server.Close)
	return server
}

func newTarget(url, key string) *target {
	return &target{client: &http.Client{Timeout: time.Second}, base: url, path: "/users/%d", users: 100, key: key}
}

func TestClosedLoopCountsEveryStatus(t *testing.T) {
	server := flakyServer(t)
	rec := &recorder{statuses: map[int]int{}}
	closedLoop(newTarget(server.URL, "k"), rec, 2, 0, 300*time.Millisecond, 1)
	if rec.statuses[200] == 0 || rec.statuses[503] == 0 {
		t.Fatalf("want both 200s and 503s counted, got %v", rec.statuses)
	}
	if len(rec.statuses) != 2 || rec.errors != 0 {
		t.Fatalf("unexpected statuses %v or errors %d", rec.statuses, rec.errors)
	}
	if got := rec.statuses[200] + rec.statuses[503]; got != len(rec.latencies) {
		t.Fatalf("%d answers but %d latencies", got, len(rec.latencies))
	}
}

func TestOpenLoopSendsAtTheRateAndSkipsTheWarmup(t *testing.T) {
	server := flakyServer(t)
	rec := &recorder{statuses: map[int]int{}}
	openLoop(newTarget(server.URL, "wrong"), rec, 200, 250*time.Millisecond, 500*time.Millisecond, 1)
	// 100 requests are due in the measured half second; the 50 of the warm-up are not counted.
	if n := rec.statuses[401]; n < 95 || n > 101 {
		t.Fatalf("want ~100 counted 401s, got %v", rec.statuses)
	}
}

func TestTransportErrorsAreCounted(t *testing.T) {
	server := flakyServer(t)
	server.Close() // nothing listens any more
	rec := &recorder{statuses: map[int]int{}}
	openLoop(newTarget(server.URL, "k"), rec, 100, 0, 200*time.Millisecond, 1)
	if rec.errors == 0 || len(rec.statuses) != 0 || rec.firstError == "" {
		t.Fatalf("want only errors, got %d errors, statuses %v", rec.errors, rec.statuses)
	}
}
