// Command loadgen drives GET requests at one HTTP service on loopback and prints what it
// measured as one JSON object: make bench-ml's load generator (stdlib only, so the
// generator costs the two cores it shares with the service as little as possible).
//
// Two modes:
//
//	-rate R  open loop: a request is due every 1/R s whatever the answers do, and its
//	         latency runs from the time it was due (a slow server is not let off by a
//	         generator that waits for it);
//	-rate 0  closed loop: -conns connections each send the next request as soon as the
//	         previous one is answered: the saturated throughput.
//
// Each request asks for a random user's path (-path with %d for a user number below
// -users). Requests due during -warmup are sent but not counted. Every non-2xx answer
// and every transport error is counted and reported, with the status codes seen.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
)

type result struct {
	Mode        string         `json:"mode"`
	Rate        float64        `json:"target_rate,omitempty"`
	Conns       int            `json:"conns"`
	Seconds     float64        `json:"seconds"`
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	Non2xx      int            `json:"non_2xx"`
	Errors      int            `json:"errors"`
	Statuses    map[string]int `json:"statuses"`
	FirstError  string         `json:"first_error,omitempty"`
	PerSecond   float64        `json:"per_second"`
	P50ms       float64        `json:"p50_ms"`
	P90ms       float64        `json:"p90_ms"`
	P99ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
	CPUSeconds  float64        `json:"generator_cpu_seconds"`
	MaxInFlight int            `json:"max_in_flight"`
}

type recorder struct {
	mu          sync.Mutex
	latencies   []time.Duration
	statuses    map[int]int
	errors      int
	firstError  string
	inFlight    int
	maxInFlight int
}

func (r *recorder) start() {
	r.mu.Lock()
	r.inFlight++
	if r.inFlight > r.maxInFlight {
		r.maxInFlight = r.inFlight
	}
	r.mu.Unlock()
}

func (r *recorder) done(latency time.Duration, status int, err error, counted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if !counted {
		return
	}
	if err != nil {
		r.errors++
		if r.firstError == "" {
			r.firstError = err.Error()
		}
		return
	}
	r.statuses[status]++
	r.latencies = append(r.latencies, latency)
}

type target struct {
	client *http.Client
	base   string
	path   string
	users  int
	key    string
}

// get sends one request and reads the whole body: the latency covers the full answer.
func (t *target) get(ctx context.Context, user int) (int, error) {
	url := t.base + fmt.Sprintf(t.path, user)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Key", t.key)
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func openLoop(t *target, rec *recorder, rate float64, warmup, duration time.Duration, seed int64) time.Duration {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	rng := rand.New(rand.NewSource(seed))
	var wg sync.WaitGroup
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		time.Sleep(time.Until(due))
		wg.Add(1)
		rec.start()
		go func(due time.Time, user int) {
			defer wg.Done()
			status, err := t.get(context.Background(), user)
			rec.done(time.Since(due), status, err, !due.Before(measureFrom))
		}(due, rng.Intn(t.users))
	}
	wg.Wait()
	return duration
}

func closedLoop(t *target, rec *recorder, conns int, warmup, duration time.Duration, seed int64) time.Duration {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func(rng *rand.Rand) {
			defer wg.Done()
			for {
				sent := time.Now()
				if !sent.Before(end) {
					return
				}
				rec.start()
				status, err := t.get(context.Background(), rng.Intn(t.users))
				// Only requests sent and answered inside the window count towards req/s.
				answered := time.Now()
				rec.done(answered.Sub(sent), status, err, !sent.Before(measureFrom) && answered.Before(end))
			}
		}(rand.New(rand.NewSource(seed + int64(c))))
	}
	wg.Wait()
	return duration
}

func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1 // nearest rank
	if i < 0 {
		i = 0
	}
	return float64(sorted[i]) / float64(time.Millisecond)
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func main() {
	base := flag.String("url", "http://127.0.0.1:8000", "the service's base URL (loopback only)")
	path := flag.String("path", "/users/usr-%06d/recommendations", "request path, %d: a user number")
	users := flag.Int("users", 100000, "user numbers are drawn uniformly below this")
	key := flag.String("key", "", "the X-API-Key header")
	rate := flag.Float64("rate", 0, "requests per second (open loop); 0: closed loop")
	conns := flag.Int("conns", 8, "connections of the closed loop; idle connections kept in both modes")
	duration := flag.Duration("duration", 20*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", 2*time.Second, "sent before measuring, not counted")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	seed := flag.Int64("seed", 1, "random seed for the users asked for")
	flag.Parse()
	if *users < 1 || *conns < 1 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -users and -conns must be >= 1, -rate >= 0")
		os.Exit(2)
	}

	transport := &http.Transport{
		MaxIdleConns:        *conns * 4,
		MaxIdleConnsPerHost: *conns * 4,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	t := &target{
		client: &http.Client{Transport: transport, Timeout: *timeout},
		base:   *base,
		path:   *path,
		users:  *users,
		key:    *key,
	}
	rec := &recorder{statuses: map[int]int{}}
	out := result{Conns: *conns}
	var measured time.Duration
	if *rate > 0 {
		out.Mode, out.Rate = "open", *rate
		measured = openLoop(t, rec, *rate, *warmup, *duration, *seed)
	} else {
		out.Mode = "closed"
		measured = closedLoop(t, rec, *conns, *warmup, *duration, *seed)
	}

	sort.Slice(rec.latencies, func(i, j int) bool { return rec.latencies[i] < rec.latencies[j] })
	out.Seconds = measured.Seconds()
	out.Statuses = map[string]int{}
	for status, n := range rec.statuses {
		out.Statuses[fmt.Sprint(status)] = n
		out.Requests += n
		if status >= 200 && status < 300 {
			out.OK += n
		} else {
			out.Non2xx += n
		}
	}
	out.Errors = rec.errors
	out.Requests += rec.errors
	out.FirstError = rec.firstError
	out.PerSecond = float64(out.OK) / out.Seconds
	out.P50ms = percentile(rec.latencies, 0.50)
	out.P90ms = percentile(rec.latencies, 0.90)
	out.P99ms = percentile(rec.latencies, 0.99)
	if n := len(rec.latencies); n > 0 {
		out.MaxMs = float64(rec.latencies[n-1]) / float64(time.Millisecond)
	}
	out.CPUSeconds = cpuSeconds()
	out.MaxInFlight = rec.maxInFlight
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
