package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// testClockEnv names a test hook: a virtual clock "anchorMs,startMs,speed"
// that reads startMs at the real time anchorMs and runs speed times as fast.
// Because it is anchored to real time, an exporter killed and restarted with
// the same value continues the same timeline, which lets end-to-end tests
// cross hour boundaries in seconds. Never set it in production.
const testClockEnv = "NODEPASS_EXPORTER_TEST_CLOCK"

// clockFromEnv returns time.Now, or the virtual clock when the hook is set.
func clockFromEnv() (func() time.Time, error) {
	v := os.Getenv(testClockEnv)
	if v == "" {
		return time.Now, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%s: want anchorMs,startMs,speed", testClockEnv)
	}
	anchor, err1 := strconv.ParseInt(parts[0], 10, 64)
	start, err2 := strconv.ParseInt(parts[1], 10, 64)
	speed, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || speed <= 0 {
		return nil, fmt.Errorf("%s: want anchorMs,startMs,speed", testClockEnv)
	}
	return func() time.Time {
		elapsed := float64(time.Now().UnixMilli()-anchor) * speed
		return time.UnixMilli(start + int64(elapsed)).UTC()
	}, nil
}
